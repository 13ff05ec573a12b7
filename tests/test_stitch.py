"""Stitching synthetic runs: dropped duplicate frames, exact counts, identical bytes, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import solid_frames
from vgkit.artifacts import RunLayout, atomic_write_json, file_record, sha256_file
from vgkit.encode import encode_frames, read_frames
from vgkit.errors import ArtifactError
from vgkit.stitch import stitch_run

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
MARKER = (250, 250, 250)  # the duplicated first frame of each chained clip


def make_run(root: Path, frames_per_clip: int = 9) -> RunLayout:
    """A run directory with clips whose first frame (i > 0) is a white marker, and their logs."""
    layout = RunLayout(root)
    layout.make_dirs()
    for i, colour in enumerate(COLOURS):
        frames = solid_frames(frames_per_clip, colour)
        if i > 0:
            frames[0] = MARKER
        encode_frames(frames, fps=24, dest=layout.clip(i))
        atomic_write_json(
            layout.log(i),
            {
                "index": i,
                "model": {"name": "synthetic", "pipeline_class": "none"},
                "load_s": 0.0,
                "timings_s": {"total_s": 0.5},
                "effective": {"num_frames": frames_per_clip, "fps": 24, "width": 64, "height": 48},
                "artifacts": {"clip": file_record(layout.clip(i), root=root)},
            },
        )
    return layout


def test_final_drops_the_first_frame_of_chained_clips(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    record = stitch_run(layout.root)
    frames = read_frames(layout.final)
    assert len(frames) == record["final_frames"] == 3 * 9 - 2
    means = frames.reshape(len(frames), -1, 3).mean(axis=1)
    assert not np.any(np.all(means > 220, axis=1)), "a duplicated (marker) frame reached the final video"
    assert np.argmax(means[0]) == 0 and np.argmax(means[9]) == 1 and np.argmax(means[-1]) == 2


def test_stitching_twice_gives_identical_bytes(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    stitch_run(layout.root)
    first = sha256_file(layout.final)
    stitch_run(layout.root)
    assert sha256_file(layout.final) == first


def test_changed_clip_is_refused(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    encode_frames(solid_frames(9, (0, 0, 0)), fps=24, dest=layout.clip(1))
    with pytest.raises(ArtifactError, match=r"clips/clip_001\.mp4: missing or changed"):
        stitch_run(layout.root)


def test_gap_in_clips_is_refused(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    log = json.loads(layout.log(1).read_text())
    layout.log(1).unlink()
    atomic_write_json(layout.logs / "log_005.json", {**log, "index": 5})
    with pytest.raises(ArtifactError, match="a clip is missing"):
        stitch_run(layout.root)


def test_empty_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no clip logs"):
        stitch_run(tmp_path)
