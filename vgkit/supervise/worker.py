"""Every run as a supervised worker: the parent holds the device lock and the watchdog, the child
(``vgkit run --in-process``, in its own process group) loads the pipeline and generates.

``vgkit run``, the generate notebook (in JupyterLab and under papermill, so ``vgkit demo`` too)
and ``vgkit sweep`` all call ``run_supervised``. The child writes each progress event
(vgkit.records.events) to its stdout as one JSON line; the parent reads them line by line and hands them,
as events, to its own progress callback (so they show in a notebook cell); any other line the
child prints becomes a ``note`` event. It ends in one of these ways:

- the child finished: the ``JobResult`` it recorded is returned;
- the child raised a vgkit error: the same error class is raised here with the same message and
  failure fields (kind, clip index, phase), so the exit code (errors.py) is the same as an
  in-process run's;
- the child hung past a deadline plus the grace period: the watchdog kills its whole process
  group, logs the clip in progress as aborted and raises ``GuardrailError`` (exit 6); a
  notebook's kernel stays alive;
- the child was killed by a signal nobody in vgkit sent (SIGKILL from the OOM killer, most
  often): ``WorkerKilledError`` (exit 9) names the signal and the clip it was on.

If the parent dies (SSH drop, SIGKILL), the kernel kills the child (``PR_SET_PDEATHSIG``), and the
lock, held through a descriptor both share, frees when both are gone. The in-process chain
(``runner.run_job``) stays callable directly from tests.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgkit import errors
from vgkit.errors import GuardrailError, VgkitError, WorkerKilledError
from vgkit.records.artifacts import RunLayout, atomic_write_json
from vgkit.records.events import Event, Progress, append_event, note, text_sink
from vgkit.records.failures import failed_event
from vgkit.supervise.guard import DEFAULT_GRACE_S, Deadlines, WatchdogOutcome, check_grace, read_state, supervise

if TYPE_CHECKING:
    from vgkit.generate.runner import JobResult

__all__ = [
    "RESULT_FILE",
    "SUPERVISOR_PID_ENV",
    "die_with_parent",
    "run_in_worker",
    "run_supervised",
    "supervise_job",
]

SUPERVISOR_PID_ENV = "VGKIT_SUPERVISOR_PID"
RESULT_FILE = "worker-result.json"  # beside the state file: the child's JobResult or its error
_PR_SET_PDEATHSIG = 1
_ERROR_PREFIX = "vgkit: error: "
_FAILURE_FIELDS = ("kind", "clip_index", "phase")  # what a VgkitError carries besides its message

OnClip = Callable[[int, Path], None]

# What a signal that ended the worker most likely means, what to do, and its failure kind.
_SIGNAL_HINTS = {
    signal.SIGKILL: (
        "likely the kernel's OOM killer; check dmesg / lower the preset (or size, frames, steps)",
        "out-of-memory",
    ),
    signal.SIGTERM: ("something outside vgkit stopped it (kill, a scheduler, a shutdown)", "interrupted"),
    signal.SIGINT: ("something outside vgkit stopped it (Ctrl-C)", "interrupted"),
    signal.SIGSEGV: ("it crashed in native code (driver or library); see the output above", "other"),
    signal.SIGBUS: ("it crashed in native code (driver or library); see the output above", "other"),
    signal.SIGABRT: ("it aborted in native code (driver or library); see the output above", "other"),
}


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


def _public_class(exc: VgkitError) -> type[VgkitError]:
    """The nearest class of ``exc`` that errors.py defines (what the parent can raise again)."""
    return next(c for c in type(exc).__mro__ if c.__module__ == errors.__name__ and issubclass(c, VgkitError))


def run_in_worker(spec: Path, *, state_file: Path, **run_job_kwargs: Any) -> JobResult:
    """Child side: die with the supervisor, run the job with each progress event written to stdout
    as a JSON line (for the parent), record its result or error for it.

    ``VGKIT_GENERATOR_FACTORY`` (``settings.generator_factory``) swaps in a stand-in pipeline.
    """
    from vgkit.generate.runner import run_job
    from vgkit.settings import generator_factory

    die_with_parent()
    record = state_file.with_name(RESULT_FILE)
    run_job_kwargs["progress"] = lambda event: print(event.to_json(), flush=True)
    try:
        result = run_job(spec, state_file=state_file, make_generator=generator_factory(), **run_job_kwargs)
    except VgkitError as exc:
        error = {"error_class": _public_class(exc).__name__, "message": str(exc), "exit_code": exc.exit_code}
        atomic_write_json(record, error | {name: getattr(exc, name) for name in _FAILURE_FIELDS})
        raise
    atomic_write_json(record, {"result": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}})
    return result


@dataclass(eq=False)
class _Output:
    """Where the child's lines go: stdout events to ``progress`` (and ``on_clip`` once a clip
    lands; a line that is no event as a note), stderr lines to this process's stderr, except the
    child's own one-line error, which the parent raises again (printing it twice would say it twice)."""

    layout: RunLayout
    progress: Progress
    on_clip: OnClip | None
    error_line: str | None = None

    def __call__(self, line: str, is_err: bool) -> None:
        if is_err and line.startswith(_ERROR_PREFIX):
            self.error_line = line.removeprefix(_ERROR_PREFIX)
        elif is_err:
            print(line, file=sys.stderr, flush=True)
        else:
            event = Event.from_json(line) or note(line)
            self.progress(event)
            if event.stage == "clip-done" and event.clip_index is not None and self.on_clip is not None:
                self.on_clip(event.clip_index, self.layout.clip(event.clip_index))


def _state_fields(state: Mapping[str, Any]) -> tuple[int | None, str]:
    """The clip index and phase the worker last recorded."""
    index = state.get("clip_index")
    return (index if isinstance(index, int) else None), str(state.get("phase", "load"))


def _where(state: Mapping[str, Any]) -> str:
    index, phase = _state_fields(state)
    return f"clip {index:03d} ({phase})" if index is not None else f"the run ({phase})"


def _record_kill(layout: RunLayout, error: VgkitError, *, killed_by: str) -> None:
    """The killed clip's ``aborted`` log and a ``failed`` event, in a run folder the worker claimed."""
    from vgkit.generate.chain import write_killed_log
    from vgkit.records.rundir import MARKER_NAME

    if error.clip_index is not None:
        write_killed_log(layout, error.clip_index, error=error, killed_by=killed_by)
    if (layout.root / MARKER_NAME).is_file():
        append_event(layout.root, failed_event(error))


def _watchdog_error(
    outcome: WatchdogOutcome, layout: RunLayout, deadlines: Deadlines, grace_s: float
) -> GuardrailError:
    what = "clip" if outcome.killed_for == "clip_deadline" else "run"
    limit_s = deadlines.clip_timeout_s if what == "clip" else deadlines.run_timeout_s
    message = (
        f"watchdog: {_where(outcome.state)} passed the {what} deadline of {limit_s:g} s + {grace_s:g} s grace "
        "without returning; killed its whole process group; finished clips are kept; fix: raise "
        f"--{what}-timeout-s or lower steps/size, then re-run with --resume"
    )
    index, phase = _state_fields(outcome.state)
    error = GuardrailError(message, clip_index=index, phase=phase)
    _record_kill(layout, error, killed_by="watchdog")
    return error


def _signal_error(outcome: WatchdogOutcome, layout: RunLayout) -> WorkerKilledError:
    """The error naming the signal; the clip in progress gets an ``aborted`` log that says so."""
    number = -outcome.returncode
    try:
        sig = signal.Signals(number)
        name, (hint, kind) = sig.name, _SIGNAL_HINTS.get(sig, ("see the output above", "other"))
    except ValueError:
        name, hint, kind = f"signal {number}", "see the output above", "other"
    pid = outcome.state.get("pid")
    who = f"the worker (pid {pid})" if isinstance(pid, int) else "the worker"
    message = (
        f"{who} was killed by {name} during {_where(outcome.state)}: {hint}; "
        "finished clips are kept; re-run the same command to resume"
    )
    index, phase = _state_fields(outcome.state)
    error = WorkerKilledError(message, kind=kind, clip_index=index, phase=phase)
    _record_kill(layout, error, killed_by=name)
    return error


def _child_error(
    outcome: WatchdogOutcome, record: Mapping[str, Any], error_line: str | None, layout: RunLayout
) -> VgkitError:
    """The error the child raised, as the same errors.py class (exit code) with the same failure
    fields, or one naming how it died."""
    if outcome.returncode < 0:
        return _signal_error(outcome, layout)
    cls = getattr(errors, str(record.get("error_class")), None)
    if isinstance(cls, type) and issubclass(cls, VgkitError):  # run_in_worker wrote the record
        fields = {name: record.get(name) for name in _FAILURE_FIELDS}
        return cls(str(record.get("message")), **fields)
    exc = VgkitError(
        error_line
        or f"the worker exited with code {outcome.returncode} during {_where(outcome.state)} without a vgkit "
        "error (a traceback above says why); finished clips are kept"
    )
    exc.exit_code = outcome.returncode
    return exc


def supervise_job(
    child_argv: Sequence[str],
    *,
    layout: RunLayout,
    deadlines: Deadlines,
    grace_s: float = DEFAULT_GRACE_S,
    pass_fds: Sequence[int] = (),
    progress: Progress = print,
    on_clip: OnClip | None = None,
) -> dict[str, Any]:
    """Run ``child_argv + ["--worker-state-file", PATH]`` under the watchdog; return the child's
    ``JobResult`` record (``{}`` if it wrote none) or raise as the module docstring says."""
    check_grace(grace_s)
    output = _Output(layout, progress, on_clip)
    with tempfile.TemporaryDirectory(prefix="vgkit-watch-") as tmp:
        state_file = Path(tmp) / "worker-state.json"
        env = {**os.environ, SUPERVISOR_PID_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        outcome = supervise(
            [*child_argv, "--worker-state-file", str(state_file)],
            deadlines=deadlines,
            state_file=state_file,
            grace_s=grace_s,
            env=env,
            pass_fds=pass_fds,
            output=output,
        )
        record = read_state(state_file.with_name(RESULT_FILE))
    if outcome.killed_for is not None:
        raise _watchdog_error(outcome, layout, deadlines, grace_s)
    if outcome.returncode != 0:
        raise _child_error(outcome, record, output.error_line, layout)
    result: dict[str, Any] = record.get("result", {})
    return result


def run_supervised(
    spec: Path,
    *,
    model: str | None,
    preset: str | None = None,
    out: Path | None,
    clip_timeout_s: float | None = None,
    run_timeout_s: float | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    lock: bool | None = None,
    wait_for_gpu: bool = False,
    resume: bool = True,
    progress: Progress = print,
    on_clip: OnClip | None = None,
    gpu: str | None = None,
    force: bool = False,
) -> JobResult:
    """Plan, check the plan's projected cost (``InfeasiblePlanError`` unless ``force``), lock, then
    generate in a watched child; return what ``run_job`` returned there.

    Prints (through ``progress``) the HF cache the run uses before the worker starts. Raises the child's vgkit error
    class, ``GuardrailError`` past a deadline, ``WorkerKilledError`` on a signal.
    """
    from vgkit.generate.runner import JobResult, check_cost, default_run_dir, plan_job
    from vgkit.settings import describe_hub_cache
    from vgkit.supervise.lock import acquire_device_lock, device_lock_name

    check_grace(grace_s)
    spec_obj, choice, plan = plan_job(spec, model=model, preset=preset)
    run_dir = out if out is not None else default_run_dir(spec_obj, choice.model.name)
    deadlines = Deadlines.for_spec(spec_obj, clip_timeout_s=clip_timeout_s, run_timeout_s=run_timeout_s)
    cost = check_cost(choice, plan, deadlines, gpu=gpu, force=force, progress=progress)  # before any weights load
    held = None
    if lock if lock is not None else choice.device != "cpu":
        held = acquire_device_lock(
            device_lock_name(choice.device), run_dir=run_dir, wait=wait_for_gpu, progress=text_sink(progress)
        )
    options = {
        "--model": choice.model.name,
        "--preset": plan.preset["name"],
        "--out": str(run_dir),
        "--clip-timeout-s": repr(deadlines.clip_timeout_s),
        "--run-timeout-s": repr(deadlines.run_timeout_s),
        "--run-started-at": repr(deadlines.run_started_at),
        **({"--gpu": cost.card.name} if cost is not None else {}),
    }
    child = [sys.executable, "-m", "vgkit", "run", str(spec), *itertools.chain(*options.items())]
    child += ["--in-process", "--no-lock", *([] if resume else ["--no-resume"])]
    child.append("--no-cost-check")  # checked above; the child keeps the projection for its live check only
    progress(note(describe_hub_cache()))  # after any wait for the device: the line before the worker's own
    try:
        record = supervise_job(
            child,
            layout=RunLayout(run_dir),
            deadlines=deadlines,
            grace_s=grace_s,
            pass_fds=(held.fd,) if held is not None else (),
            progress=progress,
            on_clip=on_clip,
        )
    finally:
        if held is not None:
            held.release()
    if not record:
        raise VgkitError(f"the worker ended without recording a result for {run_dir}; re-run to resume")
    paths = ("run_dir", "final_video", "manifest", "bundle")
    fields: dict[str, Any] = {name: Path(value) if name in paths else value for name, value in record.items()}
    return JobResult(**fields)
