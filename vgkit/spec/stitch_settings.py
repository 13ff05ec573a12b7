"""The user-chosen part of the stitch recipe, as a spec's ``stitch:`` section and ``plan.json`` record it.

It lives with the spec, below the stitcher (``vgkit.finish.stitch``), so the plan can check a
spec's settings without importing the stitch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgkit.errors import SpecError
from vgkit.spec.choices import COLOUR_MODES, SEAM_MODES, TRANSITIONS

__all__ = ["SETTING_FIELDS", "StitchSettings"]

SETTING_FIELDS = ("transition", "overlap_frames", "colour", "colour_anchor_image", "seam_smoothing")


@dataclass(frozen=True)
class StitchSettings:
    """The user-chosen part of the stitch recipe (everything else is pinned in this module)."""

    transition: str = "cut"
    overlap_frames: int = 0
    colour: str = "off"
    colour_anchor_image: Path | None = None
    seam_smoothing: str = "off"

    def __post_init__(self) -> None:
        if self.transition not in TRANSITIONS:
            raise SpecError(f"transition = {self.transition!r}: unknown; fix: use one of {', '.join(TRANSITIONS)}")
        if self.colour not in COLOUR_MODES:
            raise SpecError(f"colour = {self.colour!r}: unknown; fix: use one of {', '.join(COLOUR_MODES)}")
        if isinstance(self.overlap_frames, bool) or not isinstance(self.overlap_frames, int):
            raise SpecError(f"overlap_frames = {self.overlap_frames!r}: must be a whole number of frames")
        if self.transition == "cut" and self.overlap_frames != 0:
            raise SpecError(
                f"overlap_frames = {self.overlap_frames}: a cut has no overlap; fix: use 0 or transition crossfade"
            )
        if self.seam_smoothing not in SEAM_MODES:
            raise SpecError(
                f"seam_smoothing = {self.seam_smoothing!r}: unknown; fix: use one of {', '.join(SEAM_MODES)}"
            )
        if self.seam_smoothing != "off" and self.transition != "cut":
            raise SpecError(
                f"seam_smoothing = {self.seam_smoothing!r}: only bridges hard cuts; fix: use transition cut"
            )
        if self.transition == "crossfade" and self.overlap_frames < 1:
            raise SpecError(f"overlap_frames = {self.overlap_frames}: a crossfade needs >= 1 overlap frame")

    @classmethod
    def from_plan_record(cls, record: dict[str, Any]) -> StitchSettings:
        """The settings ``plan.json`` records (the spec's ``stitch:`` section)."""
        anchor = record.get("colour_anchor_image")
        return cls(
            transition=str(record.get("transition", "cut")),
            overlap_frames=record.get("overlap_frames", 0),
            colour=str(record.get("colour", "off")),
            colour_anchor_image=Path(anchor) if anchor else None,
            seam_smoothing=str(record.get("seam_smoothing", "off")),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "transition": self.transition,
            "overlap_frames": self.overlap_frames,
            "colour": self.colour,
            "colour_anchor": None
            if self.colour == "off"
            else ("first_clip" if self.colour_anchor_image is None else "reference_image"),
        }
