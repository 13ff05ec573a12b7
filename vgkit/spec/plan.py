"""The run plan: integer frame counts per clip and the final length, before any model loads.

A shot's ``duration_s`` becomes ``round(duration_s * fps) + 1`` frames snapped to the model's
frame rule (Wan: 4k+1, so 5 s at 24 fps is 121 frames). Clip i>0 starts from clip i-1's last
frame, so its first frame repeats that frame and the stitcher drops it; a crossfade of ``o``
frames overlaps every join: the final video has ``sum(frames) - (X - 1) - (X - 1) * o`` frames
(seam smoothing re-makes frames, it does not add or remove any). A shot with its own
``source_image`` (keyframe) is not chained: it starts a new scene, and its first frame is kept.

Clip lengths (``ModelAdapter.clip_limits``): a shot longer than the model's native clip (Wan 2.2
121 frames at 24 fps, HunyuanVideo-I2V 129 at 24, CogVideoX1.5 81 at 16) is planned as the spec's
``long_shots.mode`` says:

- ``interpolate`` (default): generate at ``fps / k`` for the smallest whole ``k >= 2`` whose frame
  count (snapped to the frame rule) fits the native frames, then interpolate up to ``fps``
  (vgkit.finish.interpolate: RIFE, else minterpolate). A 10 s Wan shot: 121 frames made, 241 in the clip.
- ``extend``: generate the native frames and stretch them to the shot's length by interpolation.
- ``generate``: ask the model for every frame, up to its ``max_frames`` (CogVideoX1.5: 161);
  beyond that only with ``long_shots.beyond_max_frames: true``, and the plan states the cost.
- ``refuse``: stop with the numbers.

The model takes no frame rate: frames generated for a lower rate and interpolated up play its
motion more slowly than the model paces it (``k`` times for ``interpolate``).

The final must be 30-60 s (within one frame of either bound) unless the spec sets
``allow_any_length``; the check counts the crossfade overlaps of the spec's ``stitch`` section.

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
from vgkit.models.base import ClipLimits
from vgkit.spec.prompt import compose_negative_prompt, compose_prompt
from vgkit.spec.schema import LongShotSpec, RunSpec
from vgkit.spec.speed_options import SpeedOptions
from vgkit.spec.stitch_settings import StitchSettings

__all__ = ["MAX_FINAL_S", "ClipPlan", "RunPlan", "check_final_length", "make_plan"]

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
    """Frames in the clip file (after any interpolation); what the stitch joins."""
    source_image: str | None
    generated_frames: int
    """Frames the model is asked for (``num_frames`` when nothing is interpolated)."""
    long_shot: str
    """``native`` (within the model's native clip) or the ``long_shots.mode`` that made it."""

    @property
    def chained(self) -> bool:
        """Starts from the previous clip's last frame (so its first frame is a duplicate)."""
        return self.index > 0 and self.source_image is None

    @property
    def interpolated(self) -> bool:
        """Generated with fewer frames than the clip has: the rest are interpolated."""
        return self.generated_frames != self.num_frames


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
    clip_limits: dict[str, Any]
    long_shots: dict[str, Any]
    stitch: dict[str, Any]
    allow_any_length: bool

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
    def overlap_frames(self) -> int:
        """Crossfade frames per join (the spec's ``stitch.overlap_frames``; 0 for cuts)."""
        return int(self.stitch["overlap_frames"])

    @property
    def joined_frames(self) -> int:
        """Frames after dropping the duplicated first frame of chained clips, before transitions."""
        return sum(c.num_frames for c in self.clips) - sum(c.chained for c in self.clips)

    @property
    def final_frames(self) -> int:
        """Frames of the final video: joined frames less ``overlap_frames`` at every join."""
        return self.joined_frames - (len(self.clips) - 1) * self.overlap_frames

    @property
    def final_seconds(self) -> Fraction:
        return Fraction(self.final_frames, self.fps)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["clip_count"] = len(self.clips)
        record["differs_from_baseline"] = self.differs_from_baseline
        record["joined_frames"] = self.joined_frames
        record["transition_overlap_frames"] = (len(self.clips) - 1) * self.overlap_frames
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
                f"({float(Fraction(clip.num_frames, self.fps)):.2f} s){self._long_shot_note(clip)}, "
                f"seed {clip.seed}, camera {clip.camera}"
            )
        overlap = f"{self.final_sum_text()} = " if self.overlap_frames else ""
        lines.append(f"  final: {overlap}{self.final_frames} frames = {float(self.final_seconds):.2f} s")
        if (stitch := _describe_stitch(self.stitch)) != "cut":
            lines.append(f"  stitch: {stitch}")
        return "\n".join(lines)

    def _long_shot_note(self, clip: ClipPlan) -> str:
        native, most = self.clip_limits["native_frames"], self.clip_limits["max_frames"]
        if clip.interpolated:
            interpolator = self.long_shots["interpolator_resolved"]
            rate = float(Fraction((clip.generated_frames - 1) * self.fps, clip.num_frames - 1))
            how = "the native frames stretched" if clip.long_shot == "extend" else f"generated at {rate:.3g} fps"
            return (
                f" from {clip.generated_frames} generated ({how}, {interpolator} interpolates the rest; "
                f"motion plays {self.fps / rate:.2g}x slower than the model paces it)"
            )
        if clip.generated_frames > native:
            beyond = f", {clip.generated_frames / most:.2f}x its maximum {most}" if clip.generated_frames > most else ""
            ratio = clip.generated_frames / native
            return (
                f" [long: {clip.generated_frames} > the native {native}{beyond}; about {ratio:.1f}-{ratio**2:.1f}x "
                "the time and memory of a native clip, motion degrades past the trained length]"
            )
        return ""

    def final_sum_text(self) -> str:
        chained = sum(c.chained for c in self.clips)
        text = f"{sum(c.num_frames for c in self.clips)} - {chained} duplicated first frames"
        if self.overlap_frames:
            text += f" - {len(self.clips) - 1} x {self.overlap_frames} crossfade overlap"
        return text


def _describe_stitch(stitch: dict[str, Any]) -> str:
    parts = [str(stitch["transition"])]
    if stitch["transition"] == "crossfade":
        parts[0] += f" over {stitch['overlap_frames']} frames"
    if stitch["colour"] != "off":
        parts.append(f"colour {stitch['colour']} to the {stitch.get('colour_anchor', 'first_clip')}")
    if stitch["seam_smoothing"] != "off":
        parts.append(f"seam smoothing {stitch['seam_smoothing']} (frames re-made, count unchanged)")
    return ", ".join(parts)


@dataclass(frozen=True)
class ShotFrames:
    """One shot's frames: ``clip_frames`` in the clip, ``generated_frames`` asked of the model."""

    clip_frames: int
    generated_frames: int
    mode: str  # "native" or the long_shots mode that planned it


def shot_frames(
    duration_s: float, *, limits: ClipLimits, long_shots: LongShotSpec, field: str, model: str
) -> ShotFrames:
    """Plan one shot within ``limits`` as ``long_shots`` says (module docstring); ``SpecError`` with
    the numbers for a shot that the mode refuses."""
    fps, rule = limits.fps, limits.frame_rule
    wanted = rule.nearest(round(duration_s * fps) + 1)
    if wanted <= limits.native_frames:
        return ShotFrames(wanted, wanted, "native")
    exact = round(duration_s * fps) + 1  # interpolated clips need not follow the frame rule
    mode = long_shots.mode
    numbers = (
        f"{field} = {duration_s:g} s needs {exact} frames at {fps} fps, more than {model}'s native "
        f"{limits.native_frames} (maximum {limits.max_frames})"
    )
    if mode == "refuse":
        raise SpecError(
            f"{numbers}; fix: shorten it to {(limits.native_frames - 1) / fps:g} s or less, or set long_shots.mode "
            "to interpolate, extend or generate"
        )
    if mode == "extend":
        return ShotFrames(exact, limits.native_frames, "extend")
    if mode == "interpolate":
        for factor in range(2, exact):
            generated = rule.nearest(round(duration_s * fps / factor) + 1)
            if generated <= limits.native_frames:
                return ShotFrames(exact, generated, "interpolate")
    if wanted > limits.max_frames and not long_shots.beyond_max_frames:
        raise SpecError(
            f"{numbers}: {wanted} frames would be {wanted / limits.max_frames:.2f}x the maximum, about "
            f"{wanted / limits.native_frames:.1f}-{(wanted / limits.native_frames) ** 2:.1f}x the time and memory of "
            "a native clip, with motion degrading; fix: long_shots.mode interpolate (default) or extend, a shorter "
            "shot, or long_shots.beyond_max_frames: true to accept that cost"
        )
    return ShotFrames(wanted, wanted, "generate")


def _resolved_long_shots(spec: RunSpec, clips: tuple[ClipPlan, ...]) -> dict[str, Any]:
    """The spec's ``long_shots`` with the interpolator that will run (only resolved when a clip needs one)."""
    from vgkit.finish.interpolate import resolve_interpolator

    needed = any(c.interpolated for c in clips)
    resolved = resolve_interpolator(spec.long_shots.interpolator, field="long_shots.interpolator") if needed else None
    return {**spec.long_shots.model_dump(), "interpolator_resolved": resolved}


def _stitch_record(spec: RunSpec) -> dict[str, Any]:
    """The spec's ``stitch`` section as the stitcher reads it from ``plan.json`` (checked by ``StitchSettings``)."""
    anchor = str(spec.reference_image) if spec.stitch.colour_anchor == "reference_image" else None
    record = {**spec.stitch.model_dump(), "colour_anchor_image": anchor}
    try:
        StitchSettings.from_plan_record(record)
    except SpecError as exc:
        raise SpecError(f"stitch.{exc}") from None
    return record


def check_final_length(final_frames: int, *, fps: int, what: str, fix: str) -> None:
    """Refuse a final outside 30-60 s (within one frame of either bound counts as inside)."""
    low, high = MIN_FINAL_S * fps - 1, MAX_FINAL_S * fps + 1
    if not low <= final_frames <= high:
        seconds = final_frames / fps
        raise SpecError(
            f"{what}: the final video would be {seconds:.2f} s ({final_frames} frames at {fps} fps), outside "
            f"{MIN_FINAL_S}-{MAX_FINAL_S} s ({low}-{high} frames); fix: {fix}"
        )


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
    spec.speed.check()
    limits = model.clip_limits
    if limits.fps != base.fps:
        raise SpecError(f"{model.name}: baseline fps {base.fps} is not its clip limits' {limits.fps}; fix: restore it")
    frames = [
        shot_frames(
            shot.duration_s, limits=limits, long_shots=spec.long_shots, field=f"shots[{i}].duration_s", model=model.name
        )
        for i, shot in enumerate(spec.shots)
    ]
    clips = tuple(
        ClipPlan(
            index=i,
            prompt=compose_prompt(spec.globals, shot),
            negative_prompt=compose_negative_prompt(spec.negative_prompt, shot),
            seed=spec.shot_seed(i),
            camera=shot.camera,
            requested_duration_s=shot.duration_s,
            num_frames=frames[i].clip_frames,
            source_image=str(shot.source_image) if shot.source_image is not None else None,
            generated_frames=frames[i].generated_frames,
            long_shot=frames[i].mode,
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
        speed=spec.speed.to_record(),
        clip_limits={**asdict(limits), "frame_rule": limits.frame_rule.describe()},
        long_shots=_resolved_long_shots(spec, clips),
        stitch=_stitch_record(spec),
        allow_any_length=spec.allow_any_length,
    )
    overlap = plan.overlap_frames
    if overlap and min(c.num_frames - c.chained for c in clips) <= overlap and len(clips) > 1:
        raise SpecError(
            f"stitch.overlap_frames = {overlap}: longer than a clip ({min(c.num_frames - c.chained for c in clips)} "
            "frames after the dropped duplicate); fix: choose fewer overlap frames"
        )
    if not spec.allow_any_length:
        # Within one frame of the bounds counts as inside: 12 x 5 s at 24 fps is 1441 frames, 60.04 s.
        crossfade = f" with {len(clips) - 1} crossfades of {overlap} frames" if overlap else ""
        check_final_length(
            plan.final_frames,
            fps=plan.fps,
            what=f"shots: {len(clips)} clips{crossfade} ({plan.final_sum_text()})",
            fix="add or remove shots or change their duration_s"
            + (", or shorten stitch.overlap_frames" if overlap else "")
            + ", or set allow_any_length: true",
        )
    return plan
