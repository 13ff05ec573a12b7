"""Images as uint8 arrays (H, W, 3): loading, deterministic fitting, lossless PNG bytes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["fit_to_size", "load_rgb", "png_bytes"]


def load_rgb(path: Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 array."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


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
