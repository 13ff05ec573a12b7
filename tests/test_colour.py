"""Colour matching: a synthetic drift is reduced (measured on the decoded final), none is left alone;
an unusable anchor image is one line before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.test_images import write_corrupt_pixels_png
from tests.test_stitch import make_run
from vgkit.cli import main
from vgkit.errors import SpecError
from vgkit.finish.colour import apply_lut, channel_stats, fit_transform
from vgkit.finish.encode import read_frames
from vgkit.finish.stitch import StitchSettings, stitch_run
from vgkit.records.artifacts import sha256_file
from vgkit.spec.images import png_bytes

FRAMES = 9


def _scene(count: int = FRAMES) -> np.ndarray:
    """A smooth textured scene that moves one pixel a frame (F, 48, 64, 3) uint8."""
    y, x = np.mgrid[0:48, 0:64]
    frames = []
    for t in range(count):
        r = 90 + 50 * np.sin((x + t) / 9.0)
        g = 110 + 40 * np.cos((y + t) / 7.0)
        b = 100 + 30 * np.sin((x + y) / 11.0)
        frames.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


def _drifted(frames: np.ndarray, step: int) -> np.ndarray:
    """Brighter, warmer and more contrasty with each chained clip (the drift chaining accumulates)."""
    out = frames.astype(np.float64)
    out = (out - 110) * (1 + 0.06 * step) + 110 + np.array([14, 6, -8]) * step
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _segment_means(final: Path) -> list[np.ndarray]:
    """Per-channel means of each clip's stretch of a cut-stitched final (9, 8, 8 frames)."""
    frames = read_frames(final).reshape(3 * FRAMES - 2, -1, 3).astype(np.float64)
    bounds = [(0, FRAMES), (FRAMES, 2 * FRAMES - 1), (2 * FRAMES - 1, 3 * FRAMES - 2)]
    return [frames[a:b].mean(axis=(0, 1)) for a, b in bounds]


def _drift(means: list[np.ndarray]) -> list[float]:
    return [float(np.abs(m - means[0]).mean()) for m in means[1:]]


def test_colour_matching_reduces_a_synthetic_drift(tmp_path: Path) -> None:
    scene = _scene()
    layout = make_run(tmp_path / "run", clips=[_drifted(scene, step) for step in range(3)])
    stitch_run(layout.root, dest=tmp_path / "plain.mp4")
    before = _drift(_segment_means(tmp_path / "plain.mp4"))
    record = stitch_run(layout.root, StitchSettings(colour="mean_std"))
    after = _drift(_segment_means(layout.final))
    assert before[1] > 10, f"the synthetic drift is too small to test with: {before}"
    assert after[0] < before[0] / 4 and after[1] < before[1] / 4, f"drift before {before}, after {after}"
    colour = record["colour_matching"]
    assert colour["anchor"]["source"] == "first_clip"
    assert colour["transforms"][0]["lutrgb"] is None  # the anchor is never changed
    assert all(t["lutrgb"] for t in colour["transforms"][1:])
    seams = colour["seam_jump_levels"]
    assert all(a < b for a, b in zip(seams["after"], seams["before"], strict=True)), seams
    assert record["final_frames"] == 3 * FRAMES - 2


def test_an_undrifted_sequence_is_left_alone(tmp_path: Path) -> None:
    scene = _scene()
    layout = make_run(tmp_path / "run", clips=[scene.copy() for _ in range(3)])
    plain = stitch_run(layout.root)["final"]["sha256"]
    record = stitch_run(layout.root, StitchSettings(colour="mean_std"))
    assert [t["lutrgb"] for t in record["colour_matching"]["transforms"]] == [None, None, None]
    assert sha256_file(layout.final) == plain
    drift = record["colour_matching"]["clip_drift_levels"]
    assert drift["before"] == drift["after"]


def test_reference_image_anchor_pulls_clip_zero_too(tmp_path: Path) -> None:
    scene = _scene()
    layout = make_run(tmp_path / "run", clips=[_drifted(scene, step) for step in (1, 2, 3)])
    anchor = tmp_path / "reference.png"
    anchor.write_bytes(png_bytes(np.ascontiguousarray(scene[0])))
    record = stitch_run(layout.root, StitchSettings(colour="mean_std", colour_anchor_image=anchor))
    colour = record["colour_matching"]
    assert colour["anchor"] == {"source": "reference_image", "sha256": sha256_file(anchor)}
    assert colour["transforms"][0]["lutrgb"] is not None
    before, after = colour["clip_drift_levels"]["before"], colour["clip_drift_levels"]["after"]
    assert all(a < b / 4 for a, b in zip(after, before, strict=True)), (before, after)


def test_fit_transform_matches_mean_and_std() -> None:
    rng = np.random.default_rng(0)
    anchor = rng.integers(40, 200, size=(32, 32, 3), dtype=np.uint8)
    shifted = np.clip(anchor.astype(np.int64) * 9 // 10 + 20, 0, 255).astype(np.uint8)
    gain, offset = fit_transform(channel_stats([shifted]), channel_stats([anchor]))
    fixed = channel_stats([apply_lut(shifted, gain, offset)])
    target = channel_stats([anchor])
    assert np.allclose(fixed["mean"], target["mean"], atol=0.6)
    assert np.allclose(fixed["std"], target["std"], atol=0.6)
    assert gain == pytest.approx([10 / 9] * 3, rel=0.02)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: tmp / "gone.png", "file not found"),
        (lambda tmp: tmp, "is a folder, not an image file"),
        (lambda tmp: _written(tmp / "notes.png", b"not an image"), "not a readable image"),
        (lambda tmp: write_corrupt_pixels_png(tmp / "bad.png"), "not a readable image: its pixel data"),
    ],
    ids=["missing", "folder", "not an image", "corrupt pixels"],
)
def test_unusable_colour_anchor_is_one_line_exit_2_before_any_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path], expected: str
) -> None:
    """Before: a raw traceback (FileNotFoundError, PIL's UnidentifiedImageError, ...)."""
    layout = make_run(tmp_path / "run")
    anchor = make(tmp_path)
    code = main(["stitch", str(layout.root), "--colour", "mean_std", "--colour-anchor", str(anchor)])
    err = capsys.readouterr().err
    assert code == SpecError.exit_code, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"--colour-anchor = '{anchor}': {expected}" in err and "fix:" in err
    assert not layout.final.exists() and not (layout.root / "manifest.json").exists()


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
