"""The pinned encoder: exact frame counts, identical bytes whatever the CPU count."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from vgkit.finish.encode import count_frames, encode_frames, read_frames


def _frames(count: int = 30) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(1, 48, 64, 3), dtype=np.uint8)
    shift = np.arange(count, dtype=np.uint8)[:, None, None, None]
    return (base + shift).astype(np.uint8)


def test_frame_count_and_no_temp_files_left(tmp_path: Path) -> None:
    dest = tmp_path / "clip.mp4"
    encode_frames(_frames(29), fps=24, dest=dest)
    assert count_frames(dest) == 29
    assert read_frames(dest).shape == (29, 48, 64, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_no_audio_stream(tmp_path: Path) -> None:
    from vgkit.finish.encode import ffmpeg_exe

    dest = tmp_path / "clip.mp4"
    encode_frames(_frames(5), fps=24, dest=dest)
    probe = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(dest)], capture_output=True, text=True)
    assert "Video: h264" in probe.stderr
    assert "Audio:" not in probe.stderr


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset not available")
def test_same_bytes_on_one_cpu_and_on_all(tmp_path: Path) -> None:
    np.save(tmp_path / "frames.npy", _frames())
    script = (
        "import sys, numpy as np; from pathlib import Path; from vgkit.finish.encode import encode_frames; "
        "encode_frames(np.load(sys.argv[1]), fps=24, dest=Path(sys.argv[2]))"
    )
    digests = []
    for cpus, name in (("0", "one.mp4"), (None, "all.mp4")):
        cmd = [sys.executable, "-c", script, str(tmp_path / "frames.npy"), str(tmp_path / name)]
        subprocess.run(["taskset", "-c", cpus, *cmd] if cpus else cmd, check=True, cwd=REPO, timeout=120)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_rejects_float_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        encode_frames(np.zeros((2, 32, 32, 3), dtype=np.float32), fps=24, dest=tmp_path / "x.mp4")
