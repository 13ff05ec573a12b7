"""A side-by-side comparison video to share: the final videos of several runs in one frame.

One ffmpeg filtergraph (the binary imageio-ffmpeg ships, the pinned encoder recipe of
``vgkit.finish.encode``): each video is scaled to one height (``height_px``, or the tallest
final's where that is lower: tiny runs are not blown up) on swscale's bit-exact paths and
resampled to the first video's frame rate (CogVideoX makes 16 fps, Wan 24), then ``hstack`` puts
them left to right in the order given. The comparison is as long as the shortest video, counted in
whole frames and checked in the written file; the same finals give the same bytes. It is for
sharing, never a deliverable: a run's final video is the one ``vgkit.finish.stitch`` made.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from vgkit.errors import ArtifactError
from vgkit.finish.encode import SWS_FLAGS, count_frames, encoder_args, write_video
from vgkit.records.artifacts import RunLayout

__all__ = ["side_by_side_video"]


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _probe(video: Path) -> tuple[int, int, Fraction, int]:
    """Width, height, frame rate and decoded frame count of ``video``."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    reader.close()
    width, height = meta["size"]
    return width, height, Fraction(meta["fps"]).limit_denominator(1001), count_frames(video)


def side_by_side_video(run_dirs: list[Path], dest: Path, *, height_px: int = 360) -> Path:
    """Write ``dest`` (H.264): the runs' final videos side by side; runs without one are skipped."""
    videos = [RunLayout(Path(d)).final for d in run_dirs if RunLayout(Path(d)).final.is_file()]
    if not videos:
        raise ArtifactError(f"no final video in any of {[str(d) for d in run_dirs]}; nothing to compare")
    probes = [_probe(video) for video in videos]
    fps = probes[0][2]
    frames = min(count * fps // rate for _, _, rate, count in probes)  # whole frames of the shortest
    height = _even(min(height_px, max(h for _, h, _, _ in probes)))  # never taller than the tallest final
    chains = [
        f"[{i}:v]scale={_even(w * height / h)}:{height}:flags=lanczos+{SWS_FLAGS},setsar=1,fps={fps}[v{i}]"
        for i, (w, h, _, _) in enumerate(probes)
    ]
    stacked = "".join(f"[v{i}]" for i in range(len(videos)))
    joined = f"{stacked}hstack=inputs={len(videos)}:shortest=1" if len(videos) > 1 else f"{stacked}null"
    inputs = [arg for video in videos for arg in ("-i", str(video))]
    graph = ";".join([*chains, f"{joined}[out]"])
    args = [*inputs, "-filter_complex", graph, "-map", "[out]", "-frames:v", str(frames), "-r", str(fps)]
    write_video([*args, *encoder_args()], dest=dest, expected_frames=frames)
    return dest
