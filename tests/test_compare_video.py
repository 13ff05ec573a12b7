"""The shareable side-by-side comparison video of several runs' final videos (one ffmpeg filtergraph)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from vgkit.errors import ArtifactError
from vgkit.evaluate.compare_video import side_by_side_video
from vgkit.finish.encode import count_frames, ffmpeg_exe
from vgkit.records.artifacts import sha256_file


def _final(run: Path, size: str, fps: int, frames: int) -> Path:
    final = run / "final" / "final_stitched.mp4"
    final.parent.mkdir(parents=True)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s={size}:r={fps}",
                    "-frames:v", str(frames), "-pix_fmt", "yuv420p", str(final)], check=True)  # fmt: skip
    return final


def test_finals_side_by_side_at_one_height_and_rate_as_long_as_the_shortest(tmp_path: Path) -> None:
    """A 2 s 24 fps final beside a 1.5 s 16 fps one (Wan's and CogVideoX's rates): 1.5 s at 24 fps,
    every frame there, the same bytes twice."""
    _final(tmp_path / "a", "96x64", 24, 48)
    _final(tmp_path / "b", "64x64", 16, 24)
    (tmp_path / "failed").mkdir()  # no final video: skipped
    runs = [tmp_path / "a", tmp_path / "failed", tmp_path / "b"]
    dest = side_by_side_video(runs, tmp_path / "cmp.mp4", height_px=32)
    reader = imageio_ffmpeg.read_frames(str(dest))
    meta = next(reader)
    reader.close()
    assert meta["size"] == (48 + 32, 32) and meta["fps"] == 24
    assert count_frames(dest) == 36
    again = side_by_side_video(runs, tmp_path / "again.mp4", height_px=32)
    assert sha256_file(again) == sha256_file(dest)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["again.mp4", "cmp.mp4"]


def test_one_final_alone_is_never_made_taller_than_it_is(tmp_path: Path) -> None:
    _final(tmp_path / "a", "96x64", 24, 10)
    dest = side_by_side_video([tmp_path / "a"], tmp_path / "cmp.mp4", height_px=360)
    reader = imageio_ffmpeg.read_frames(str(dest))
    assert next(reader)["size"] == (96, 64)
    reader.close()
    assert count_frames(dest) == 10


def test_no_final_video_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no final video"):
        side_by_side_video([tmp_path], tmp_path / "cmp.mp4")
