"""The main job: spec -> plan -> generate (chained) -> stitch -> manifest -> bundle.

The CLI (``vgkit run``) and the generate notebook both call ``run_job``; nothing else drives a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vgkit.artifacts import RunLayout, atomic_write_json
from vgkit.bundle import write_bundle
from vgkit.errors import SpecError
from vgkit.models import ModelChoice, adapter, choose_model
from vgkit.plan import RunPlan, make_plan
from vgkit.settings import offline_by_default
from vgkit.spec import RunSpec, load_spec

__all__ = ["JobResult", "default_run_dir", "finish_run", "plan_job", "run_job"]

Progress = Callable[[str], None]


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
    spec_path: str | Path, *, model: str | None = None, planning_only: bool = False
) -> tuple[RunSpec, ModelChoice, RunPlan]:
    """Load and validate the spec, choose the model and plan every clip; loads no model.

    ``planning_only`` accepts a real model whose weights or GPU are absent (for ``vgkit check``).
    """
    spec = load_spec(spec_path)
    requested = model if model not in (None, "") else spec.model
    choice = choose_model(requested, planning_only=planning_only)
    return spec, choice, make_plan(spec, choice.model)


def finish_run(run_dir: Path) -> Path:
    """Stitch, write the manifest and bundle an already generated run; return the bundle path."""
    from vgkit.manifest import write_manifest
    from vgkit.stitch import stitch_run

    write_manifest(run_dir, stitch=stitch_run(run_dir))
    return write_bundle(run_dir)


def run_job(
    spec_path: str | Path,
    *,
    model: str | None = None,
    out: str | Path | None = None,
    progress: Progress = print,
) -> JobResult:
    """Run a whole job and return where its outputs are. Re-running resumes verified clips.

    The process is offline for the Hub unless ``HF_HUB_OFFLINE`` was set (``offline_by_default``).
    """
    offline_by_default()
    spec, choice, plan = plan_job(spec_path, model=model)
    progress(choice.announce())
    run_dir = Path(out) if out else default_run_dir(spec, choice.model.name)
    if run_dir.exists() and not run_dir.is_dir():
        raise SpecError(f"out = '{run_dir}': exists and is not a directory; fix: choose another --out")
    layout = RunLayout(run_dir)
    layout.make_dirs()
    atomic_write_json(layout.plan, plan.to_dict())
    progress(plan.summary())

    from vgkit.chain import run_chain
    from vgkit.checkpoints import locate_checkpoint
    from vgkit.generator import InProcessGenerator
    from vgkit.tokens import check_token_budget

    snapshot = locate_checkpoint(adapter(choice.model.name))
    progress(f"loading {choice.model.title} from {snapshot}")
    generator = InProcessGenerator(choice.model, snapshot, device=choice.device)
    progress(f"loaded in {generator.load_s:.1f} s")
    check_token_budget(plan, generator.pipe.tokenizer)
    run_chain(spec, plan, layout, generator, progress=progress)
    progress("stitching final/final_stitched.mp4")
    bundle = finish_run(run_dir)
    return JobResult(
        run_dir=run_dir,
        final_video=layout.final,
        manifest=layout.manifest,
        bundle=bundle,
        model=choice.model.name,
        final_frames=plan.final_frames,
        final_seconds=float(plan.final_seconds),
    )
