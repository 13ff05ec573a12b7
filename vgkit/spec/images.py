"""Images as uint8 arrays (H, W, 3): checked loading, deterministic fitting, lossless PNG bytes.

An image path is user input, so ``load_rgb`` turns every way it can be wrong into one ``SpecError``
line that names the field, the path and the fix: a missing, special (FIFO, device, folder) or
unreadable file, a name the file system refuses, an image over PIL's decompression-bomb limit or
outside the caller's size limits, a pixel stream that does not decode to the end. The whole image
is decoded, so a file that passes here decodes the same way later.

Modes are converted to 8-bit RGB with their own scaling (PIL's ``convert("RGB")`` clips 16-bit
and 32-bit grey to white and float grey to black):

- 16-bit grey (``I;16*``, and ``I``, which PIL uses for 16-bit sources): ``round(v * 255 / 65535)``;
  ``I`` values outside 0..65535 are refused, not clipped.
- float grey (``F``): values must lie in 0..1 (the float-image convention) and become
  ``round(v * 255)``; NaN, infinities or values outside are refused.
- alpha (``RGBA``, ``LA``, ``PA``, ``RGBa``, ``P``/``L``/``RGB`` with a transparency entry):
  composited onto ``BACKGROUND_RGB`` (white), so a transparent pixel's hidden colour never shows.
- everything else (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, 16-bit RGB PNG, ...): PIL's conversion;
  a mode PIL cannot convert is refused.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from vgkit.errors import SpecError

__all__ = ["BACKGROUND_RGB", "file_kind", "fit_to_size", "load_rgb", "png_bytes"]

BACKGROUND_RGB = (255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa"})
_FILE_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}
_OPEN_FIXES = {
    errno.ENOENT: ("file not found", "check the path (a spec's relative paths are read from the spec's folder)"),
    errno.ENAMETOOLONG: ("the file system refuses a name this long", "rename the file or its folders to shorter names"),
    errno.EACCES: ("permission denied", "make the file readable (chmod a+r) or copy it somewhere readable"),
    errno.EPERM: ("permission denied", "make the file readable (chmod a+r) or copy it somewhere readable"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "check the path"),
    errno.ELOOP: ("too many symbolic links in the path", "point it at the image file itself"),
}


def file_kind(st_mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO (named pipe)"), from its ``st_mode``."""
    return _FILE_KINDS.get(stat.S_IFMT(st_mode), "not a regular file")


class _Problem(Exception):
    """What is wrong with the file and the fix; ``load_rgb`` adds the field and path."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix


def load_rgb(path: Path, *, field: str = "image", min_side: int = 1, max_side: int | None = None) -> np.ndarray:
    """The image at ``path`` as an (H, W, 3) uint8 array, fully decoded and converted per mode.

    Any problem (see the module docstring) raises one ``SpecError`` line
    ``{field} = '{path}': {what is wrong}; fix: {fix}``. ``min_side``/``max_side`` bound the width
    and height and are checked before the pixels are decoded.
    """
    try:
        return _load(Path(path), min_side=min_side, max_side=max_side)
    except _Problem as problem:
        raise SpecError(f"{field} = '{path}': {problem.what}; fix: {problem.fix}") from None


def _load(path: Path, *, min_side: int, max_side: int | None) -> np.ndarray:
    with _open_regular(path) as handle:
        try:
            with warnings.catch_warnings():
                # PIL warns above MAX_IMAGE_PIXELS and raises above twice that: refuse both alike
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(handle)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            limit = f" to at most {max_side} px a side" if max_side else ""
            raise _Problem(f"too large to decode safely ({exc})", f"resize the image{limit}") from None
        except Exception as exc:  # PIL's format plugins raise many types on bad data; all mean "unreadable"
            raise _Problem(f"not a readable image ({_describe(exc)})", "use PNG or JPEG") from None
        with img:
            width, height = img.size
            if min(width, height) < min_side or (max_side is not None and max(width, height) > max_side):
                bounds = f"{min_side}-{max_side}" if max_side is not None else f"at least {min_side}"
                raise _Problem(f"{width}x{height} px is outside {bounds} px", "resize the image")
            try:
                img.load()  # the whole pixel stream, so a corrupt one fails here and not at generation
            except Exception as exc:  # as above: any decoder failure is the file's
                raise _Problem(
                    f"not a readable image: its pixel data does not decode ({_describe(exc)})",
                    "re-export or re-save the image as PNG or JPEG",
                ) from None
            return _to_rgb(img)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _open_regular(path: Path) -> io.BufferedReader:
    """Open ``path`` for reading only if it is a regular file (never blocks on a FIFO or device)."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _Problem(f"is {file_kind(mode)}, not an image file", "give the path of a PNG or JPEG file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        what, fix = _OPEN_FIXES.get(exc.errno or 0, (f"cannot be opened ({exc.strerror})", "check the path"))
        if exc.errno == errno.ENAMETOOLONG:
            longest = max((len(part.encode()) for part in Path(path).parts), default=0)
            what += f" ({longest} bytes in its longest part; most file systems allow 255)"
        raise _Problem(what, fix) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between the check and the open
        os.close(fd)
        raise _Problem("is not a regular file", "give the path of a PNG or JPEG file")
    return os.fdopen(fd, "rb")


def _to_rgb(img: Image.Image) -> np.ndarray:
    """The loaded image as (H, W, 3) uint8 with each mode's own scaling (see the module docstring)."""
    mode = img.mode
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(img)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            raise _Problem(
                f"32-bit integer pixels span {low}..{high}, outside the 16-bit range 0..65535 vgkit reads",
                "save it as an 8- or 16-bit PNG",
            )
        scaled = values.astype(np.uint32)  # v * 255 + 32767 < 2**32: round(v * 255 / 65535) exactly
        scaled *= 255
        scaled += 32767
        scaled //= 65535
        return _grey_to_rgb(scaled)
    if mode == "F":
        floats = np.asarray(img, dtype=np.float32)
        if not np.isfinite(floats).all() or floats.min() < 0.0 or floats.max() > 1.0:
            span = f"{np.nanmin(floats):g}..{np.nanmax(floats):g}"
            raise _Problem(
                f"float pixels span {span} (or are not finite), outside the 0..1 range of float images",
                "scale it to 0..1 or save it as an 8- or 16-bit PNG",
            )
        return _grey_to_rgb(np.floor(floats * 255 + 0.5))
    has_alpha = mode in _ALPHA_MODES or "transparency" in img.info
    try:
        converted = img.convert("RGBA" if has_alpha else "RGB")
    except ValueError as exc:  # PIL has no conversion for this mode
        raise _Problem(f"pixel mode {mode} cannot be converted to RGB ({exc})", "save it as PNG or JPEG") from None
    if has_alpha:  # PIL's 8-bit compositing, in C: no wide copies of a large image
        background = Image.new("RGBA", converted.size, (*BACKGROUND_RGB, 255))
        converted = Image.alpha_composite(background, converted).convert("RGB")
    return np.asarray(converted, dtype=np.uint8).copy()


def _grey_to_rgb(grey_hw: np.ndarray) -> np.ndarray:
    return np.repeat(grey_hw.astype(np.uint8)[..., None], 3, axis=-1)


def fit_to_size(image_hwc: np.ndarray, *, width: int, height: int) -> np.ndarray:
    """Center-crop to the target aspect, then resize with Lanczos. Identity when sizes match."""
    h, w = image_hwc.shape[:2]
    if (w, h) == (width, height):
        return image_hwc
    target = width / height
    if w / h > target:
        crop_w = round(h * target)
        left = (w - crop_w) // 2
        box = (left, 0, left + crop_w, h)
    else:
        crop_h = round(w / target)
        top = (h - crop_h) // 2
        box = (0, top, w, top + crop_h)
    img = Image.fromarray(image_hwc).crop(box).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


def png_bytes(image_hwc: np.ndarray) -> bytes:
    """Lossless PNG bytes with no metadata, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    Image.fromarray(image_hwc).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
