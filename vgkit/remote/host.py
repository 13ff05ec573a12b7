"""What is on the host: the pushed code, the ``.venv`` that setup.sh makes there, and whether
both are ready for ``prefetch`` and ``run``.

``push`` copies one commit (``git archive``) plus ``params/`` into ``<remote_dir>/code``; ``setup``
runs that code's ``setup.sh`` there (idempotent: unchanged pins install nothing and say so);
``require_ready`` refuses, naming the fix, a host without the code or without a ``.venv`` set up
for the pushed pins (``setup.sh --check``), or without the interpreter ``--python`` names.
"""

from __future__ import annotations

import shlex
import subprocess

from vgkit.errors import RemoteSetupError, SpecError
from vgkit.remote.ssh import DEFAULT_REMOTE_PYTHON, SshTarget, checked, remote_path, run_ssh, upload
from vgkit.remote.vast import DOCTOR_FILE
from vgkit.settings import PUSHED_COMMIT_FILE, repo_root

__all__ = ["doctor_verdict", "push", "require_ready", "setup"]


def push(target: SshTarget, *, commit: str = "HEAD") -> str:
    """Put the tracked files of ``commit`` (``git archive``) plus ``params/`` on the host.

    Files of an older push are removed first (``.venv`` and ``runs`` stay), so the remote code is
    exactly that commit. ``params/`` is copied as it is on disk, untracked images included.
    Returns the full commit hash.
    """
    repo = repo_root()
    rev = subprocess.run(["git", "-C", str(repo), "rev-parse", commit], capture_output=True, text=True, check=False)
    if rev.returncode != 0:
        raise SpecError(f"--commit = {commit!r}: not a commit of {repo}; fix: pass a commit, branch or tag")
    sha = rev.stdout.strip()
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", sha], capture_output=True, check=True)
    code = remote_path(target.code_dir)
    unpack = (
        f"mkdir -p {code} && cd {code} && "
        "find . -mindepth 1 -maxdepth 1 ! -name .venv ! -name runs -exec rm -rf {} + && "
        f"tar -x -m -f - && echo {sha} > {PUSHED_COMMIT_FILE}"
    )
    checked(run_ssh(target, unpack, stdin=archive.stdout, timeout_s=600), "push")
    if (repo / "params").is_dir():
        upload(target, repo / "params", f"{target.code_dir}/params", "push of params/")
    return sha


def _host_state(target: SshTarget) -> str:
    """``no-code``, ``no-python`` or ``ready``, from one SSH call that changes nothing there.

    The default ``.venv/bin/python`` is ready when ``setup.sh --check`` says it was set up for the
    pushed pins (code pushed from a commit whose setup.sh has no ``--check``, which would install
    instead: when it exists); an explicit ``--python`` when the host's shell finds it.
    """
    if target.python == DEFAULT_REMOTE_PYTHON:
        python_ok = (
            "if grep -q -e '--check)' setup.sh; then bash setup.sh --check >/dev/null 2>&1; "
            f"else test -x {DEFAULT_REMOTE_PYTHON}; fi"
        )
    else:
        python_ok = f"command -v {shlex.quote(target.python)} >/dev/null 2>&1"
    probe = (
        f"cd {remote_path(target.code_dir)} 2>/dev/null && test -f {PUSHED_COMMIT_FILE} "
        "|| { echo no-code; exit 0; }; "
        f"{python_ok} && echo ready || echo no-python"
    )
    return checked(run_ssh(target, probe, retry_s=30), "check of the host").strip()


def _no_code(target: SshTarget) -> RemoteSetupError:
    return RemoteSetupError(
        f"{target.host}:{target.port}: no pushed code in {target.code_dir}; "
        "fix: `vgkit remote push`, then `vgkit remote setup`"
    )


def require_ready(target: SshTarget) -> None:
    """Raise ``RemoteSetupError`` naming the fix unless the host has the code and its python."""
    state = _host_state(target)
    if state == "no-code":
        raise _no_code(target)
    if state == "ready":
        return
    if target.python == DEFAULT_REMOTE_PYTHON:
        raise RemoteSetupError(
            f"{target.host}:{target.port}: {target.code_dir}/{DEFAULT_REMOTE_PYTHON} is not set up "
            "(no .venv, or one made for other pins); fix: run `vgkit remote setup`"
        )
    raise RemoteSetupError(
        f"--python = {target.python!r}: not found on {target.host}; "
        "fix: pass an interpreter that exists there, or drop --python and run `vgkit remote setup`"
    )


def setup(target: SshTarget) -> None:
    """Run ``setup.sh`` in the pushed code (idempotent there), then ``vgkit doctor``; both stream.

    setup.sh runs under the lock the on-start waiter (vgkit.remote.vast) also takes, so the two never
    install at once. The doctor's output is kept in ``<remote_dir>/doctor.txt`` for ``vgkit remote
    status``. Raises ``RemoteSetupError`` when no code was pushed, ``setup.sh`` exits non-zero, or
    the doctor finds a problem that would make a run fail.
    """
    if _host_state(target) == "no-code":
        raise _no_code(target)
    lock = remote_path(f"{target.remote_dir.rstrip('/')}/setup.lock")
    setup_sh = f"if command -v flock >/dev/null; then flock {lock} bash setup.sh; else bash setup.sh; fi"
    code = run_ssh(target, target.in_code(setup_sh), capture=False, timeout_s=None).returncode
    if code != 0:
        raise RemoteSetupError(
            f"{target.host}:{target.port}: setup.sh in {target.code_dir} exited {code} (its output is above); "
            "fix: correct what it names on the host, then re-run `vgkit remote setup`"
        )
    report = f"../{DOCTOR_FILE}"  # in the remote dir, the code dir's parent
    doctor = (
        f".venv/bin/python -m vgkit doctor > {report}.tmp 2>&1; c=$?; mv {report}.tmp {report}; cat {report}; exit $c"
    )
    if run_ssh(target, target.in_code(doctor), capture=False, timeout_s=600).returncode != 0:
        raise RemoteSetupError(
            f"{target.host}:{target.port}: vgkit doctor found problems there (the lines marked 'problem' above); "
            "fix: what they name (often another offer: `vgkit remote vast-search`), then `vgkit remote setup`"
        )


def doctor_verdict(target: SshTarget, *, retry_s: float = 30.0) -> list[str]:
    """The verdict and problem lines of the host's last ``vgkit doctor`` (``<remote_dir>/doctor.txt``,
    written by ``vgkit remote setup`` or the on-start waiter), or one line saying it has not run."""
    path = remote_path(f"{target.remote_dir.rstrip('/')}/{DOCTOR_FILE}")
    text = checked(run_ssh(target, f"cat {path} 2>/dev/null || true", retry_s=retry_s), "read of doctor.txt")
    kept = [line for line in text.splitlines() if line.startswith(("problem:", "doctor:"))]
    return kept or ["doctor: has not run on this host yet; fix: `vgkit remote setup`"]
