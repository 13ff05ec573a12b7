"""The main job: spec -> plan -> checks -> generate (chained) -> stitch -> manifest -> bundle.

The CLI (``vgkit run``) and the generate notebook both call ``run_job``; nothing else drives a run.
Every plan-time check (spec, plan, images decoded, attention backend on this device, weights
present, token budget) runs before the run folder is touched; the folder is then claimed and
locked (vgkit/records/rundir.py), and nothing of a previous run in it changes until the model has loaded
and the new plan is accepted. Then every progress event of the run so far (vgkit.records.events), and each
later one, is appended to the run folder's ``events.jsonl``; a run that stops on an error ends it
with a ``failed`` event (written also when it stopped before the plan was accepted, in a run folder
that stays).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vgkit.errors import SpecError, VgkitError
from vgkit.finish.pack import write_bundle
from vgkit.models import ModelAdapter, ModelChoice, adapter, choose_model
from vgkit.records.artifacts import RunLayout
from vgkit.records.events import Event, EventLog, Progress, text_sink
from vgkit.records.failures import failed_event
from vgkit.records.rundir import MARKER_NAME, open_run_dir
from vgkit.settings import offline_hub
from vgkit.spec.plan import RunPlan, make_plan
from vgkit.spec.schema import RunSpec, load_spec

__all__ = [
    "JobResult",
    "check_before_run",
    "default_run_dir",
    "device_lock",
    "finish_run",
    "load_generator",
    "plan_job",
    "run_job",
]

if TYPE_CHECKING:
    from vgkit.cost.planner import PlanCost
    from vgkit.generate.generator import ClipGenerator
    from vgkit.supervise.guard import Deadlines
    from vgkit.supervise.lock import DeviceLock

GeneratorFactory = Callable[[ModelAdapter, Path, str], "ClipGenerator"]


@dataclass(frozen=True)
class JobResult:
    run_dir: Path
    final_video: Path
    manifest: Path
    bundle: Path
    model: str
    final_frames: int
    final_seconds: float


def default_run_dir(spec: RunSpec, model: str) -> Path:
    return Path("runs") / f"{spec.name}-{model}"


def plan_job(
    spec_path: str | Path, *, model: str | None = None, preset: str | None = None, planning_only: bool = False
) -> tuple[RunSpec, ModelChoice, RunPlan]:
    """Load and validate the spec, choose the model and preset and plan every clip; loads no model.

    ``model``/``preset`` override the spec's. ``planning_only`` accepts a real model whose
    weights or GPU are absent (for ``vgkit check``).
    """
    spec = load_spec(spec_path)
    choice = choose_model(model or spec.model, planning_only=planning_only)
    return spec, choice, make_plan(spec, choice.model, preset=choice.preset(preset or spec.preset))


def check_before_run(spec: RunSpec, choice: ModelChoice, plan: RunPlan) -> Path:
    """The checks a plan must pass before any run folder is written; return the checkpoint snapshot.

    Decodes the reference image and every keyframe, refuses an attention backend this device
    cannot run, locates the weights (``ModelUnavailableError``) and counts every prompt against the
    token budget, all without loading the pipeline.
    """
    from vgkit.hub.checkpoints import locate_checkpoint
    from vgkit.models.speed import CPU_ATTENTION_BACKENDS
    from vgkit.spec.images import load_rgb
    from vgkit.spec.tokens import check_token_budget

    for path in [spec.reference_image, *(Path(c.source_image) for c in plan.clips if c.source_image)]:
        load_rgb(path)  # a SpecError line for any image that does not decode
    backend = str(plan.speed["attention_backend"])
    if choice.device == "cpu" and backend != "default" and backend not in CPU_ATTENTION_BACKENDS:
        raise SpecError(
            f"speed.attention_backend = {backend!r}: does not run on CPU, and this run is on CPU; "
            f"fix: use 'default' or one of {', '.join(CPU_ATTENTION_BACKENDS)}, or run on a CUDA GPU"
        )
    snapshot = locate_checkpoint(adapter(choice.model.name))
    check_token_budget(plan, choice.model.load_tokenizer(snapshot))
    return snapshot


def _silent(line: object) -> None:
    """A progress sink that prints nothing."""


def check_cost(
    choice: ModelChoice,
    plan: RunPlan,
    deadlines: Deadlines,
    *,
    gpu: str | None = None,
    force: bool = False,
    progress: Progress = print,
) -> PlanCost | None:
    """Project ``plan`` (``vgkit.cost``) and refuse it unless ``force`` when it cannot finish; None
    where nothing is projected (tiny models, CPU runs with no ``gpu`` named)."""
    from vgkit.cost.planner import check_plan

    return check_plan(
        plan,
        choice.model,
        choice.model.preset(str(plan.preset["name"])),
        device=choice.device,
        gpu_memory_gib=choice.gpu_memory_gib,
        clip_timeout_s=deadlines.clip_timeout_s,
        run_timeout_s=deadlines.run_timeout_s,
        gpu=gpu,
        force=force,
        progress=text_sink(progress),
    )


def finish_run(run_dir: Path) -> Path:
    """Stitch, write the manifest and bundle an already generated run; return the bundle path."""
    from vgkit.finish.manifest import write_manifest
    from vgkit.finish.stitch import stitch_run

    write_manifest(run_dir, stitch=stitch_run(run_dir))
    return write_bundle(run_dir)


@offline_hub()  # a fresh context per call (contextlib's ContextDecorator)
def run_job(
    spec_path: str | Path,
    *,
    model: str | None = None,
    preset: str | None = None,
    out: str | Path | None = None,
    progress: Progress = print,
    clip_timeout_s: float | None = None,
    run_timeout_s: float | None = None,
    run_started_at: float | None = None,
    lock: bool | None = None,
    wait_for_gpu: bool = False,
    resume: bool = True,
    state_file: Path | None = None,
    make_generator: GeneratorFactory | None = None,
    on_clip: Callable[[int, Path], None] | None = None,
    gpu: str | None = None,
    force: bool = False,
    cost_check: bool = True,
) -> JobResult:
    """Run a whole job in this process and return where its outputs are.

    Re-running resumes verified clips (``resume=False`` regenerates them). Deadlines default to
    the spec's ``clip_timeout_s``/``run_timeout_s``. ``lock`` takes the device lock (None: only on
    a GPU). ``state_file`` is where a supervising watchdog reads the clip in progress. The process
    is offline for the Hub while the job runs, and only then (``offline_hub``: restored on return
    or error), unless ``HF_HUB_OFFLINE`` was set. ``out`` must be new, empty or a vgkit run
    folder, and no other run may hold it (vgkit/records/rundir.py).
    A real model's plan is projected on this machine's GPU (or ``gpu``) and refused before any
    weights load when it cannot meet its deadlines or fit (``InfeasiblePlanError``), unless
    ``force``; ``cost_check=False`` only keeps the projection for the clip logs and the live check
    (a supervised worker, whose parent already printed and enforced it).
    """
    from vgkit.generate.chain import run_chain
    from vgkit.supervise.guard import Deadlines, RunGuard

    spec, choice, plan = plan_job(spec_path, model=model, preset=preset)
    events = EventLog(progress)
    events(Event("note", detail=choice.announce()))
    run_dir = Path(out) if out else default_run_dir(spec, choice.model.name)
    snapshot = check_before_run(spec, choice, plan)
    deadlines = Deadlines.for_spec(
        spec, clip_timeout_s=clip_timeout_s, run_timeout_s=run_timeout_s, started_at=run_started_at
    )
    quiet = not cost_check  # a supervised worker: its parent printed and enforced the projection
    cost = check_cost(choice, plan, deadlines, gpu=gpu, force=force or quiet, progress=_silent if quiet else events)
    guard = RunGuard(
        deadlines,
        clip_count=len(plan.clips),
        state_file=state_file,
        progress=events,
        live_check=choice.device != "cpu",
        projected_clip_s={i: p.seconds_per_clip for i, p in enumerate(cost.clips)} if cost else None,
    )
    claimed = False
    try:
        with open_run_dir(run_dir, progress=text_sink(events)) as held_dir:
            claimed = True
            root = held_dir.layout.root
            take_lock = lock if lock is not None else choice.device != "cpu"
            with (
                device_lock(choice.device, run_dir=root, wait=wait_for_gpu, progress=events)
                if take_lock
                else nullcontext()
            ):
                events(Event("plan", detail=plan.summary()))
                events(Event("load", figures={"model": choice.model.title, "snapshot": str(snapshot)}))
                generator = load_generator(spec, choice, plan, snapshot, make_generator=make_generator)
                events(Event("loaded", elapsed_s=round(generator.load_s, 3)))
                guard.check(phase="load")
                held_dir.accept(plan.to_dict())  # the first change to anything a previous run left here
                events.write_to(root)  # the events so far, and every later one, go to events.jsonl
                run_chain(
                    spec, plan, held_dir.layout, generator, progress=events, guard=guard, resume=resume, on_clip=on_clip
                )
            events(Event("stitch", figures={"final": "final/final_stitched.mp4"}))
            bundle = finish_run(root)
    except VgkitError as exc:
        events(failed_event(exc))
        if claimed and events.run_dir is None and (run_dir / MARKER_NAME).is_file():
            events.write_to(run_dir)  # a run folder this attempt held, that stays: it keeps the attempt's events
        raise
    layout = RunLayout(run_dir)
    events(Event("run-done", figures={"final_frames": plan.final_frames, "final_seconds": float(plan.final_seconds)}))
    return JobResult(
        run_dir=run_dir,
        final_video=layout.final,
        manifest=layout.manifest,
        bundle=bundle,
        model=choice.model.name,
        final_frames=plan.final_frames,
        final_seconds=float(plan.final_seconds),
    )


def device_lock(device: str, *, run_dir: Path, wait: bool, progress: Progress) -> DeviceLock:
    """The one-job-per-device lock of ``device`` (vgkit.supervise.lock), held for ``run_dir``."""
    from vgkit.supervise.lock import acquire_device_lock, device_lock_name

    return acquire_device_lock(device_lock_name(device), run_dir=run_dir, wait=wait, progress=text_sink(progress))


def load_generator(
    spec: RunSpec, choice: ModelChoice, plan: RunPlan, snapshot: Path, *, make_generator: GeneratorFactory | None = None
) -> ClipGenerator:
    """``make_generator``'s generator, else the pipeline loaded in this process with the plan's preset and
    steps and the spec's speed options."""
    from vgkit.generate.generator import InProcessGenerator

    if make_generator is not None:
        return make_generator(choice.model, snapshot, choice.device)
    preset = str(plan.preset["name"])
    return InProcessGenerator(
        choice.model, snapshot, device=choice.device, preset=preset, speed=spec.speed, steps=plan.steps
    )
