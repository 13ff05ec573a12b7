"""Choices named once, with no third-party import (the CLI's parser reads them without pydantic):
camera moves of a shot card and the stitch recipe's transitions, colour modes and seam smoothing."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "CAMERA_MOVES",
    "COLOUR_MODES",
    "SEAM_MODES",
    "TRANSITIONS",
    "CameraMove",
    "ColourMode",
    "SeamMode",
    "Transition",
]

CameraMove = Literal["static", "pan", "dolly", "tilt", "push-in", "orbit"]
Transition = Literal["cut", "crossfade"]
ColourMode = Literal["off", "mean_std"]
SeamMode = Literal["off", "minterpolate", "rife"]
CAMERA_MOVES: tuple[str, ...] = get_args(CameraMove)
TRANSITIONS: tuple[str, ...] = get_args(Transition)
COLOUR_MODES: tuple[str, ...] = get_args(ColourMode)
SEAM_MODES: tuple[str, ...] = get_args(SeamMode)
