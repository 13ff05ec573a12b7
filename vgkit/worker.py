"""``vgkit run`` as a supervised worker: the parent holds the device lock and the watchdog, the
child (``vgkit run --in-process``, in its own process group) loads the pipeline and generates.

If the child hangs past a deadline plus the grace period, the parent kills its whole process
group, logs the clip in progress as aborted and exits with ``GuardrailError``'s code (6). If the
parent dies (SSH drop, SIGKILL), the kernel kills the child (``PR_SET_PDEATHSIG``), and the
lock, held through a descriptor both share, frees when both are gone. The in-process chain
(``runner.run_job``) stays callable directly from notebooks and tests.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from vgkit.artifacts import RunLayout
from vgkit.errors import GuardrailError
from vgkit.guard import DEFAULT_GRACE_S, Deadlines, supervise

__all__ = ["SUPERVISOR_PID_ENV", "die_with_parent", "run_supervised", "supervise_job"]

SUPERVISOR_PID_ENV = "VGKIT_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1

Progress = Callable[[str], None]


def die_with_parent() -> None:
    """In a worker child: ask the kernel to SIGKILL this process when its supervisor dies.

    Linux only (a no-op elsewhere). Exits at once if the supervisor is already gone.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if expected is not None and expected.isdigit() and os.getppid() != int(expected):
        os._exit(GuardrailError.exit_code)


def supervise_job(
    child_argv: Sequence[str],
    *,
    layout: RunLayout,
    deadlines: Deadlines,
    grace_s: float = DEFAULT_GRACE_S,
    pass_fds: Sequence[int] = (),
    progress: Progress = print,
) -> int:
    """Run ``child_argv + ["--worker-state-file", PATH]`` under the watchdog; return its exit code.

    Raises ``GuardrailError`` (after logging the clip in progress as aborted) when the watchdog
    had to kill the child's process group.
    """
    with tempfile.TemporaryDirectory(prefix="vgkit-watch-") as tmp:
        state_file = Path(tmp) / "worker-state.json"
        env = {**os.environ, SUPERVISOR_PID_ENV: str(os.getpid())}
        outcome = supervise(
            [*child_argv, "--worker-state-file", str(state_file)],
            deadlines=deadlines,
            state_file=state_file,
            grace_s=grace_s,
            env=env,
            pass_fds=pass_fds,
        )
    if outcome.killed_for is None:
        return outcome.returncode
    from vgkit.chain import write_killed_log

    what = "clip" if outcome.killed_for == "clip_deadline" else "run"
    limit_s = deadlines.clip_timeout_s if what == "clip" else deadlines.run_timeout_s
    index = (outcome.state or {}).get("clip_index")
    phase = (outcome.state or {}).get("phase", "load")
    where = f"clip {index:03d} ({phase})" if isinstance(index, int) else f"the run ({phase})"
    message = (
        f"watchdog: {where} passed the {what} deadline of {limit_s:g} s + {grace_s:g} s grace without returning; "
        "killed its whole process group; finished clips are kept; fix: raise "
        f"--{what}-timeout-s or lower steps/size, then re-run with --resume"
    )
    if isinstance(index, int):
        write_killed_log(layout, index, failure_class=outcome.killed_for, message=message)
    raise GuardrailError(message)


def run_supervised(
    spec: Path,
    *,
    model: str | None,
    preset: str | None = None,
    out: Path | None,
    clip_timeout_s: float | None,
    run_timeout_s: float | None,
    grace_s: float,
    lock: bool | None,
    wait_for_gpu: bool,
    resume: bool,
    progress: Progress = print,
) -> int:
    """``vgkit run`` without ``--in-process``: plan, lock, then generate in a watched child."""
    from vgkit.lock import acquire_device_lock, device_lock_name
    from vgkit.runner import default_run_dir, plan_job

    spec_obj, choice, plan = plan_job(spec, model=model, preset=preset)
    run_dir = out if out is not None else default_run_dir(spec_obj, choice.model.name)
    deadlines = Deadlines.for_spec(spec_obj, clip_timeout_s=clip_timeout_s, run_timeout_s=run_timeout_s)
    held = None
    if lock if lock is not None else choice.device != "cpu":
        held = acquire_device_lock(
            device_lock_name(choice.device), run_dir=run_dir, wait=wait_for_gpu, progress=progress
        )
    child = [
        sys.executable,
        "-m",
        "vgkit",
        "run",
        str(spec),
        "--model",
        choice.model.name,
        "--preset",
        plan.preset["name"],
        "--out",
        str(run_dir),
        "--in-process",
        "--no-lock",
        "--clip-timeout-s",
        repr(deadlines.clip_timeout_s),
        "--run-timeout-s",
        repr(deadlines.run_timeout_s),
        "--run-started-at",
        repr(deadlines.run_started_at),
        *([] if resume else ["--no-resume"]),
    ]
    try:
        return supervise_job(
            child,
            layout=RunLayout(run_dir),
            deadlines=deadlines,
            grace_s=grace_s,
            pass_fds=(held.fd,) if held is not None else (),
            progress=progress,
        )
    finally:
        if held is not None:
            held.release()
