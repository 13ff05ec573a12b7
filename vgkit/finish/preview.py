"""Seam previews: the frames around each join of a stitched video, as one image grid.

Only the frames shown are decoded (ffmpeg ``select``), scaled to a thumbnail width, so a 60 s 720p
final costs a few frames of memory, not the whole video.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from vgkit.errors import ArtifactError
from vgkit.records.artifacts import atomic_write_bytes

__all__ = ["decode_selected", "seam_frame_indices", "seam_grid", "write_seam_grid"]

GAP_PX = 4


def seam_frame_indices(stitch: dict[str, Any], *, radius: int = 2) -> list[list[int]]:
    """For each seam (clip i-1 -> i), the final-video frame indices to show around it.

    A cut shows ``radius`` frames before the first frame of clip i and ``radius`` from it; a
    crossfade shows ``radius`` frames either side of its overlap and the overlap itself.
    """
    kept: list[int] = stitch["kept_frames_per_clip"]
    overlap = int(stitch["overlap_frames"])
    total = int(stitch["final_frames"])
    rows = []
    for i in range(1, len(kept)):
        start = sum(kept[:i]) - i * overlap  # first frame where clip i shows (fade start for a crossfade)
        frames = range(start - radius, start + overlap + radius)
        rows.append([f for f in frames if 0 <= f < total])
    return rows


def decode_selected(video: Path, indices: list[int], *, width: int) -> dict[int, np.ndarray]:
    """Decode only frames ``indices`` of ``video``, scaled to ``width`` px wide; ``{index: frame_hwc}``."""
    import imageio_ffmpeg

    from vgkit.finish.encode import ffmpeg_exe

    wanted = sorted(set(indices))
    if not wanted:
        return {}
    reader = imageio_ffmpeg.read_frames(str(video))
    src_width, src_height = next(reader)["size"]
    reader.close()
    height = max(2, round(src_height * width / src_width / 2) * 2)
    select = "+".join(f"eq(n\\,{i})" for i in wanted)
    cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(video), "-vf", f"select={select},scale={width}:{height}"]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        raise ArtifactError(f"{video}: cannot decode frames {wanted}: {done.stderr.decode(errors='replace')[-200:]}")
    frames = np.frombuffer(done.stdout, dtype=np.uint8).reshape(-1, height, width, 3)
    if len(frames) != len(wanted):
        raise ArtifactError(f"{video}: asked for {len(wanted)} frames, decoded {len(frames)}")
    return dict(zip(wanted, frames, strict=True))


def seam_grid(video: Path, stitch: dict[str, Any], *, radius: int = 2, thumb_width: int = 256) -> np.ndarray:
    """One uint8 RGB image: a row per seam, the frames around it left to right, grey gaps between."""
    rows = seam_frame_indices(stitch, radius=radius)
    if not rows:
        raise ArtifactError(f"{video}: a single clip has no seams to preview")
    frames = decode_selected(video, [i for row in rows for i in row], width=thumb_width)
    height = next(iter(frames.values())).shape[0]
    columns = max(len(row) for row in rows)
    grid = np.full(
        (len(rows) * (height + GAP_PX) - GAP_PX, columns * (thumb_width + GAP_PX) - GAP_PX, 3), 96, dtype=np.uint8
    )
    for r, row in enumerate(rows):
        for c, index in enumerate(row):
            y, x = r * (height + GAP_PX), c * (thumb_width + GAP_PX)
            grid[y : y + height, x : x + thumb_width] = frames[index]
    return grid


def write_seam_grid(video: Path, stitch: dict[str, Any], dest: Path, **kwargs: Any) -> Path:
    """Write ``seam_grid`` as a PNG at ``dest`` (atomically) and return ``dest``."""
    from vgkit.spec.images import png_bytes

    atomic_write_bytes(dest, png_bytes(seam_grid(video, stitch, **kwargs)))
    return dest
