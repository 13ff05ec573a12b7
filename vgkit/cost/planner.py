"""A run plan's projected cost on one card, checked against its deadlines before anything loads.

``plan_cost`` projects every distinct clip length of a plan under the run's preset on a card;
``refuse_infeasible`` raises ``InfeasiblePlanError`` (exit 2) naming the figures and the changes
that would fit (another preset, fewer steps, a smaller generated size with upscale). Tiny models
and CPU presets have no projection: they run far inside the limits, and a full-size model on CPU
is refused elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vgkit.cost.gpus import CARDS, PRESET_CARDS, GpuCard, card, card_for_memory
from vgkit.errors import InfeasiblePlanError

if TYPE_CHECKING:
    from vgkit.cost.projection import Projection
    from vgkit.models import ModelAdapter, Preset

__all__ = [
    "PlanCost",
    "card_for_this_machine",
    "check_plan",
    "fix_candidates",
    "native_preset_lines",
    "plan_cost",
    "project_native",
    "project_preset",
    "refuse_infeasible",
]


@dataclass(frozen=True)
class PlanCost:
    card: GpuCard
    clips: tuple[Projection, ...]  # one per planned clip, in order
    clip_timeout_s: float
    run_timeout_s: float
    output_size: tuple[int, int]  # the plan's width x height before its preset scales it

    @property
    def worst_clip_s(self) -> float:
        return max(p.seconds_per_clip for p in self.clips)

    @property
    def run_s(self) -> float:
        return sum(p.seconds_per_clip for p in self.clips)

    @property
    def peak_gib(self) -> float:
        return max(p.peak_gib for p in self.clips)

    def problems(self) -> list[str]:
        found = []
        if self.worst_clip_s > self.clip_timeout_s:
            found.append(f"projected {self.worst_clip_s:.0f} s per clip > clip deadline {self.clip_timeout_s:.0f} s")
        if self.run_s > self.run_timeout_s:
            found.append(f"projected {self.run_s:.0f} s for the run > run deadline {self.run_timeout_s:.0f} s")
        if self.peak_gib > self.card.memory_gib:
            found.append(
                f"projected peak {self.peak_gib:.1f} GiB > {self.card.memory_gib:.1f} GiB on the {self.card.name}"
            )
        return found

    def summary(self) -> str:
        first = self.clips[0]
        return (
            f"projected on {self.card.title} ({first.preset} preset, {first.width}x{first.height}, "
            f"{first.steps} steps): "
            f"~{self.worst_clip_s:.0f} s per clip (deadline {self.clip_timeout_s:.0f} s), "
            f"~{self.run_s:.0f} s for the run (deadline {self.run_timeout_s:.0f} s), "
            f"peak ~{self.peak_gib:.1f} GiB of {self.card.memory_gib:.1f}"
        )


def card_for_this_machine(gpu_name: str | None, memory_gib: float | None) -> GpuCard | None:
    """The listed card matching the GPU this machine reports (by name, else by memory), or None."""
    if gpu_name is None:
        return None
    lowered = gpu_name.lower().replace(" ", "")
    for known in CARDS:
        if known.name in lowered:
            return known
    return card_for_memory(memory_gib) if memory_gib else None


def _base_name(model: ModelAdapter) -> str:
    return model.name.removesuffix("-tiny")


def project_preset(
    model: ModelAdapter, preset: Preset, *, gpu: GpuCard, width: int, height: int, num_frames: int, steps: int
) -> Projection:
    """Project one clip of ``model`` generated at ``width`` x ``height`` under ``preset`` on ``gpu``."""
    from vgkit.cost.projection import project

    return project(
        _base_name(model), preset=preset, card=gpu, width=width, height=height, num_frames=num_frames, steps=steps
    )


def project_native(model: ModelAdapter, preset: Preset, *, gpu: GpuCard) -> Projection:
    """Project one native clip of ``model`` (its baseline size and steps, as ``preset`` scales them) on ``gpu``."""
    from vgkit.cost.architectures import ARCHITECTURES

    base = model.baseline
    width, height = preset.generation_size(base.width, base.height, multiple=model.size_multiple)
    frames = ARCHITECTURES[_base_name(model)].native_frames
    steps = preset.scaled_steps(base.steps)
    return project_preset(model, preset, gpu=gpu, width=width, height=height, num_frames=frames, steps=steps)


def plan_cost(
    plan: Any, model: ModelAdapter, preset: Preset, *, gpu: GpuCard | str, clip_timeout_s: float, run_timeout_s: float
) -> PlanCost | None:
    """The projected cost of ``plan`` (a ``RunPlan``) on ``gpu``, or None for a tiny model or CPU preset."""
    if model.tiny or preset.device == "cpu":
        return None
    gpu = card(gpu) if isinstance(gpu, str) else gpu
    by_frames = {
        frames: project_preset(
            model, preset, gpu=gpu, width=plan.width, height=plan.height, num_frames=frames, steps=plan.steps
        )
        for frames in sorted({clip.generated_frames for clip in plan.clips})
    }
    return PlanCost(
        card=gpu,
        clips=tuple(by_frames[clip.generated_frames] for clip in plan.clips),
        clip_timeout_s=clip_timeout_s,
        run_timeout_s=run_timeout_s,
        output_size=(plan.output_width, plan.output_height),
    )


FIX_SCALES = (0.75, 0.5)  # the smaller generated sizes a refusal proposes, largest first


def fix_candidates(
    model: ModelAdapter, preset: Preset, *, output: tuple[int, int], generated: tuple[int, int]
) -> list[tuple[Preset, int, int]]:
    """What a refusal of a clip that ``preset`` generates at ``generated`` for an ``output`` size
    projects as fixes, in order: every other GPU preset at the size it generates for ``output``, then
    ``preset`` at each of ``FIX_SCALES`` of ``generated``."""
    multiple = model.size_multiple
    candidates = [
        (other, *other.generation_size(*output, multiple=multiple))
        for other in model.presets
        if other.name not in (preset.name, "cpu") and other.device != "cpu"
    ]
    for scale in FIX_SCALES:
        width, height = (max(multiple, round(side * scale / multiple) * multiple) for side in generated)
        candidates.append((preset, width, height))
    return candidates


def _fixes(cost: PlanCost, model: ModelAdapter, preset: Preset) -> list[str]:
    """Changes that would bring the plan inside its limits on the same card, each projected."""
    worst = max(cost.clips, key=lambda p: p.seconds_per_clip)
    fixes: list[str] = []
    smaller: str | None = None  # the largest smaller size that fits
    generated = (worst.width, worst.height)
    for option, width, height in fix_candidates(model, preset, output=cost.output_size, generated=generated):
        if option is preset and smaller is not None:
            continue
        alt = project_preset(
            model, option, gpu=cost.card, width=width, height=height, num_frames=worst.num_frames, steps=worst.steps
        )
        if alt.seconds_per_clip > cost.clip_timeout_s or not alt.fits_memory:
            continue
        if option is preset:
            smaller = (
                f"a preset that generates {width}x{height} and upscales (~{alt.seconds_per_clip:.0f} s/clip, "
                "softer detail)"
            )
        else:
            fixes.append(f"--preset {option.name} (~{alt.seconds_per_clip:.0f} s/clip, ~{alt.peak_gib:.1f} GiB)")
    per_step = (worst.compute_s + worst.transfer_s) / max(1.0, worst.steps)
    steps_fit = math.floor(cost.clip_timeout_s * 0.95 / per_step) if per_step > 0 else worst.steps
    if 0 < steps_fit < worst.steps:
        fixes.append(f"overrides.steps: {steps_fit} (fewer steps cost detail and prompt adherence)")
    if smaller is not None:
        fixes.append(smaller)
    fixes.append("speed: {cache: first-block} (skips part of the transformer's work; not counted here)")
    return fixes


def refuse_infeasible(cost: PlanCost | None, model: ModelAdapter, preset: Preset) -> None:
    """Raise ``InfeasiblePlanError`` when ``cost`` breaks a deadline or the card's memory."""
    if cost is None or not (problems := cost.problems()):
        return
    raise InfeasiblePlanError(
        f"plan on {model.name} ({preset.name} preset) cannot finish on the {cost.card.name}: {'; '.join(problems)}; "
        f"fix: {' or '.join(_fixes(cost, model, preset))}; or --force to run it anyway"
    )


def native_preset_lines(model: ModelAdapter, preset: Preset, *, clip_limit_s: float = 600.0) -> list[str]:
    """What ``preset`` projects for one native clip (5 s) of ``model`` at its baseline size on each
    card the preset is named for, one phrase per card, marking where it breaks the clip limit or
    the card's memory."""
    lines = []
    for name in PRESET_CARDS.get(preset.name, ()):
        gpu = card(name)
        one = project_native(model, preset, gpu=gpu)
        verdict = ""
        if one.seconds_per_clip > clip_limit_s:
            verdict = f" (over the {clip_limit_s:.0f} s clip limit: infeasible there)"
        elif not one.fits_memory:
            verdict = f" (over its {gpu.memory_gib:.0f} GiB: infeasible there)"
        lines.append(f"~{one.seconds_per_clip:.0f} s/clip, ~{one.peak_gib:.1f} GiB on {gpu.title}{verdict}")
    return lines


def check_plan(
    plan: Any,
    model: ModelAdapter,
    preset: Preset,
    *,
    device: str,
    gpu_memory_gib: float | None,
    clip_timeout_s: float,
    run_timeout_s: float,
    gpu: str | None = None,
    force: bool = False,
    progress: Callable[[str], None] = print,
) -> PlanCost | None:
    """Project ``plan`` on the card named ``gpu`` (default: the GPU this machine reports), print
    the projection, and refuse it (``InfeasiblePlanError``) unless ``force`` when it breaks a
    deadline or the card's memory. Returns None where there is nothing to project (a tiny model, a
    CPU run with no ``gpu`` named, a GPU vgkit has no figures for: said in one line)."""
    if model.tiny or preset.device == "cpu":
        return None
    from vgkit.settings import cuda_gpu_name

    name = cuda_gpu_name() if gpu is None and device != "cpu" else None
    chosen = card(gpu) if gpu is not None else card_for_this_machine(name, gpu_memory_gib)
    if chosen is None:
        known = ", ".join(c.name for c in CARDS)
        what = "no GPU found here" if name is None else f"no figures for the GPU {name!r}"
        progress(f"cost: {what}; projection skipped; fix: name a card to project on with --gpu ({known})")
        return None
    cost = plan_cost(plan, model, preset, gpu=chosen, clip_timeout_s=clip_timeout_s, run_timeout_s=run_timeout_s)
    if cost is None:
        return None
    progress(f"cost: {cost.summary()}")
    if force and cost.problems():
        progress(f"cost: --force: running anyway although {'; '.join(cost.problems())}")
    elif not force:
        refuse_infeasible(cost, model, preset)
    return cost
