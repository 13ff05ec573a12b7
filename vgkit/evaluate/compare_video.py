"""A side-by-side comparison video to share: the final videos of several runs in one frame (moviepy).

For sharing a comparison, never for a deliverable: the final video of a run is stitched by
``vgkit.finish.stitch`` with its pinned ffmpeg recipe, while moviepy composes here with float-time
arithmetic that can drop a frame at the end (moviepy #2507). The comparison is as long as the
shortest video, each scaled to the same height, left to right in the order given.
"""

from __future__ import annotations

import os
from pathlib import Path

from vgkit.errors import ArtifactError
from vgkit.records.artifacts import RunLayout

__all__ = ["side_by_side_video"]


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def side_by_side_video(run_dirs: list[Path], dest: Path, *, height_px: int = 360) -> Path:
    """Write ``dest`` (H.264): the runs' final videos side by side; runs without one are skipped."""
    from moviepy import VideoFileClip, clips_array

    videos = [RunLayout(Path(d)).final for d in run_dirs if RunLayout(Path(d)).final.is_file()]
    if not videos:
        raise ArtifactError(f"no final video in any of {[str(d) for d in run_dirs]}; nothing to compare")
    clips = [VideoFileClip(str(v), audio=False) for v in videos]
    try:
        height = _even(height_px)
        scaled = [c.resized(new_size=(_even(c.w * height / c.h), height)) for c in clips]
        duration = min(c.duration for c in clips)
        grid = clips_array([[c.subclipped(0, duration) for c in scaled]])
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(f".{dest.name}.partial.mp4")
        grid.write_videofile(
            str(partial), fps=clips[0].fps, codec="libx264", audio=False, logger=None,
            pixel_format="yuv420p", ffmpeg_params=["-crf", "23"],
        )  # fmt: skip
        os.replace(partial, dest)
    finally:
        for clip in clips:
            clip.close()
    return dest
