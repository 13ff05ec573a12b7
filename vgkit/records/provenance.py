"""Where a result came from: package versions, machine, ffmpeg build, vgkit commit."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

from vgkit import __version__
from vgkit.settings import code_commit

__all__ = ["TRACKED_PACKAGES", "environment_info", "package_versions", "peak_memory_bytes"]

TRACKED_PACKAGES = (
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "huggingface_hub",
    "safetensors",
    "imageio-ffmpeg",
    "numpy",
    "pillow",
)


def package_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _gpu_info() -> dict[str, Any]:
    if "torch" not in sys.modules:
        return {"cuda": None}
    import torch

    if not torch.cuda.is_available():
        return {"cuda": None}
    props = torch.cuda.get_device_properties(0)
    return {"cuda": torch.version.cuda, "gpu": props.name, "gpu_memory_bytes": int(props.total_memory)}


def environment_info() -> dict[str, Any]:
    from vgkit.finish.encode import ffmpeg_version

    return {
        "vgkit_version": __version__,
        "code_commit": code_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "ffmpeg": ffmpeg_version(),
        **_gpu_info(),
    }


def peak_memory_bytes(device: str) -> dict[str, int]:
    """Peak GPU memory allocated (CUDA) and peak resident memory of this process."""
    import resource

    record = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device == "cuda":
        import torch

        record["peak_gpu_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    return record
