"""Video encoding and probing with the ffmpeg binary that imageio-ffmpeg ships.

One pinned recipe (``ENCODER_ARGS``) makes every mp4: the same frames give the same bytes on any
machine with the same ffmpeg build, whatever its core count (fixed threads, cpu-independent x264,
bitexact muxing, no metadata). Every written file's frame count is checked against the frames
meant, and the file appears atomically.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vgkit.errors import ArtifactError
from vgkit.records.artifacts import commit_file, temp_path_for
from vgkit.settings import ffmpeg_threads

__all__ = [
    "ENCODER_ARGS",
    "SWS_FLAGS",
    "count_frames",
    "encode_frames",
    "encoder_args",
    "ffmpeg_exe",
    "ffmpeg_version",
    "iter_frames",
    "rawvideo_input",
    "read_frames",
    "run_ffmpeg",
    "run_ffmpeg_raw",
    "write_video",
]

ENCODER_ARGS: tuple[str, ...] = (
    "-c:v", "libx264",
    "-preset", "medium",
    "-crf", "18",
    "-pix_fmt", "yuv420p",
    "-x264-params", "cpu-independent=1",
    "-fflags", "+bitexact",
    "-flags:v", "+bitexact",
    "-map_metadata", "-1",
    "-movflags", "+faststart",
    "-an",
)  # fmt: skip
SWS_FLAGS = "bitexact+accurate_rnd+full_chroma_int"  # swscale's bit-exact C paths, whatever the CPU's SIMD


def encoder_args() -> list[str]:
    """The pinned recipe plus the pinned thread count."""
    return [*ENCODER_ARGS, "-threads", str(ffmpeg_threads())]


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    exe: str = imageio_ffmpeg.get_ffmpeg_exe()
    return exe


def ffmpeg_version() -> str:
    """The first line of ``ffmpeg -version`` (recorded in manifests)."""
    done = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else "unknown"


def run_ffmpeg(args: list[str], *, stdin: bytes | None = None) -> bytes:
    """Run ffmpeg quietly and return its stdout; raise ``ArtifactError`` with its last error lines on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    if stdin is not None:
        cmd.remove("-nostdin")
    done = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.decode(errors="replace").strip().splitlines()[-3:])
        raise ArtifactError(f"ffmpeg failed (exit {done.returncode}): {tail}")
    return done.stdout


def rawvideo_input(source: str, *, width: int, height: int, fps: int) -> list[str]:
    """ffmpeg input arguments for rgb24 frames at ``source`` (a file, or ``pipe:0``)."""
    return ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", source]


def run_ffmpeg_raw(frames_fhwc: np.ndarray, *, fps: int, graph: str, width: int, height: int) -> bytes:
    """Pipe uint8 RGB frames through one ffmpeg filter ``graph`` and return its rgb24 frames as bytes.

    Every frame the graph emits comes back (``-fps_mode passthrough``); the scaler is pinned to its
    bit-exact C paths and the thread count to ``ffmpeg_threads()``, so the bytes repeat.
    """
    args = [*rawvideo_input("pipe:0", width=width, height=height, fps=fps), "-filter_threads", "1"]
    args += ["-sws_flags", SWS_FLAGS, "-vf", graph, "-fps_mode", "passthrough"]
    args += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-threads", str(ffmpeg_threads()), "pipe:1"]
    return run_ffmpeg(args, stdin=np.ascontiguousarray(frames_fhwc).tobytes())


def write_video(args: list[str], *, dest: Path, expected_frames: int, stdin: bytes | None = None) -> None:
    """Run ffmpeg ``args`` (inputs, filters, encoder) into a temp file beside ``dest``; check that it
    holds ``expected_frames`` frames, then rename it onto ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest)
    try:
        run_ffmpeg([*args, str(tmp)], stdin=stdin)
        actual = count_frames(tmp)
        if actual != expected_frames:
            raise ArtifactError(f"{dest.name}: encoded {actual} frames but {expected_frames} were meant")
        commit_file(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def encode_frames(frames_fhwc: np.ndarray, *, fps: int, dest: Path) -> None:
    """Encode uint8 RGB frames (F, H, W, 3) to an H.264 mp4 at ``dest``, atomically."""
    if frames_fhwc.dtype != np.uint8 or frames_fhwc.ndim != 4 or frames_fhwc.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (F, H, W, 3), got {frames_fhwc.dtype} {frames_fhwc.shape}")
    num_frames, height, width, _ = frames_fhwc.shape
    source = rawvideo_input("pipe:0", width=width, height=height, fps=fps)
    stdin = np.ascontiguousarray(frames_fhwc).tobytes()
    write_video([*source, *encoder_args()], dest=dest, expected_frames=num_frames, stdin=stdin)


def count_frames(path: Path) -> int:
    """Decoded frame count of a video file (decodes it; exact)."""
    import imageio_ffmpeg

    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    return int(frames)


def iter_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode a video frame by frame into uint8 RGB frames (H, W, 3)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    width, height = next(reader)["size"]
    for buf in reader:
        yield np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)


def read_frames(path: Path) -> np.ndarray:
    """Decode a video into uint8 RGB frames (F, H, W, 3)."""
    return np.stack(list(iter_frames(path)))
