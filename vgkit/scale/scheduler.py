"""The driver of a scaled-out sweep or batch: one worker per GPU of a Ray cluster, cells served in turn.

1. Connect: ``address`` (or ``RAY_ADDRESS``) joins an existing cluster; with neither, a local Ray
   over this machine's GPUs is started (and stopped at the end).
2. Start one ``GpuWorker`` actor per GPU (``num_gpus=1``, an explicit ``num_cpus``), at most one
   per cell.
3. Give each idle worker a cell, preferring a cell of the model it has loaded. Each cell's run
   folder on the driver is claimed (vgkit.records.rundir) while it runs.
4. As each clip lands on a worker it comes home: checked by sha256, written into the driver's run
   folder (vgkit.scale.transfer). The driver holds the truth. Each progress event of a run
   (vgkit.records.events) comes home too, as it happens: printed as ``[<run>] <line>``, handed to
   ``on_event`` (a notebook's live table, vgkit.lab.progress_view) and appended to the run
   folder's ``events.jsonl`` (held until the run's plan is accepted there, as ``vgkit run`` does).
5. A worker that dies (process, node) costs at most the clip it was making: its cell goes back to
   the queue and resumes on another worker from the clips that came home; a replacement worker
   is started on the freed GPU. A cell that fails on its own (a spec, a deadline) is recorded and
   the others go on.
6. A finished cell is stitched, recorded (manifest, bundle, QA, ``sweep_run.json``) on the driver.
7. Deadlines: workers check them at every step (vgkit.supervise.guard); a worker still busy past a clip or
   run deadline plus the grace period is killed from here. ``Ctrl-C`` (or SIGTERM) kills every
   worker before returning, so no GPU job outlives the driver.

Ray is imported only here and only when a scaled-out run starts (``pip install vgkit[ray]``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vgkit.errors import SpecError, VgkitError
from vgkit.records.artifacts import RunLayout, atomic_write_json
from vgkit.records.events import Event as ProgressEvent
from vgkit.records.events import EventLog
from vgkit.scale.cells import Cell, task_for
from vgkit.scale.transfer import clips_at_home, commit_payload
from vgkit.supervise.guard import DEFAULT_GRACE_S, Deadlines

__all__ = ["MAX_ATTEMPTS", "CellOutcome", "RayOptions", "import_ray", "run_cells"]

Progress = Callable[[str], None]
Event = dict[str, Any]
# A cell whose worker dies this many times is recorded as failed instead of queued again.
MAX_ATTEMPTS = 3
CLOSE_WAIT_S = 10.0  # how long idle workers get to delete their scratch folders at the end
RAY_INSTALL = "pip install 'vgkit[ray]' (or bash setup.sh, which installs the pinned ray)"
# Environment a local cluster's workers get from the driver (caches, offline mode, vgkit settings).
_FORWARDED_PREFIXES = ("VGKIT_", "HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "PYTHONPATH")


@dataclass(frozen=True)
class RayOptions:
    """Where to run: ``address`` of an existing cluster (None: ``RAY_ADDRESS``, else a local Ray).

    ``logical_gpus`` declares GPUs a local Ray does not see (a CPU machine with the tiny models).
    """

    address: str | None = None
    logical_gpus: int | None = None


@dataclass
class CellOutcome:
    cell: Cell
    status: str  # "completed" | "failed" | "infeasible"
    detail: str
    placements: list[dict[str, Any]] = field(default_factory=list)


def import_ray() -> Any:
    """The ``ray`` module, or a one-line ``SpecError`` with the install command."""
    try:
        import ray
    except ImportError:
        raise SpecError(f"--ray: Ray is not installed in this environment; fix: {RAY_INSTALL}") from None
    return ray


@dataclass(eq=False)
class _Worker:
    handle: Any
    index: int
    info: dict[str, Any] | None = None  # pid, node, gpu (from its first event)
    loaded: str | None = None
    alive: bool = True


@dataclass(eq=False)
class _Active:
    cell: Cell
    worker: _Worker
    stream: Any
    held: Any  # vgkit.records.rundir.RunDir
    stack: contextlib.ExitStack
    deadlines: Deadlines
    placement: dict[str, Any]
    events: EventLog  # the run's progress events, for its events.jsonl on the driver
    clip_started_at: float | None = None
    plan_accepted: bytes | None = None


@dataclass
class _CellState:
    cell: Cell
    attempts: int = 0
    first_start: float | None = None  # epoch seconds: the run deadline counts from here, across workers
    t0: float | None = None  # perf counter at first start, for the records
    events: list[dict[str, Any]] = field(default_factory=list)
    progress_events: list[ProgressEvent] = field(default_factory=list)  # where a failed run stopped
    placements: list[dict[str, Any]] = field(default_factory=list)

    @property
    def elapsed_s(self) -> float:
        """Seconds since the first start (0.0 before it), to the millisecond."""
        return round(time.perf_counter() - self.t0, 3) if self.t0 is not None else 0.0


def _connect(ray: Any, options: RayOptions, address: str | None) -> bool:
    """Join or start a cluster; True when this call started a local one (stopped by the caller)."""
    if ray.is_initialized():
        return False
    if address is not None:
        ray.init(address=address, log_to_driver=False)
        return False
    ray.init(address="local", num_gpus=options.logical_gpus, include_dashboard=False, log_to_driver=False)
    return True


def _forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES) and "TOKEN" not in k.upper()}


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while the driver runs, so ``kill`` cleans up like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_cells(
    cells: list[Cell],
    *,
    options: RayOptions | None = None,
    progress: Progress = print,
    on_event: Callable[[Event], None] | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    qa: bool = True,
) -> list[CellOutcome]:
    """Run every cell on a Ray cluster's GPUs, one worker per GPU; return each cell's outcome in order.

    ``on_event`` sees every event (``start``, ``line``, ``load``, ``clip_home``, ``done`` (on the
    worker), ``lost``, ``killed``, then ``completed`` or ``failed`` (the run's outcome, once)) with
    the cell's name, the worker's pid, node and GPU, and the driver's time ``t``; a ``line``
    event's ``line`` is the run's structured progress event (vgkit.records.events.Event:
    ``stage``, clip, step, ...) and its ``stage`` is repeated.
    ``Ctrl-C`` kills every worker and re-raises; finished clips stay home.
    """
    from vgkit.scale.gpu_worker import GpuWorker

    ray = import_ray()
    options = options or RayOptions()
    address = options.address or os.environ.get("RAY_ADDRESS") or None
    started = _connect(ray, options, address)
    runtime_env = {"env_vars": _forwarded_env()} if address is None else None  # a local cluster's workers
    actor = ray.remote(num_gpus=1, num_cpus=1, max_restarts=0, runtime_env=runtime_env)  # one GPU, one CPU each
    driver = _Driver(ray, actor(GpuWorker), cells, progress, on_event, grace_s, qa)
    try:
        with _sigterm_as_interrupt():
            return driver.run()
    finally:
        driver.stop()
        if started:
            ray.shutdown()


@dataclass(eq=False)
class _Driver:
    ray: Any
    actor_class: Any  # GpuWorker as a Ray actor
    cells: list[Cell]
    progress: Progress
    on_event: Callable[[Event], None] | None
    grace_s: float
    qa: bool
    sweep_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    outcomes: dict[str, CellOutcome] = field(default_factory=dict)
    active: dict[Any, _Active] = field(default_factory=dict)  # by the stream of the worker's run
    workers: list[_Worker] = field(default_factory=list)
    start_failure: str | None = None

    def __post_init__(self) -> None:
        self.states = {cell.name: _CellState(cell) for cell in self.cells}
        self.pending = deque(self.cells)

    # -- workers ------------------------------------------------------------------------------
    def _start_worker(self) -> None:
        handle = self.actor_class.remote(sweep_id=self.sweep_id)
        self.workers.append(_Worker(handle=handle, index=len(self.workers)))

    def _idle_workers(self) -> list[_Worker]:
        busy = {a.worker for a in self.active.values()}  # workers compare by identity (eq=False)
        return [w for w in self.workers if w.alive and w not in busy]

    def _stop_worker(self, worker: _Worker) -> None:
        if worker.alive:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(worker.handle, no_restart=True)
            worker.alive = False

    def stop(self) -> None:
        """Let idle workers delete their scratch folders, kill every worker (a busy one's GPU job
        dies with it) and release the run folders held."""
        closing = [w.handle.close.remote() for w in self._idle_workers()]
        with contextlib.suppress(Exception):  # a worker that cannot say so is killed all the same
            self.ray.wait(closing, num_returns=len(closing), timeout=CLOSE_WAIT_S)
        for worker in self.workers:
            self._stop_worker(worker)
        for active in list(self.active.values()):
            active.stack.close()
        self.active.clear()

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> list[CellOutcome]:
        gpus = int(self.ray.cluster_resources().get("GPU", 0))
        if gpus < 1:
            raise SpecError(
                "ray: the cluster has no GPU; fix: run on a machine or cluster with GPUs, "
                "or declare logical ones for the tiny models (--logical-gpus N)"
            )
        self.progress(f"ray: {len(self.cells)} run(s) on {gpus} GPU(s), one worker each (sweep {self.sweep_id})")
        for _ in range(min(gpus, len(self.cells))):
            self._start_worker()
        while self.pending or self.active:
            self._assign()
            if not self.active:  # cells left and no worker alive to take them
                why = f"; the last could not start: {self.start_failure}" if self.start_failure else ""
                for cell in list(self.pending):
                    self._fail(cell, None, "WorkerLostError", f"no worker left alive to run it{why}", None)
                self.pending.clear()
                break
            ready, _ = self.ray.wait(list(self.active), num_returns=1, timeout=1.0)
            for stream in ready:
                self._next_event(stream)
            self._enforce_deadlines()
        return [self.outcomes[cell.name] for cell in self.cells]

    def _assign(self) -> None:
        for worker in self._idle_workers():
            if not self.pending:
                return
            cell = next((c for c in self.pending if c.model == worker.loaded), self.pending[0])
            self.pending.remove(cell)
            self._start_cell(cell, worker)

    def _start_cell(self, cell: Cell, worker: _Worker) -> None:
        from vgkit.records.rundir import open_run_dir
        from vgkit.spec.schema import load_spec

        state = self.states[cell.name]
        state.attempts += 1
        if state.first_start is None:
            state.first_start, state.t0 = time.time(), time.perf_counter()
        stack = contextlib.ExitStack()
        try:
            held = stack.enter_context(open_run_dir(cell.run_dir, progress=lambda line: self._show(cell, line)))
            deadlines = Deadlines.for_spec(load_spec(cell.spec_path), started_at=state.first_start)
            home = clips_at_home(RunLayout(cell.run_dir))
            stream = worker.handle.run.remote(task_for(cell), home, deadlines)
        except VgkitError as exc:  # the run folder is busy or not vgkit's, or the spec changed
            stack.close()
            self._fail(cell, None, type(exc).__name__, str(exc), exc.exit_code)
            return
        placement = {
            "attempt": state.attempts,
            "clips_home_at_start": len(home),
            "started_at": _utc(),
            "started_at_s": round(time.time(), 3),
        }
        state.placements.append(placement)
        self.active[stream] = _Active(cell, worker, stream, held, stack, deadlines, placement, EventLog(lambda _: None))
        self._show(cell, f"queued on worker {worker.index} (attempt {state.attempts}, {len(home)} clip(s) home)")

    def _next_event(self, stream: Any) -> None:
        active = self.active[stream]
        try:
            event: Event = self.ray.get(next(stream))
        except StopIteration:
            event = {"kind": "error", "error_class": "WorkerLostError", "message": "stream ended early"}
        except self.ray.exceptions.RayTaskError as exc:
            event = {"kind": "error", "error_class": type(exc).__name__, "message": str(exc).splitlines()[0]}
        except self.ray.exceptions.RayError as exc:  # the worker's process or node is gone
            self._lost(active, exc)
            return
        try:
            self._handle(active, event)
        except VgkitError as exc:  # a clip that fails its sha256 check on arrival, or a plan refused here
            self._stop_worker(active.worker)
            self._end(active, outcome="failed")
            self._fail(active.cell, active, type(exc).__name__, str(exc), exc.exit_code)
            self._start_worker()

    def _emit(self, active: _Active | None, cell: Cell, kind: str, **fields: Any) -> None:
        if self.on_event is not None:
            where = (active.worker.info or {}) if active is not None else {}
            self.on_event({"kind": kind, "cell": cell.name, "model": cell.model, "t": time.time(), **where, **fields})

    def _show(self, cell: Cell, line: str) -> None:
        """Record a progress line of ``cell`` (for its sweep_run.json) and print it with the cell's name."""
        state = self.states[cell.name]
        state.events.append({"t_s": state.elapsed_s, "line": line})
        for part in line.splitlines():
            self.progress(f"[{cell.name}] {part}")

    # -- events -------------------------------------------------------------------------------
    def _handle(self, active: _Active, event: Event) -> None:
        """One event of ``active``'s run, by its ``kind`` (vgkit.scale.gpu_worker ``GpuWorker.run``)."""
        cell, worker = active.cell, active.worker
        match event["kind"]:
            case "start":
                worker.info = {k: event[k] for k in ("pid", "node", "gpu")}
                worker.loaded = event.get("loaded")
                active.placement.update(worker.info)
                self._show(cell, f"running on node {event['node']} GPU {event['gpu']} (worker pid {event['pid']})")
                self._emit(active, cell, "start", worker_t=event["t"], loads=event.get("loads", []))
            case "line":
                line: ProgressEvent = event["line"]
                if line.stage == "clip-start" or (line.stage == "decode" and line.figures.get("saved_latents")):
                    active.clip_started_at = time.time()  # a clip's deadline counts from here
                self._progress(active, line)
            case "load":
                worker.loaded = str(event["model"])
                self._emit(active, cell, "load", loaded=event["model"], load_s=event["load_s"], worker_t=event["t"])
            case "clip":
                self._accept_plan(active, event.get("plan"))
                index = commit_payload(RunLayout(cell.run_dir), event["payload"]).index
                active.clip_started_at = None
                self._show(cell, f"clip {index:03d} came home (sha256 verified)")
                self._emit(active, cell, "clip_home", index=index)
            case "done":
                self._accept_plan(active, event.get("plan"))
                self._emit(active, cell, "done", worker_t=event["t"])
                worker.loaded = cell.model
                self._finish(active)
            case "error":
                self._end(active, outcome="failed")
                self._fail(cell, active, str(event["error_class"]), str(event["message"]), event.get("exit_code"))

    def _progress(self, active: _Active, line: ProgressEvent) -> None:
        """A progress event of ``active``'s run: kept for its events.jsonl, printed, sent on."""
        active.events(line)
        self.states[active.cell.name].progress_events.append(line)
        self._show(active.cell, str(line))
        self._emit(active, active.cell, "line", line=line, stage=line.stage)

    def _accept_plan(self, active: _Active, plan: bytes | None) -> None:
        if plan is not None and plan != active.plan_accepted:
            active.held.accept(json.loads(plan))
            active.plan_accepted = plan
            if active.events.run_dir is None:  # the run folder is this run's now: its events go there
                active.events.write_to(active.cell.run_dir)

    def _lost(self, active: _Active, exc: BaseException) -> None:
        cell, worker = active.cell, active.worker
        worker.alive = False
        self._end(active, outcome="worker lost")
        why = _reason(exc)
        self._emit(active, cell, "lost", error=why)
        if worker.info is None:  # died before its first event: it could not start (e.g. the GPU's lock)
            self.start_failure = why  # not replaced; the run waits for another worker
            self._show(cell, f"worker {worker.index} could not start ({why}); the run waits for another worker")
            self.pending.appendleft(cell)
            return
        if self.states[cell.name].attempts >= MAX_ATTEMPTS:
            self._fail(cell, active, "WorkerLostError", f"its worker died {MAX_ATTEMPTS} times; last: {why}", None)
        else:
            self._show(cell, f"worker {worker.index} lost ({why}); resuming on another worker from the clips home")
            self.pending.appendleft(cell)
        if self.pending:
            self._start_worker()  # a fresh worker on the freed GPU

    def _end(self, active: _Active, *, outcome: str) -> None:
        del self.active[active.stream]
        active.placement.update(ended_at=_utc(), ended_at_s=round(time.time(), 3), outcome=outcome)
        active.stack.close()

    def _enforce_deadlines(self) -> None:
        now = time.time()
        for active in list(self.active.values()):
            passed = active.deadlines.first_passed(
                clip_started_at=active.clip_started_at, now=now, slack_s=self.grace_s
            )
            if passed is None:
                continue
            self._stop_worker(active.worker)
            self._end(active, outcome=f"killed: {passed}")
            message = (
                f"{passed.replace('_', ' ')} passed by more than the {self.grace_s:g} s grace period; "
                f"worker {active.worker.index} ({active.worker.info}) was killed"
            )
            self._emit(active, active.cell, "killed", reason=passed)
            self._fail(active.cell, active, "GuardrailError", message, 6)
            if self.pending:
                self._start_worker()

    # -- records ------------------------------------------------------------------------------
    def _finish(self, active: _Active) -> None:
        from vgkit.evaluate.qa import run_qa
        from vgkit.generate.runner import finish_run
        from vgkit.spec.schema import load_spec

        cell = active.cell
        try:
            self._progress(
                active, ProgressEvent("stitch", figures={"final": "final/final_stitched.mp4", "on": "driver"})
            )
            bundle = finish_run(cell.run_dir)  # from the clips that came home
            detail = f"bundle {bundle.name}"
            if self.qa:
                self._progress(active, ProgressEvent("qa"))
                record = run_qa(cell.run_dir, reference=Path(load_spec(cell.spec_path).reference_image))
                detail = "; ".join(record["verdicts"]) + f"; {detail}"
        except (VgkitError, OSError) as exc:
            self._end(active, outcome="failed")
            code = exc.exit_code if isinstance(exc, VgkitError) else None
            self._fail(cell, active, type(exc).__name__, str(exc), code)
            return
        self._end(active, outcome="completed")
        self._record(cell, "completed")
        self.outcomes[cell.name] = CellOutcome(cell, "completed", detail, self.states[cell.name].placements)
        self._show(cell, f"completed ({detail})")
        self._emit(active, cell, "completed", status="completed", detail=detail)

    def _fail(self, cell: Cell, active: _Active | None, error_class: str, message: str, code: int | None) -> None:
        from vgkit.evaluate.sweep import FAILURE_FILE, FAILURE_SCHEMA, stage_reached

        status = "infeasible" if error_class == "InfeasiblePlanError" else "failed"
        state = self.states[cell.name]
        stage = stage_reached(state.progress_events)
        if cell.run_dir.is_dir() and (cell.run_dir / ".vgkit-run.json").is_file():
            if active is not None and active.events.run_dir is None:  # the folder stays: so do its events
                active.events.write_to(cell.run_dir)
            atomic_write_json(
                cell.run_dir / FAILURE_FILE,
                {
                    "schema": FAILURE_SCHEMA,
                    "model": cell.model,
                    "error_class": error_class,
                    "message": message,
                    "exit_code": code,
                    "stage": stage,
                    "elapsed_s": state.elapsed_s,
                    "at": _utc(),
                },
            )
            self._record(cell, status)
        self.outcomes[cell.name] = CellOutcome(cell, status, f"{error_class}: {message}", state.placements)
        self._show(cell, f"{status}: {error_class}: {message}")
        self._emit(active, cell, "failed", status=status, error_class=error_class, detail=message)

    def _record(self, cell: Cell, status: str) -> None:
        from vgkit.evaluate.sweep import SWEEP_RUN_FILE, SWEEP_RUN_SCHEMA

        state = self.states[cell.name]
        atomic_write_json(
            cell.run_dir / SWEEP_RUN_FILE,
            {
                "schema": SWEEP_RUN_SCHEMA,
                "model": cell.model,
                "status": status,
                "started_at": _utc(state.first_start),
                "started_at_s": state.first_start,  # the run's events.jsonl from then on is this sweep's
                "wall_s": state.elapsed_s,
                "events": state.events,
                "gpu_samples": [],
                "placements": state.placements,  # where each attempt ran: node, GPU, worker pid
            },
        )


_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(?P<line>\w+Error: .+)$")


def _reason(exc: BaseException) -> str:
    """One line for a lost worker: the error that killed its creation, when Ray's message carries
    one (e.g. ``DeviceBusyError: ...``), else Ray's own first line."""
    text = str(exc)
    own = [m["line"] for line in text.splitlines() if (m := _ERROR_LINE.match(line))]
    own = [line for line in own if not line.startswith(("ActorDiedError", "RayActorError", "ActorUnavailableError"))]
    first = text.splitlines()[0] if text else ""
    return own[-1] if own else f"{type(exc).__name__}: {first}".rstrip(": ")


def _utc(at: float | None = None) -> str:
    """Epoch seconds ``at`` (None: now) as UTC ISO 8601 to the second."""
    return datetime.fromtimestamp(at or time.time(), UTC).isoformat(timespec="seconds")
