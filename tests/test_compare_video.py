"""The shareable side-by-side comparison video (moviepy) of several runs' final videos."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from vgkit.errors import ArtifactError
from vgkit.evaluate.compare_video import side_by_side_video
from vgkit.finish.encode import ffmpeg_exe


def _final(run: Path, size: str, seconds: float) -> Path:
    final = run / "final" / "final_stitched.mp4"
    final.parent.mkdir(parents=True)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=24:d={seconds}",
                    "-pix_fmt", "yuv420p", str(final)], check=True)  # fmt: skip
    return final


def test_finals_side_by_side_at_one_height_as_long_as_the_shortest(tmp_path: Path) -> None:
    _final(tmp_path / "a", "96x64", 2)
    _final(tmp_path / "b", "64x64", 1)
    (tmp_path / "failed").mkdir()  # no final video: skipped
    dest = side_by_side_video([tmp_path / "a", tmp_path / "failed", tmp_path / "b"], tmp_path / "cmp.mp4", height_px=32)
    reader = imageio_ffmpeg.read_frames(str(dest))
    meta = next(reader)
    reader.close()
    assert meta["size"] == (48 + 32, 32)
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(dest))
    assert 22 <= frames <= 24 and seconds == pytest.approx(1.0, abs=0.1)  # moviepy may drop the last frame
    assert not list(tmp_path.glob(".*partial*"))


def test_no_final_video_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no final video"):
        side_by_side_video([tmp_path], tmp_path / "cmp.mp4")
