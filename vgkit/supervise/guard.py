"""Cost guardrails: clip and run deadlines, checked in-process and enforced by a watchdog.

Two layers, because a deadline that only the guarded code checks fails exactly when that code
hangs:

1. ``RunGuard`` (in the generating process): the chain calls ``start_clip`` per clip, checks
   the deadlines at every denoising step through the step hook (a cooperative interrupt that
   sets ``pipe._interrupt``) and before and after the VAE decode. A passed deadline raises
   ``DeadlineExceeded`` (a ``GuardrailError``, kind ``timeout``, exit 6); the chain logs the
   clip as aborted. ``start_clip`` also writes a small state file that the watchdog reads. Each
   step it reports is a ``denoise`` event (vgkit.records.events), with the ETA as a field.
2. ``supervise`` (in the parent): runs the generating process in its own session (process
   group) and kills the whole group (SIGTERM, then SIGKILL) once a deadline plus a grace period
   has passed, so no GPU job survives a hung call. It also reads the child's stdout and stderr
   line by line (a notebook cell shows what a child process prints only this way), without
   letting a full pipe block the child.
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgkit.errors import GuardrailError, SpecError
from vgkit.records.artifacts import atomic_write_json, read_json_object
from vgkit.records.events import Event, Figure, Progress

if TYPE_CHECKING:
    from vgkit.spec.schema import RunSpec

__all__ = [
    "DEFAULT_CLIP_TIMEOUT_S",
    "DEFAULT_GRACE_S",
    "REMOTE_GRACE_S",
    "DeadlineExceeded",
    "Deadlines",
    "RunGuard",
    "WatchdogOutcome",
    "check_grace",
    "kill_process_group",
    "read_state",
    "supervise",
]

DEFAULT_CLIP_TIMEOUT_S = 600.0
# The grace periods, here only: the watchdog's past a deadline, and a remote job's past its run
# deadline (the remote `timeout` that ends it even when nobody follows it).
DEFAULT_GRACE_S = 60.0
REMOTE_GRACE_S = 300.0
# How long the watchdog waits after SIGTERM before it sends SIGKILL to the group.
TERM_WAIT_S = 5.0
POLL_S = 0.2  # how often the watchdog reads the child's state
PROGRESS_EVERY_S = 5.0  # the least time between two denoise events, but for a clip's last step

# (line without its newline, True when the child wrote it to stderr)
OutputSink = Callable[[str, bool], None]
# After the child's group is gone, how long to wait for the last buffered output.
DRAIN_S = 5.0


def check_grace(grace_s: float) -> float:
    """``grace_s`` if it is a finite number of seconds >= 0, else a ``SpecError`` naming the flag."""
    if not (isinstance(grace_s, int | float) and math.isfinite(grace_s) and grace_s >= 0):
        shown = f"{grace_s:g}" if isinstance(grace_s, int | float) else repr(grace_s)
        raise SpecError(f"--watchdog-grace-s = {shown}: must be a number of seconds >= 0; fix: e.g. 60 (the default)")
    return float(grace_s)


class DeadlineExceeded(GuardrailError):
    """A clip or run deadline passed (kind ``timeout``); ``deadline`` says which: ``clip_deadline``,
    ``run_deadline`` or ``projected_past_deadline`` (the live check)."""

    def __init__(self, message: str, *, deadline: str, clip_index: int | None, phase: str) -> None:
        super().__init__(message, clip_index=clip_index, phase=phase)
        self.deadline = deadline


@dataclass(frozen=True)
class Deadlines:
    """The limits of one run. ``run_started_at`` is wall-clock epoch seconds, so a parent and its
    worker child measure the run deadline from the same instant."""

    clip_timeout_s: float
    run_timeout_s: float
    run_started_at: float

    @classmethod
    def for_run(
        cls,
        *,
        clip_count: int,
        clip_timeout_s: float | None,
        run_timeout_s: float | None,
        started_at: float | None = None,
    ) -> Deadlines:
        """Defaults: 600 s a clip, ``clip_count`` x the clip timeout for the run."""
        clip_s = DEFAULT_CLIP_TIMEOUT_S if clip_timeout_s is None else float(clip_timeout_s)
        run_s = clip_count * clip_s if run_timeout_s is None else float(run_timeout_s)
        for name, value in (("clip_timeout_s", clip_s), ("run_timeout_s", run_s)):
            if not value > 0:
                raise SpecError(f"{name} = {value}: must be a positive number of seconds; fix: e.g. 600")
        return cls(clip_s, run_s, time.time() if started_at is None else started_at)

    @classmethod
    def for_spec(
        cls,
        spec: RunSpec,
        *,
        clip_timeout_s: float | None = None,
        run_timeout_s: float | None = None,
        started_at: float | None = None,
    ) -> Deadlines:
        """The spec's ``clip_timeout_s``/``run_timeout_s`` (one clip per shot), each replaced by an
        explicit value (the CLI's)."""
        return cls.for_run(
            clip_count=len(spec.shots),
            clip_timeout_s=spec.clip_timeout_s if clip_timeout_s is None else clip_timeout_s,
            run_timeout_s=spec.run_timeout_s if run_timeout_s is None else run_timeout_s,
            started_at=started_at,
        )

    @property
    def run_deadline_at(self) -> float:
        return self.run_started_at + self.run_timeout_s

    def first_passed(self, *, clip_started_at: float | None, now: float, slack_s: float = 0.0) -> str | None:
        """``"clip_deadline"``/``"run_deadline"`` if that deadline (+ ``slack_s``) has passed, else None."""
        if clip_started_at is not None and now > clip_started_at + self.clip_timeout_s + slack_s:
            return "clip_deadline"
        if now > self.run_deadline_at + slack_s:
            return "run_deadline"
        return None

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(eq=False)
class RunGuard:
    """In-process deadline checks and per-step progress for the clips of one run.

    ``live_check``: after two denoise steps of the first clip denoised in this run, project the
    clip's denoise time from the measured step time and stop at once when that alone is past the
    clip deadline (on a GPU; ``vgkit.cost`` gives ``projected_clip_s`` per clip)."""

    deadlines: Deadlines
    _: KW_ONLY
    clip_count: int
    state_file: Path | None = None
    progress: Progress = print
    live_check: bool = False
    projected_clip_s: dict[int, float] | None = None
    clip_index: int | None = field(default=None, init=False)
    clip_started_at: float | None = field(default=None, init=False)
    phase: str = field(default="load", init=False)
    live: dict[str, Any] | None = field(default=None, init=False)  # the measured projection, once made
    _last_report: float = field(default=0.0, init=False)
    _first_step_at: float | None = field(default=None, init=False)

    def start_clip(self, index: int) -> None:
        self.clip_index = index
        self.clip_started_at = time.time()
        self._first_step_at = None
        self.set_phase("denoise")

    def projection_record(self) -> dict[str, Any]:
        """What was projected for the clip in progress (planner, and live after two steps)."""
        planned = (self.projected_clip_s or {}).get(self.clip_index) if self.clip_index is not None else None
        live = self.live if self.live is not None and self.live["clip_index"] == self.clip_index else None
        return {"planned_clip_s": None if planned is None else round(planned, 1), "live": live}

    def end_clip(self) -> None:
        """Between clips only the run deadline applies."""
        self.clip_index = None
        self.clip_started_at = None
        self.set_phase("between_clips")

    def set_phase(self, phase: str) -> None:
        """Record the phase (and the clip start) in the state file the watchdog reads."""
        self.phase = phase
        if self.state_file is not None:
            state = {"pid": os.getpid(), "clip_index": self.clip_index, "clip_started_at": self.clip_started_at}
            atomic_write_json(self.state_file, {**state, "phase": phase, "deadlines": self.deadlines.to_dict()})

    def passed(self) -> str | None:
        return self.deadlines.first_passed(clip_started_at=self.clip_started_at, now=time.time())

    def check(self, *, phase: str) -> None:
        """Raise ``DeadlineExceeded`` if the clip or run deadline has passed, or the live check
        projected the clip past its deadline."""
        if self.live is not None and self.live["past_deadline"] and self.live["clip_index"] == self.clip_index:
            live = self.live
            raise DeadlineExceeded(
                f"clip {self.clip_index:03d}: after {live['steps_measured']} of {live['steps_total']} steps at "
                f"{live['step_s']:.2f} s a step, the denoise alone projects {live['projected_denoise_s']:.0f} s, past "
                f"the clip deadline of {self.deadlines.clip_timeout_s:g} s; stopped now instead of at the deadline; "
                "fix: fewer steps, a smaller size or a lighter preset (vgkit check shows projections)",
                deadline="projected_past_deadline",
                clip_index=self.clip_index,
                phase=phase,
            )
        failure = self.passed()
        if failure is None:
            return
        limit_s = self.deadlines.clip_timeout_s if failure == "clip_deadline" else self.deadlines.run_timeout_s
        what = "clip" if failure == "clip_deadline" else "run"
        where = f"clip {self.clip_index:03d}" if self.clip_index is not None else "run"
        raise DeadlineExceeded(
            f"{where}: the {what} deadline of {limit_s:g} s passed during {phase}; "
            f"the run stopped and finished clips are kept; fix: raise --{what}-timeout-s (or the spec's "
            f"{what}_timeout_s) or lower steps/size, then re-run with --resume",
            deadline=failure,
            clip_index=self.clip_index,
            phase=phase,
        )

    def on_step(self, steps_done: int, steps_total: int) -> bool:
        """Step hook: report progress with ETA; True (stop now) once a deadline has passed, or
        once the live check projects this clip past it."""
        now = time.time()
        started = self.clip_started_at or now
        if self.live_check and self.live is None and self._live_projection(steps_done, steps_total, now, started):
            return True
        if steps_done == steps_total or now - self._last_report >= PROGRESS_EVERY_S:
            self._last_report = now
            elapsed_s = now - started
            eta_s = elapsed_s / steps_done * (steps_total - steps_done) if steps_done else 0.0
            self.progress(
                Event(
                    "denoise",
                    **self._step_fields(steps_done, steps_total, now),
                    elapsed_s=round(elapsed_s, 3),
                    eta_s=round(eta_s, 3),
                    figures={"run_deadline_in_s": round(self.deadlines.run_deadline_at - now, 3)},
                )
            )
        return self.passed() is not None

    def _step_fields(self, step: int, total: int, now: float) -> dict[str, Any]:
        """What each step's event says about where the run is."""
        return {
            "clip_index": self.clip_index or 0,
            "clip_count": self.clip_count,
            "step": step,
            "total": total,
            "at": now,
        }

    def _live_projection(self, steps_done: int, steps_total: int, now: float, started: float) -> bool:
        """Measure the second step; project the clip's denoise; True when that is past the deadline.

        The second step alone is timed (the first carries prompt encoding and warm-up), so the
        projection is time to step 1 + (steps - 1) x the second step's time: a floor, since the
        decode comes on top.
        """
        if steps_done == 1:
            self._first_step_at = now
            return False
        if steps_done != 2 or self._first_step_at is None:
            return False
        step_s = now - self._first_step_at
        projected = (self._first_step_at - started) + step_s * (steps_total - 1)
        past = projected > self.deadlines.clip_timeout_s
        self.live = {
            "clip_index": self.clip_index,
            "steps_measured": 2,
            "steps_total": steps_total,
            "step_s": round(step_s, 3),
            "projected_denoise_s": round(projected, 1),
            "past_deadline": past,
        }
        figures: dict[str, Figure] = {
            "step_s": round(step_s, 3),
            "projected_denoise_s": round(projected, 1),
            "planned_clip_s": self.projection_record()["planned_clip_s"],
            "clip_timeout_s": self.deadlines.clip_timeout_s,
        }
        self.progress(Event("projection", **self._step_fields(steps_done, steps_total, now), figures=figures))
        return past


def read_state(state_file: Path) -> dict[str, Any]:
    """The worker's last state record, or ``{}`` before it wrote one (or while it is unreadable)."""
    return read_json_object(state_file) or {}


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def kill_process_group(proc: subprocess.Popen[bytes], *, term_wait_s: float = TERM_WAIT_S) -> None:
    """SIGTERM the group led by ``proc``, SIGKILL whatever is left after ``term_wait_s``, reap ``proc``."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=term_wait_s)
    _signal_group(proc.pid, signal.SIGKILL)  # the leader if still alive, and every descendant
    proc.wait()


@dataclass(frozen=True)
class WatchdogOutcome:
    """How the child ended: its return code (negative: killed by that signal), what the watchdog
    killed it for (None: it ended by itself) and its last state record."""

    returncode: int
    killed_for: str | None
    state: Mapping[str, Any]


class _LinePump:
    """Reads a child's stdout and stderr pipes as they fill and hands out whole lines."""

    def __init__(self, proc: subprocess.Popen[bytes], sink: OutputSink) -> None:
        self._sink = sink
        self._selector = selectors.DefaultSelector()
        self._partial = {False: b"", True: b""}  # by whether it is stderr: the line being read
        for stream, is_err in ((proc.stdout, False), (proc.stderr, True)):
            assert stream is not None
            self._selector.register(stream.fileno(), selectors.EVENT_READ, is_err)

    def read(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for output and hand out every whole line that arrived."""
        if not self._selector.get_map():
            time.sleep(timeout_s)
            return
        for key, _ in self._selector.select(timeout_s):
            is_err: bool = key.data
            data = os.read(key.fd, 1 << 16)
            if not data:  # EOF: every writer of this pipe is gone
                self._selector.unregister(key.fd)
                self._emit(self._partial.pop(is_err), is_err)
                continue
            *lines, self._partial[is_err] = (self._partial[is_err] + data).split(b"\n")
            for line in lines:
                self._emit(line, is_err)

    def drain(self) -> None:
        """Read until both pipes are closed (bounded: a descendant that left the group could hold them)."""
        deadline = time.monotonic() + DRAIN_S
        while self._selector.get_map() and time.monotonic() < deadline:
            self.read(0.1)
        for is_err in list(self._partial):
            self._emit(self._partial.pop(is_err), is_err)
        self._selector.close()

    def _emit(self, raw: bytes, is_err: bool) -> None:
        line = raw.decode("utf-8", errors="replace").rsplit("\r", 1)[-1]  # progress bars redraw with \r
        if line:
            self._sink(line, is_err)


def supervise(
    argv: Sequence[str],
    *,
    deadlines: Deadlines,
    state_file: Path,
    output: OutputSink,
    env: Mapping[str, str],
    grace_s: float = DEFAULT_GRACE_S,
    pass_fds: Sequence[int] = (),
) -> WatchdogOutcome:
    """Run ``argv`` in a new session and kill its whole process group past a deadline + grace.

    The clip deadline counts from the ``clip_started_at`` the worker last wrote to
    ``state_file``; the run deadline from ``deadlines.run_started_at``. If this process is
    interrupted (Ctrl-C), the group is killed too. The child's stdout and stderr lines go to
    ``output``; its stdin is closed. ``grace_s`` is checked by the caller (``check_grace``).
    """
    proc = subprocess.Popen(
        list(argv),
        env=dict(env),
        start_new_session=True,
        pass_fds=pass_fds,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pump = _LinePump(proc, output)
    killed_for: str | None = None
    try:
        while killed_for is None:
            pump.read(POLL_S)
            if proc.poll() is not None:
                break
            started = read_state(state_file).get("clip_started_at")
            killed_for = deadlines.first_passed(
                clip_started_at=float(started) if isinstance(started, int | float) else None,
                now=time.time(),
                slack_s=grace_s,
            )
        # past a deadline: the whole group; ended by itself: the descendants it left behind
        kill_process_group(proc, term_wait_s=0.0 if killed_for is None else TERM_WAIT_S)
        pump.drain()
        return WatchdogOutcome(returncode=proc.returncode, killed_for=killed_for, state=read_state(state_file))
    except BaseException:
        kill_process_group(proc)
        raise
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
