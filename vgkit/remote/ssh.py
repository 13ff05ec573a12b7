"""One SSH host: how to reach it, and the real ``ssh``/``rsync`` command lines that do.

Nothing secret is stored: the key is a path, passwords are never asked (``BatchMode=yes``). A
connection failure (ssh exit 255) is retried on a new connection until ``retry_s`` has passed.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from vgkit.errors import RemoteCommandError, RemoteConnectionError, SpecError

__all__ = [
    "SSH_CONNECTION_FAILED",
    "RemoteConnectionError",
    "SshTarget",
    "checked",
    "remote_path",
    "run_ssh",
    "target_from",
    "upload",
]

SSH_CONNECTION_FAILED = 255  # ssh's own exit code for "could not connect / connection lost"
DEFAULT_REMOTE_DIR = "vgkit"
DEFAULT_REMOTE_PYTHON = ".venv/bin/python"  # made by setup.sh in the pushed code


@dataclass(frozen=True)
class SshTarget:
    """Where a remote job lives: ``user@host``, port, key file, base directory, remote python.

    ``remote_dir`` is relative to the remote home or absolute; the code goes to
    ``<remote_dir>/code`` and runs to ``<remote_dir>/code/runs/<name>``. ``python`` is the
    interpreter that runs vgkit there (relative paths resolve in the code directory).
    """

    host: str
    port: int = 22
    key: Path | None = None
    remote_dir: str = DEFAULT_REMOTE_DIR
    python: str = DEFAULT_REMOTE_PYTHON
    ssh_options: tuple[str, ...] = field(default_factory=tuple)
    connect_timeout_s: int = 10

    @property
    def code_dir(self) -> str:
        return f"{self.remote_dir.rstrip('/')}/code"

    def run_dir(self, name: str) -> str:
        return f"{self.code_dir}/runs/{name}"

    def ssh(self) -> list[str]:
        """``ssh`` with the port and options, for a remote command and for rsync (never a password prompt)."""
        opts = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}"]
        opts += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if self.key is not None:
            opts += ["-i", str(self.key), "-o", "IdentitiesOnly=yes"]
        for option in self.ssh_options:
            opts += ["-o", option]
        return opts

    def ssh_argv(self, command: str) -> list[str]:
        """``ssh`` argv that runs the shell ``command`` on the host."""
        return [*self.ssh(), self.host, command]

    def rsync_argv(self, *args: str) -> list[str]:
        """``rsync`` over the same ssh."""
        return ["rsync", "-e", shlex.join(self.ssh()), *args]

    def remote(self, path: str) -> str:
        """``host:path`` for rsync."""
        return f"{self.host}:{path}"

    def in_code(self, command: str) -> str:
        """``command`` run in the pushed code directory."""
        return f"cd {remote_path(self.code_dir)} && {command}"


def remote_path(path: str) -> str:
    """Quote ``path`` for the remote shell; a leading ``~/`` stays the remote home."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def target_from(
    host: str | None,
    *,
    port: int | None = None,
    key: str | Path | None = None,
    remote_dir: str | None = None,
    python: str | None = None,
    ssh_options: tuple[str, ...] = (),
) -> SshTarget:
    """An ``SshTarget`` from explicit values, else ``VGKIT_REMOTE_*`` environment variables.

    ``VGKIT_REMOTE_HOST``, ``VGKIT_REMOTE_PORT``, ``VGKIT_REMOTE_KEY``, ``VGKIT_REMOTE_DIR``,
    ``VGKIT_REMOTE_PYTHON`` and ``VGKIT_REMOTE_SSH_OPTIONS`` (``;``-separated ``-o`` values).
    """
    host = host or os.environ.get("VGKIT_REMOTE_HOST")
    if not host:
        raise SpecError("--host is not set; fix: pass --host user@host or set VGKIT_REMOTE_HOST")
    raw_port = port if port is not None else os.environ.get("VGKIT_REMOTE_PORT", "22")
    if not str(raw_port).isdigit() or not 0 < int(raw_port) < 65536:
        raise SpecError(f"--port = {raw_port!r}: not a TCP port; fix: pass e.g. --port 22")
    env_options = [part for part in os.environ.get("VGKIT_REMOTE_SSH_OPTIONS", "").split(";") if part.strip()]
    key_value = key or os.environ.get("VGKIT_REMOTE_KEY")
    key_path = Path(key_value).expanduser() if key_value else None
    if key_path is not None and not key_path.is_file():
        raise SpecError(f"--key = '{key_path}': no such file; fix: pass the private key file of the instance")
    return SshTarget(
        host=host,
        port=int(raw_port),
        key=key_path,
        remote_dir=remote_dir or os.environ.get("VGKIT_REMOTE_DIR", DEFAULT_REMOTE_DIR),
        python=python or os.environ.get("VGKIT_REMOTE_PYTHON", DEFAULT_REMOTE_PYTHON),
        ssh_options=(*ssh_options, *env_options),
    )


def run_ssh(
    target: SshTarget,
    command: str,
    *,
    stdin: bytes | None = None,
    retry_s: float = 0.0,
    timeout_s: float | None = 120.0,
    capture: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``command`` on the host; reconnect on connection failures for up to ``retry_s``.

    Returns the finished process (any exit code of ``command`` itself); raises
    ``RemoteConnectionError`` once the host stayed unreachable past ``retry_s``.
    """
    give_up_at = time.monotonic() + retry_s
    delay_s = 0.5
    while True:
        try:
            done = subprocess.run(
                target.ssh_argv(command),
                input=stdin if stdin is not None else b"",
                capture_output=capture,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            done = subprocess.CompletedProcess([], SSH_CONNECTION_FAILED, b"", b"ssh timed out")
        if done.returncode != SSH_CONNECTION_FAILED:
            return done
        if time.monotonic() >= give_up_at:
            reason = (done.stderr or b"").decode(errors="replace").strip().splitlines()
            raise RemoteConnectionError(
                f"{target.host}:{target.port}: ssh failed ({reason[-1] if reason else 'exit 255'}); "
                "fix: check the instance is running and --host/--port/--key"
            )
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 5.0)


def upload(target: SshTarget, folder: Path, remote_dir: str, what: str) -> None:
    """Copy ``folder``'s contents into ``remote_dir`` on the host (made if missing) with rsync."""
    done = subprocess.run(
        target.rsync_argv("-a", "--mkpath", f"{folder}/", target.remote(f"{remote_dir}/")), capture_output=True
    )
    checked(done, what)


def checked(done: subprocess.CompletedProcess[bytes], what: str) -> str:
    """The stdout of a remote command that must succeed; else ``RemoteCommandError`` with its stderr."""
    if done.returncode != 0:
        err = (done.stderr or b"").decode(errors="replace").strip()
        raise RemoteCommandError(f"remote {what} failed with exit {done.returncode}: {err[-400:]}")
    return (done.stdout or b"").decode(errors="replace")
