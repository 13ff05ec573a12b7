"""Colour consistency: match each chained clip's per-channel mean and spread to one anchor.

Chained clips drift (each starts from the previous clip's last frame, so a small shift in colour or
brightness accumulates). The anchor is the first clip, or the reference image when given, never the
previous clip, which only follows the drift. Per clip and RGB channel (the decoded rgb24 frames,
chained clips without their dropped first frame) vgkit fits ``out = val * gain + offset`` so the
clip's mean and standard deviation match the anchor's; the gain is clamped to
``[1 / MAX_GAIN, MAX_GAIN]``. The transform is applied in the stitch filtergraph as an integer
``lutrgb`` (deterministic). A clip within the dead band (every channel mean within
``DEADBAND_LEVELS`` of the anchor's and every gain within ``DEADBAND_GAIN`` of 1: encoder noise and
motion, not drift), or whose 256-entry table is the identity, is not touched at all.
Per-seam and per-clip measurements before and after go into the manifest.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from vgkit.finish.encode import iter_frames

__all__ = [
    "DEADBAND_GAIN",
    "DEADBAND_LEVELS",
    "MAX_GAIN",
    "apply_lut",
    "channel_stats",
    "fit_transform",
    "lutrgb_filter",
    "match_colours",
]

MAX_GAIN = 2.0
DEADBAND_LEVELS = 1.0
DEADBAND_GAIN = 0.02
CHANNELS = ("r", "g", "b")
ANCHOR_FIELD = "--colour-anchor"


def _decoded(path: Path, *, skip_first: bool) -> Iterator[np.ndarray]:
    return islice(iter_frames(path), int(skip_first), None)


def channel_stats(frames: Iterator[np.ndarray] | list[np.ndarray]) -> dict[str, Any]:
    """Per-channel mean and std over all pixels of all frames, plus the first and last frame means."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    pixels = 0
    first: np.ndarray | None = None
    last: np.ndarray | None = None
    for frame_hwc in frames:
        flat = frame_hwc.reshape(-1, 3).astype(np.float64)
        total += flat.sum(axis=0)
        total_sq += (flat * flat).sum(axis=0)
        pixels += flat.shape[0]
        last = flat.mean(axis=0)
        first = last if first is None else first
    if first is None or last is None:
        raise ValueError("channel_stats needs at least one frame")
    mean = total / pixels
    std = np.sqrt(np.maximum(total_sq / pixels - mean * mean, 0.0))
    return {"mean": mean, "std": std, "first_mean": first, "last_mean": last}


def fit_transform(stats: dict[str, Any], anchor: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(gain, offset)`` mapping ``stats`` onto ``anchor``'s mean and std."""
    std = np.asarray(stats["std"], dtype=np.float64)
    gain = np.where(std > 1e-6, np.asarray(anchor["std"]) / np.maximum(std, 1e-6), 1.0)
    gain = np.clip(gain, 1.0 / MAX_GAIN, MAX_GAIN)
    offset = np.asarray(anchor["mean"]) - gain * np.asarray(stats["mean"])
    return np.round(gain, 6), np.round(offset, 4)


def _table(gain: float, offset: float) -> np.ndarray:
    values = np.arange(256, dtype=np.float64)
    return np.clip(np.floor(values * gain + offset + 0.5), 0, 255).astype(np.uint8)


def apply_lut(frame_hwc: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The transform as the stitch applies it, on one uint8 RGB frame (for measurement)."""
    out = np.empty_like(frame_hwc)
    for c in range(3):
        out[..., c] = _table(float(gain[c]), float(offset[c]))[frame_hwc[..., c]]
    return out


def _within_deadband(stats: dict[str, Any], anchor: dict[str, Any], gain: np.ndarray) -> bool:
    mean_shift = np.abs(np.asarray(anchor["mean"]) - np.asarray(stats["mean"])).max()
    return bool(mean_shift < DEADBAND_LEVELS and np.abs(gain - 1).max() < DEADBAND_GAIN)


def lutrgb_filter(gain: np.ndarray, offset: np.ndarray) -> str | None:
    """The ffmpeg ``lutrgb`` filter applying ``gain`` and ``offset`` per channel (integer tables),
    or None when the tables are the identity."""
    identity = np.arange(256, dtype=np.uint8)
    if all(np.array_equal(_table(float(gain[c]), float(offset[c])), identity) for c in range(3)):
        return None
    terms = [f"{name}='clip(floor(val*{gain[c]:.6f}+{offset[c]:.4f}+0.5),0,255)'" for c, name in enumerate(CHANNELS)]
    return "lutrgb=" + ":".join(terms)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of per-channel means, in 8-bit levels."""
    return round(float(np.abs(np.asarray(a) - np.asarray(b)).mean()), 3)


def match_colours(clips: list[Path], *, anchor_image: Path | None = None) -> dict[str, Any]:
    """Fit one transform per clip against the anchor and measure drift before and after.

    An ``anchor_image`` that cannot be used (missing, not a regular file, not a readable image, a
    mode that cannot be scaled) raises one ``SpecError`` line naming ``--colour-anchor``.
    Returns the ``colour_matching`` record of the stitch: the method, the anchor, per-clip
    transforms (``lutrgb`` is the filter the stitch applies, or None for the identity), per-clip
    drift from the anchor and per-seam jumps (last frame of clip i-1 vs first kept frame of clip i),
    each before and after.
    """
    from vgkit.records.artifacts import sha256_file

    anchor: dict[str, Any] | None = None
    if anchor_image is not None:  # first: an unusable image is a one-line error before any decoding
        from vgkit.spec.images import load_rgb

        anchor = channel_stats([load_rgb(anchor_image, field=ANCHOR_FIELD)])
        anchor_record: dict[str, Any] = {"source": "reference_image", "sha256": sha256_file(anchor_image)}
    before = [channel_stats(_decoded(clip, skip_first=i > 0)) for i, clip in enumerate(clips)]
    if anchor is None:
        anchor = before[0]
        anchor_record = {"source": "first_clip", "path": clips[0].name}
    transforms, after = [], []
    for i, (clip, stats) in enumerate(zip(clips, before, strict=True)):
        gain, offset = fit_transform(stats, anchor)
        lut = None if _within_deadband(stats, anchor, gain) else lutrgb_filter(gain, offset)
        if lut is None:
            gain, offset = np.ones(3), np.zeros(3)
            after.append(stats)
        else:
            after.append(channel_stats(apply_lut(f, gain, offset) for f in _decoded(clip, skip_first=i > 0)))
        transforms.append({"gain": gain.tolist(), "offset": offset.tolist(), "lutrgb": lut})

    def drift(stats: list[dict[str, Any]]) -> list[float]:
        return [_distance(s["mean"], anchor["mean"]) for s in stats]

    def seams(stats: list[dict[str, Any]]) -> list[float]:
        return [_distance(stats[i - 1]["last_mean"], stats[i]["first_mean"]) for i in range(1, len(stats))]

    return {
        "method": "per-channel mean/std match in decoded RGB, integer lutrgb",
        "max_gain": MAX_GAIN,
        "deadband": {"levels": DEADBAND_LEVELS, "gain": DEADBAND_GAIN},
        "anchor": anchor_record,
        "transforms": transforms,
        "clip_drift_levels": {"before": drift(before), "after": drift(after)},
        "seam_jump_levels": {"before": seams(before), "after": seams(after)},
    }
