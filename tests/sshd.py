"""A real OpenSSH server on 127.0.0.1 for the remote tests: key auth only, throwaway keys/config.

``LoopbackSshd`` writes a host key, a client key, ``authorized_keys`` and ``sshd_config`` into a
temp dir, runs ``sshd -D`` on a free port, and can be stopped and started again on the same port
(to cut the connection). Its sessions get ``HOME=<temp dir>/home`` (sshd's ``SetEnv``), so the
"host" is a fresh account: setup.sh there registers its Jupyter kernel and keeps pip's cache in
that temp dir, never in this machine's home, and finds Python on the plain system ``PATH``. Its
pip gets this machine's package sources (``host_pip_env``). ``sshd_unavailable()`` says why the
tests must skip, or None.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from vgkit.remote.ssh import DEFAULT_REMOTE_PYTHON, SshTarget

SSHD = Path("/usr/sbin/sshd")


def sshd_unavailable() -> str | None:
    """A reason the loopback sshd cannot run here, or None."""
    for tool in ("ssh", "ssh-keygen", "rsync", "setsid", "timeout"):
        if shutil.which(tool) is None:
            return f"`{tool}` not found; fix: apt-get install -y openssh-server rsync (scripts/test.sh does as root)"
    if not SSHD.is_file():
        return f"{SSHD} not found; fix: apt-get install -y openssh-server (scripts/test.sh does as root)"
    if os.geteuid() != 0 and not Path("/run/sshd").is_dir():
        return "/run/sshd (sshd's privilege-separation dir) is missing and only root can create it"
    return None


def host_pip_env() -> dict[str, str]:
    """This machine's pip sources for the host's sessions: its ``PIP_*`` variables, and its user
    pip.conf as ``PIP_CONFIG_FILE`` (pip still reads the global ones). Without them the fresh HOME
    has no user pip.conf, and setup.sh there would download the CUDA torch build and its ~3 GB of
    nvidia wheels from PyPI instead of installing the local wheels this machine's pip uses."""
    env = {name: value for name, value in os.environ.items() if name.startswith("PIP_") and '"' not in value}
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    for user_conf in (config_home / "pip" / "pip.conf", Path.home() / ".pip" / "pip.conf"):
        if user_conf.is_file():
            env.setdefault("PIP_CONFIG_FILE", str(user_conf))
            break
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LoopbackSshd:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.host_key = root / "ssh_host_ed25519_key"
        self.client_key = root / "client_ed25519"
        self.known_hosts = root / "known_hosts"
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        authorized = root / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        authorized.chmod(0o600)
        self.port = _free_port()
        self.home = root / "home"
        self.home.mkdir(exist_ok=True)
        self.config = root / "sshd_config"
        self.config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {self.host_key}",
                    f"AuthorizedKeysFile {authorized}",
                    f"PidFile {root / 'sshd.pid'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    "LogLevel ERROR",
                    # sshd takes only its first SetEnv line: every variable goes on this one
                    "SetEnv " + " ".join(f'"{k}={v}"' for k, v in {"HOME": str(self.home), **host_pip_env()}.items()),
                    "",
                ]
            )
        )
        self.log = root / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation dir sshd insists on
        self.proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.config)], stdout=subprocess.DEVNULL, stderr=self.log.open("ab")
        )
        give_up_at = time.monotonic() + 10
        while time.monotonic() < give_up_at:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited {self.proc.returncode}: {self.log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on {self.port}: {self.log.read_text()[-500:]}")

    def stop(self) -> None:
        """Stop the listener (new connections fail with ssh exit 255)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def target(self, remote_dir: Path, *, python: str = DEFAULT_REMOTE_PYTHON) -> SshTarget:
        return SshTarget(
            host=f"{getpass.getuser()}@127.0.0.1",
            port=self.port,
            key=self.client_key,
            remote_dir=str(remote_dir),
            python=python,
            ssh_options=("StrictHostKeyChecking=no", f"UserKnownHostsFile={self.known_hosts}", "LogLevel=ERROR"),
            connect_timeout_s=5,
        )

    def cli_args(self, remote_dir: Path, *, python: str = DEFAULT_REMOTE_PYTHON) -> list[str]:
        target = self.target(remote_dir, python=python)
        args = ["--host", target.host, "--port", str(self.port), "--key", str(self.client_key)]
        args += ["--remote-dir", str(remote_dir), "--python", python]
        for option in target.ssh_options:
            args += ["--ssh-option", option]
        return args


def processes_in_group(pgid: int) -> list[int]:
    """Live, non-zombie pids whose process group is ``pgid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found
