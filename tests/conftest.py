"""Shared fixtures. No test touches the user's HF cache or writes outside tmp paths."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEMO_IMAGE = REPO / "params" / "images" / "lighthouse.png"


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One HF hub cache for the session, so the tiny checkpoint is built once."""
    return tmp_path_factory.mktemp("hf-hub-cache")


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(hub_cache: Path) -> Iterator[None]:
    """Session-wide (module fixtures run before function ones): HF caches in tmp, offline, no GPU."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(hub_cache))
        mp.setenv("HF_HOME", str(hub_cache.parent / "hf-home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("VGKIT_FORCE_CPU", "1")
        mp.delenv("VGKIT_FFMPEG_THREADS", raising=False)
        yield


def spec_dict(**changes: Any) -> dict[str, Any]:
    """A valid spec as a dict (three 5 s shots, any length allowed), with top-level changes."""
    base: dict[str, Any] = {
        "name": "t",
        "model": "wan22-tiny",
        "reference_image": str(DEMO_IMAGE),
        "seed": 7,
        "globals": {
            "style": "photoreal",
            "era_location": "modern coast",
            "lighting": "bright day",
            "lens": "35mm",
            "aspect": "16:9",
        },
        "negative_prompt": "blur",
        "shots": [
            {
                "subject": f"boat {i}",
                "action": "sails",
                "environment": "sea",
                "camera": "pan",
                "duration_s": 5,
            }
            for i in range(3)
        ],
        "overrides": {"width": 64, "height": 64, "steps": 2},
        "allow_any_length": True,
    }
    base.update(changes)
    return base


def write_spec(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def small_spec(tmp_path: Path) -> Path:
    return write_spec(tmp_path / "spec.yaml", spec_dict())


def solid_frames(count: int, color: tuple[int, int, int], *, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """``count`` frames of one colour, (F, H, W, 3) uint8; ``size`` is (width, height)."""
    width, height = size
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    frames[...] = color
    return frames
