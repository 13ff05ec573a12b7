"""Environment variables and machine facts, read in one place. Standard library only.

Nothing here changes the environment at import; functions read it when called, so tests can
point the caches at temporary directories with ``monkeypatch.setenv``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "code_commit",
    "cuda_gpu_memory_gib",
    "cuda_gpu_name",
    "ffmpeg_threads",
    "hub_cache_dir",
    "hub_endpoint",
    "hub_offline",
    "lock_dir",
    "offline_by_default",
    "repo_root",
    "visible_gpu",
]

# Encoder threads are pinned: x264 output depends on the thread count (FACTS.md), so a fixed
# number keeps stitched bytes identical across machines with different core counts.
DEFAULT_FFMPEG_THREADS = 4


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved exactly as huggingface_hub resolves it."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache).expanduser()
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def hub_endpoint() -> str:
    """The Hub URL (``HF_ENDPOINT``, default https://huggingface.co), read at call time."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network (the Hub client's truthy values)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def offline_by_default() -> bool:
    """Make this process offline for the Hub unless ``HF_HUB_OFFLINE`` is set explicitly.

    Runs load weights that ``vgkit prefetch`` put in the cache, so a flaky network cannot stall a
    generation. The Hub client reads the variable when it is imported; if it already was, its
    constant is set as well. Returns whether the process is now offline.
    """
    import sys

    if "HF_HUB_OFFLINE" not in os.environ:
        os.environ["HF_HUB_OFFLINE"] = "1"
        constants = sys.modules.get("huggingface_hub.constants")
        if constants is not None:
            constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
    return hub_offline()


def ffmpeg_threads() -> int:
    """Thread count for every ffmpeg encode (``VGKIT_FFMPEG_THREADS``, default 4)."""
    raw = os.environ.get("VGKIT_FFMPEG_THREADS", str(DEFAULT_FFMPEG_THREADS))
    if not raw.isdigit() or int(raw) < 1:
        from vgkit.errors import SpecError

        raise SpecError(f"VGKIT_FFMPEG_THREADS={raw!r} is not a positive integer; unset it or set e.g. 4")
    return int(raw)


def cuda_gpu_name() -> str | None:
    """The first CUDA GPU's name via ``nvidia-smi``, or None when there is none.

    Used before torch is importable (the quick start announces its model choice first), so it
    asks the driver's own tool rather than torch. ``VGKIT_FORCE_CPU=1`` hides any GPU.
    """
    gpu = _query_first_gpu()
    return gpu[0] if gpu else None


def cuda_gpu_memory_gib() -> float | None:
    """The first CUDA GPU's total memory in GiB via ``nvidia-smi``, or None when there is none."""
    gpu = _query_first_gpu()
    return int(gpu[1]) / 1024 if gpu and gpu[1].isdigit() else None


def _query_first_gpu() -> tuple[str, str] | None:
    """``(name, total MiB)`` of the first GPU as ``nvidia-smi`` prints them, or None."""
    if os.environ.get("VGKIT_FORCE_CPU") == "1":
        return None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        done = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = [line.rsplit(",", 1) for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not rows or len(rows[0]) != 2:
        return None
    return rows[0][0].strip(), rows[0][1].strip()


def repo_root() -> Path:
    """The directory holding the ``vgkit`` package (the repository root in a checkout)."""
    return Path(__file__).resolve().parent.parent


PUSHED_COMMIT_FILE = ".vgkit-commit"  # written by `vgkit remote push` beside code that has no .git


def code_commit() -> str:
    """The git commit of the vgkit checkout, with ``+dirty`` when it has uncommitted changes.

    Code pushed by ``vgkit remote push`` has no ``.git``; its commit is read from the file push wrote.
    """
    root = repo_root()
    if not (root / ".git").exists() or shutil.which("git") is None:
        pushed = root / PUSHED_COMMIT_FILE
        return f"{pushed.read_text().strip()} (pushed)" if pushed.is_file() else "unknown"
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def lock_dir() -> Path:
    """Where per-device run locks live: ``VGKIT_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/vgkit-locks``,
    else ``/tmp/vgkit-locks-<uid>``."""
    if explicit := os.environ.get("VGKIT_LOCK_DIR"):
        return Path(explicit).expanduser()
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / "vgkit-locks"
    return Path("/tmp") / f"vgkit-locks-{os.getuid()}"


def visible_gpu() -> str:
    """The first entry of ``CUDA_VISIBLE_DEVICES`` (the GPU a run uses), or ``"0"`` when unset."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return visible or "0"


def cost_cache_dir() -> Path:
    """Where the cost planner keeps its counts (vgkit.cost): ``VGKIT_COST_CACHE``, else
    ``$XDG_CACHE_HOME/vgkit/cost``, else ``~/.cache/vgkit/cost``."""
    if explicit := os.environ.get("VGKIT_COST_CACHE"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vgkit" / "cost"
