"""Image loading: every mode scaled right (not clipped), every bad file one line naming field and fix.

The odd files are real files written here (hand-built PNG chunks where PIL cannot write the case:
48-bit RGB, a huge header, a corrupt pixel stream with valid CRCs); nothing is stubbed.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vgkit.errors import SpecError
from vgkit.spec.images import BACKGROUND_RGB, load_rgb


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_png(path: Path, samples_hwc: np.ndarray, *, color_type: int, bit_depth: int = 16) -> Path:
    """A PNG written chunk by chunk (PIL cannot write 48-bit RGB): ``color_type`` 0 grey, 2 RGB."""
    height, width = samples_hwc.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = b"".join(b"\x00" + samples_hwc[y].astype(dtype).tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def write_huge_png_header(path: Path, side: int = 20000) -> Path:
    """A tiny file whose header claims ``side`` x ``side`` 8-bit grey (PIL's bomb guard trips on open)."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    data = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def write_corrupt_pixels_png(path: Path) -> Path:
    """A 128x128 PNG whose compressed pixel bytes are scrambled but whose chunk CRCs are recomputed,
    so ``Image.verify()`` passes and only decoding the pixels fails."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(path)
    raw = path.read_bytes()
    out, i = bytearray(raw[:8]), 8
    while i < len(raw):
        (size,) = struct.unpack(">I", raw[i : i + 4])
        kind, body = raw[i + 4 : i + 8], bytearray(raw[i + 8 : i + 8 + size])
        if kind == b"IDAT":
            for k in range(len(body) // 2, len(body) // 2 + 64):
                body[k] ^= 0x5A
        out += _chunk(kind, bytes(body))
        i += 12 + size
    path.write_bytes(bytes(out))
    with Image.open(path) as img:
        img.verify()  # the trap: the cheap check passes
    return path


def _uniform(image_hwc: np.ndarray) -> tuple[int, ...]:
    assert (image_hwc == image_hwc[0, 0]).all()
    assert image_hwc.dtype == np.uint8 and image_hwc.shape[2] == 3
    return tuple(int(v) for v in image_hwc[0, 0])


def test_16_bit_grey_png_is_scaled_not_clipped_to_white(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16)).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode == "I;16"
    assert _uniform(load_rgb(tmp_path / "g16.png")) == (117,) * 3  # round(30000 * 255 / 65535)


def test_16_bit_grey_extremes_and_gradient_keep_their_order(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16)[None, :].repeat(4, axis=0)
    path = write_png(tmp_path / "ramp.png", ramp[..., None], color_type=0)
    grey = load_rgb(path)[0, :, 0].astype(int)
    assert grey[0] == 0 and grey[-1] == 255
    assert (np.diff(grey) >= 0).all() and len(set(grey.tolist())) > 50


def test_32_bit_integer_grey_reads_as_16_bit_and_refuses_values_beyond(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 40000, dtype=np.int32)).save(tmp_path / "i.tif")
    with Image.open(tmp_path / "i.tif") as img:
        assert img.mode == "I"
    assert _uniform(load_rgb(tmp_path / "i.tif")) == (156,) * 3  # round(40000 * 255 / 65535)
    Image.fromarray(np.full((8, 8), 70000, dtype=np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(SpecError, match=r"70000\.\.70000, outside the 16-bit range.*fix: save it as"):
        load_rgb(tmp_path / "wide.tif")


def test_float_grey_is_read_as_0_to_1_and_refuses_values_beyond(tmp_path: Path) -> None:
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(tmp_path / "f.tif")
    assert _uniform(load_rgb(tmp_path / "f.tif")) == (128,) * 3
    Image.fromarray(np.full((8, 8), 200.0, dtype=np.float32)).save(tmp_path / "f255.tif")
    with pytest.raises(SpecError, match=r"float pixels span 200\.\.200.*fix: scale it to 0\.\.1"):
        load_rgb(tmp_path / "f255.tif", field="--colour-anchor")


def test_48_bit_rgb_png_keeps_each_channel(tmp_path: Path) -> None:
    samples = np.zeros((8, 8, 3), dtype=np.uint16)
    samples[...] = (65535, 32896, 2570)
    assert _uniform(load_rgb(write_png(tmp_path / "rgb16.png", samples, color_type=2))) == (255, 128, 10)


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("LA", lambda: Image.new("LA", (8, 8), (0, 0))),
        ("RGBA", lambda: Image.new("RGBA", (8, 8), (200, 0, 0, 0))),
        ("P", lambda: _palette_with_transparent_red()),
    ],
)
def test_transparent_pixels_become_the_background_not_their_hidden_colour(
    tmp_path: Path, mode: str, make: object
) -> None:
    assert callable(make)
    img = make()
    img.save(tmp_path / "t.png")
    with Image.open(tmp_path / "t.png") as reopened:
        assert reopened.mode == mode
    assert _uniform(load_rgb(tmp_path / "t.png")) == BACKGROUND_RGB


def _palette_with_transparent_red() -> Image.Image:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.info["transparency"] = 0
    return img


def test_half_transparent_pixels_blend_with_the_background(tmp_path: Path) -> None:
    Image.new("RGBA", (8, 8), (0, 0, 0, 128)).save(tmp_path / "half.png")
    assert _uniform(load_rgb(tmp_path / "half.png")) == (127,) * 3  # (0 * 128 + 255 * 127) / 255
    Image.new("RGBA", (8, 8), (10, 20, 30, 255)).save(tmp_path / "opaque.png")
    assert _uniform(load_rgb(tmp_path / "opaque.png")) == (10, 20, 30)


def test_cmyk_jpeg_converts_multiplicatively(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 0, 0, 128)).save(tmp_path / "c.jpg", quality=100)
    assert all(abs(v - 127) <= 1 for v in _uniform(load_rgb(tmp_path / "c.jpg")))


def _one_line(exc: pytest.ExceptionInfo[SpecError], *parts: str) -> str:
    message = str(exc.value)
    assert "\n" not in message and "fix:" in message, message
    for part in parts:
        assert part in message, message
    return message


def test_corrupt_pixel_stream_is_refused_although_verify_passes(tmp_path: Path) -> None:
    path = write_corrupt_pixels_png(tmp_path / "bad.png")
    with pytest.raises(SpecError) as err:
        load_rgb(path, field="reference_image")
    _one_line(err, "reference_image = ", "bad.png", "pixel data does not decode")


def test_decompression_bomb_is_one_line(tmp_path: Path) -> None:
    path = write_huge_png_header(tmp_path / "huge.png")
    with pytest.raises(SpecError) as err:
        load_rgb(path, field="reference_image", max_side=8192)
    _one_line(err, "too large to decode safely", "400000000 pixels", "at most 8192 px a side")


def test_too_long_file_name_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_rgb(tmp_path / ("a" * 300 + ".png"), field="reference_image")
    _one_line(err, "refuses a name this long", "304 bytes", "rename the file")


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_special_files_are_named_as_such_and_never_read(tmp_path: Path, kind: str) -> None:
    if kind == "fifo":
        path = tmp_path / "pipe.png"
        os.mkfifo(path)  # opening it for reading would block forever: it must not be opened
        expected = "is a FIFO (named pipe), not an image file"
    elif kind == "device":
        path = Path("/dev/zero")
        expected = "is a character device, not an image file"
    else:
        path = tmp_path
        expected = "is a folder, not an image file"
    with pytest.raises(SpecError) as err:
        load_rgb(path, field="reference_image")
    _one_line(err, expected, str(path))


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_rgb(tmp_path / "gone.png", field="--colour-anchor")
    _one_line(err, "--colour-anchor = ", "file not found")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(SpecError) as err:
        load_rgb(tmp_path / "text.png")
    _one_line(err, "not a readable image", "use PNG or JPEG")


def test_size_limits_are_checked_before_decoding(tmp_path: Path) -> None:
    path = write_png(tmp_path / "wide.png", np.zeros((2, 9000, 1), dtype=np.uint8), color_type=0, bit_depth=8)
    with pytest.raises(SpecError) as err:
        load_rgb(path, min_side=64, max_side=8192)
    _one_line(err, "9000x2 px is outside 64-8192 px", "resize the image")
