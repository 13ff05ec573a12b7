"""The run plan: integer frame counts per clip and the final length, before any model loads.

A shot's ``duration_s`` becomes ``round(duration_s * fps) + 1`` frames snapped to the model's
frame rule (Wan: 4k+1, so 5 s at 24 fps is 121 frames). Clip i>0 starts from clip i-1's last
frame, so its first frame repeats that frame and the stitcher drops it: the final video has
``sum(frames) - (X - 1)`` frames. A shot with its own ``source_image`` (keyframe) is not chained:
it starts a new scene, and its first frame is kept.

The run's size (baseline or override) is the **output** size. A preset that cannot fit it
(``size_scale`` < 1, e.g. HunyuanVideo on 24 GB) generates at a smaller size and the stitcher
upscales to the output size; a preset's ``steps_scale`` cuts the baseline steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from vgkit.errors import SpecError
from vgkit.models import ModelAdapter, Preset
from vgkit.models.speed import SpeedOptions
from vgkit.prompt import compose_negative_prompt, compose_prompt
from vgkit.spec import RunSpec

__all__ = ["MAX_FINAL_S", "MIN_FINAL_S", "ClipPlan", "RunPlan", "make_plan", "speed_options"]

MIN_FINAL_S = 30
MAX_FINAL_S = 60


@dataclass(frozen=True)
class ClipPlan:
    index: int
    prompt: str
    negative_prompt: str
    seed: int
    camera: str
    requested_duration_s: float
    num_frames: int
    source_image: str | None = None

    @property
    def chained(self) -> bool:
        """Starts from the previous clip's last frame (so its first frame is a duplicate)."""
        return self.index > 0 and self.source_image is None


@dataclass(frozen=True)
class RunPlan:
    spec_name: str
    model: str
    fps: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    max_sequence_length: int
    baseline: dict[str, Any]
    overrides: dict[str, Any]
    clips: tuple[ClipPlan, ...]
    preset: dict[str, Any]
    output_width: int
    output_height: int
    speed: dict[str, Any]

    @property
    def upscaled(self) -> bool:
        """Generated smaller than the output size (the stitcher upscales)."""
        return (self.width, self.height) != (self.output_width, self.output_height)

    @property
    def differs_from_baseline(self) -> dict[str, Any]:
        """The effective values that are not the model's baseline (an override equal to it is not a change)."""
        effective = {
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
        }
        changed = {k: v for k, v in effective.items() if self.baseline.get(k) != v}
        # Speed options against all-off, by effective value (a threshold given as the default is no change).
        off = SpeedOptions().to_record()
        speed_on = {k: v for k, v in self.speed.items() if k != "cache_threshold" and v != off[k]}
        return {**changed, **({"speed": speed_on} if speed_on else {})}

    @property
    def final_frames(self) -> int:
        return sum(c.num_frames for c in self.clips) - sum(c.chained for c in self.clips)

    @property
    def final_seconds(self) -> Fraction:
        return Fraction(self.final_frames, self.fps)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["clip_count"] = len(self.clips)
        record["differs_from_baseline"] = self.differs_from_baseline
        record["final_frames"] = self.final_frames
        record["final_seconds"] = float(self.final_seconds)
        return record

    def summary(self) -> str:
        upscale = f", upscaled to {self.output_width}x{self.output_height} in the stitch" if self.upscaled else ""
        lines = [
            f"plan: {len(self.clips)} clips on {self.model}, {self.width}x{self.height} @ {self.fps} fps{upscale}, "
            f"{self.steps} steps, guidance {self.guidance_scale}, preset {self.preset['name']}",
        ]
        for clip in self.clips:
            lines.append(
                f"  clip {clip.index:03d}: {clip.num_frames} frames "
                f"({float(Fraction(clip.num_frames, self.fps)):.2f} s), seed {clip.seed}, camera {clip.camera}"
            )
        lines.append(f"  final: {self.final_frames} frames = {float(self.final_seconds):.2f} s")
        return "\n".join(lines)


def speed_options(spec: RunSpec) -> SpeedOptions:
    """The spec's ``speed`` section as the options ``vgkit.models.speed`` applies."""
    ratios = spec.speed.mag_ratios
    return SpeedOptions(**{**spec.speed.model_dump(), "mag_ratios": tuple(ratios) if ratios is not None else None})


def _frames_for(duration_s: float, fps: int, model: ModelAdapter) -> int:
    return model.frame_rule.nearest(round(duration_s * fps) + 1)


def make_plan(spec: RunSpec, model: ModelAdapter, *, preset: Preset | None = None) -> RunPlan:
    """Plan every clip of ``spec`` on ``model`` under ``preset`` (default: the model's CPU
    preset); refuse sizes the model would round and lengths outside 30-60 s (unless the spec sets
    ``allow_any_length``)."""
    base = model.baseline
    ov = spec.overrides
    preset = preset or model.default_preset("cpu")
    output_width = ov.width if ov.width is not None else base.width
    output_height = ov.height if ov.height is not None else base.height
    model.check_size(output_width, output_height)
    width, height = preset.generation_size(output_width, output_height, multiple=model.size_multiple)
    speed = speed_options(spec)
    speed.validate()
    clips = tuple(
        ClipPlan(
            index=i,
            prompt=compose_prompt(spec.globals, shot),
            negative_prompt=compose_negative_prompt(spec.negative_prompt, shot),
            seed=spec.shot_seed(i),
            camera=shot.camera,
            requested_duration_s=shot.duration_s,
            num_frames=_frames_for(shot.duration_s, base.fps, model),
            source_image=str(shot.source_image) if shot.source_image is not None else None,
        )
        for i, shot in enumerate(spec.shots)
    )
    plan = RunPlan(
        spec_name=spec.name,
        model=model.name,
        fps=base.fps,
        width=width,
        height=height,
        steps=ov.steps if ov.steps is not None else preset.scaled_steps(base.steps),
        guidance_scale=ov.guidance_scale if ov.guidance_scale is not None else base.guidance_scale,
        max_sequence_length=base.max_sequence_length,
        baseline=asdict(base),
        overrides=ov.model_dump(exclude_none=True),
        clips=clips,
        preset=preset.to_record(),
        output_width=output_width,
        output_height=output_height,
        speed=speed.to_record(),
    )
    seconds = float(plan.final_seconds)
    # Within one frame of the bounds counts as inside: 12 x 5 s at 24 fps is 1441 frames, 60.04 s.
    low, high = MIN_FINAL_S * plan.fps - 1, MAX_FINAL_S * plan.fps + 1
    if not spec.allow_any_length and not low <= plan.final_frames <= high:
        raise SpecError(
            f"shots: the final video would be {seconds:.2f} s ({len(clips)} clips, {plan.final_frames} frames "
            f"at {plan.fps} fps), outside {MIN_FINAL_S}-{MAX_FINAL_S} s; fix: add or remove shots or change "
            "their duration_s, or set allow_any_length: true"
        )
    return plan
