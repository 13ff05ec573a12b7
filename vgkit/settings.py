"""Environment variables and machine facts, read in one place. Standard library only.

Nothing here changes the environment at import; functions read it when called, so tests can
point the caches at temporary directories with ``monkeypatch.setenv``.

The Hugging Face cache is resolved here for every entry point (``vgkit`` on the command line,
the notebooks in JupyterLab or papermill, the worker child of a run), in this order:

1. ``HF_HUB_CACHE``, then ``HF_HOME`` + ``/hub``, as the user set them;
2. the same variables in vgkit's env file (``.venv/vgkit.env``, written once by ``setup.sh``);
3. the default ``setup.sh`` would write: ``<workspace>/.cache/huggingface`` when the workspace
   volume (``VGKIT_WORKSPACE``, default ``/workspace``) is a writable folder, else Hugging Face's
   own default (``${XDG_CACHE_HOME:-~/.cache}/huggingface``).

vgkit passes this path explicitly to every Hub call, so a console script that never sourced the
env file and a kernel started from JupyterLab agree. ``apply_env_file`` also exports the file's
variables (only those the user has not set) so child processes and the Hub client's own files
(the token) agree too; entry points call it once, before any HF library is imported.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import Any

__all__ = [
    "apply_env_file",
    "code_commit",
    "cuda_gpu_memory_gib",
    "cuda_gpu_name",
    "default_hf_home",
    "describe_hub_cache",
    "env_file",
    "ffmpeg_threads",
    "generator_factory",
    "hub_cache_dir",
    "hub_cache_source",
    "hub_endpoint",
    "hub_offline",
    "lock_dir",
    "offline_hub",
    "other_hub_caches",
    "read_env_file",
    "repo_root",
    "visible_gpu",
    "workspace_root",
    "write_env_file",
]

# Encoder threads are pinned: x264 output depends on the thread count (x264 splits frames by thread), so a fixed
# number keeps stitched bytes identical across machines with different core counts.
DEFAULT_FFMPEG_THREADS = 4


CACHE_VARIABLES = ("HF_HUB_CACHE", "HF_HOME")
# "<cache path>\t<source>" as resolved before apply_env_file exported it, for hub_cache_source
_APPLIED_SOURCE = "VGKIT_HF_CACHE_SOURCE"
DEFAULT_WORKSPACE = "/workspace"
_applied_env_file = False


def workspace_root() -> Path:
    """The rented box's persistent volume: ``VGKIT_WORKSPACE``, default ``/workspace``."""
    return Path(os.environ.get("VGKIT_WORKSPACE") or DEFAULT_WORKSPACE).expanduser()


def env_file() -> Path:
    """vgkit's env file: ``VGKIT_ENV_FILE``, default ``<repository>/.venv/vgkit.env`` (setup.sh's)."""
    if explicit := os.environ.get("VGKIT_ENV_FILE"):
        return Path(explicit).expanduser()
    return repo_root() / ".venv" / "vgkit.env"


_DEFAULTED = re.compile(r"\$\{(\w+):-([^{}]*)\}")


def _expand(value: str, *, own: str) -> str | None:
    """Expand ``${NAME:-default}`` (nested) and ``$NAME`` as the shell would, except that the
    line's own variable counts as unset (the file's default is wanted); None if a ``$`` is left."""
    while (inner := _DEFAULTED.search(value)) is not None:
        name, default = inner.groups()
        current = None if name == own else os.environ.get(name)
        value = value[: inner.start()] + (current or default) + value[inner.end() :]
    value = os.path.expandvars(value)
    return None if "$" in value else value


def read_env_file(path: Path | None = None) -> dict[str, str]:
    """``NAME -> value`` from the env file (``export NAME="${NAME:-value}"`` or ``NAME=value``
    lines; comments and lines it cannot read are skipped). Missing file: ``{}``."""
    try:
        text = (path or env_file()).read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        line = line.strip().removeprefix("export ").strip()
        name, sep, raw = line.partition("=")
        if not sep or line.startswith("#") or not name.isidentifier():
            continue
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            raw = raw[1:-1]
        if (value := _expand(raw, own=name)) is not None:
            values[name] = value
    return values


def default_hf_home() -> Path:
    """``<workspace>/.cache/huggingface`` on a writable workspace volume, else the Hub's default."""
    workspace = workspace_root()
    if workspace.is_dir() and os.access(workspace, os.W_OK):
        return workspace / ".cache" / "huggingface"
    return _hf_default_home()


def _hf_default_home() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface"


def _cache_from(values: Mapping[str, str]) -> tuple[Path, str] | None:
    if cache := values.get("HF_HUB_CACHE"):
        return Path(cache).expanduser(), "HF_HUB_CACHE"
    if home := values.get("HF_HOME"):
        return Path(home).expanduser() / "hub", "HF_HOME"
    return None


def hub_cache_source() -> tuple[Path, str]:
    """The hub cache every vgkit entry point uses, and where that setting came from."""
    if found := _cache_from(os.environ):
        applied_path, _, applied_source = os.environ.get(_APPLIED_SOURCE, "").partition("\t")
        if applied_path == str(found[0]):  # exported by apply_env_file (here or in a parent process)
            return found[0], applied_source
        return found[0], f"{found[1]} set in the environment"
    path = env_file()
    if found := _cache_from(read_env_file(path)):
        return found[0], f"{found[1]} from {path}"
    home = default_hf_home()
    if home != _hf_default_home():
        return home / "hub", f"default on the {workspace_root()} volume"
    return home / "hub", "Hugging Face's default"


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache (see the module docstring for the order)."""
    return hub_cache_source()[0]


def describe_hub_cache() -> str:
    """One line for run output and ``vgkit models``: the cache path and why it is that one."""
    path, source = hub_cache_source()
    return f"vgkit: HF cache {path} ({source})"


def other_hub_caches() -> list[Path]:
    """Known hub caches other than the one in use that exist: the Hub's default, the workspace
    volume's, and the env file's (where weights land when one entry point saw a setting the
    other did not)."""
    candidates = [_hf_default_home() / "hub", workspace_root() / ".cache" / "huggingface" / "hub"]
    if found := _cache_from(read_env_file()):
        candidates.append(found[0])
    current = hub_cache_dir()
    return [path for path in dict.fromkeys(candidates) if path != current and path.is_dir()]


def apply_env_file() -> None:
    """Export the env file's variables that the user has not set, and, when neither cache
    variable is set anywhere, ``HF_HOME`` from ``default_hf_home``. Once per process.

    Call before any HF library is imported: the Hub client reads ``HF_HOME`` at import (for its
    token file); vgkit's own lookups do not depend on it (``hub_cache_dir``).
    """
    global _applied_env_file
    if _applied_env_file:
        return
    _applied_env_file = True
    path, source = hub_cache_source()
    from_file = read_env_file()
    for name, value in from_file.items():
        os.environ.setdefault(name, value)
    if not any(os.environ.get(name) for name in CACHE_VARIABLES):
        os.environ["HF_HOME"] = str(default_hf_home())
    if hub_cache_dir() == path and not source.endswith("set in the environment"):
        os.environ[_APPLIED_SOURCE] = f"{path}\t{source}"


def write_env_file(path: Path | None = None) -> Path:
    """Write the env file once (``setup.sh`` calls this): ``HF_HOME`` = ``default_hf_home`` as a
    shell default (``export HF_HOME="${HF_HOME:-...}"``), only when the user has no HF cache
    setting now. An existing file is left alone. Returns its path."""
    target = path or env_file()
    if target.exists():
        return target
    lines = ["# written by vgkit setup: defaults only where the user has none (vgkit/settings.py)"]
    if not any(os.environ.get(name) for name in CACHE_VARIABLES):
        home = str(default_hf_home())
        if any(c in home for c in '"$`\\\n'):
            raise ValueError(f"HF_HOME default {home!r} has shell metacharacters; set HF_HOME yourself")
        lines.append(f'export HF_HOME="${{HF_HOME:-{home}}}"')
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n")
    return target


def generator_factory() -> Callable[..., Any] | None:
    """The stand-in generator factory named by ``VGKIT_GENERATOR_FACTORY`` (``module:function``),
    or None (normal use). A seam for tests: it lets a worker child run a stand-in pipeline (a
    hung CUDA call cannot be staged on CPU otherwise)."""
    if not (spec := os.environ.get("VGKIT_GENERATOR_FACTORY")):
        return None
    module, _, name = spec.partition(":")
    factory: Callable[..., Any] = getattr(import_module(module), name)
    return factory


def hub_endpoint() -> str:
    """The Hub URL (``HF_ENDPOINT``, default https://huggingface.co), read at call time."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` asks for no network (the Hub client's truthy values)."""
    return _env_true("HF_HUB_OFFLINE")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")


@contextmanager
def offline_hub() -> Iterator[bool]:
    """Offline for the Hub for the duration of the ``with`` block unless ``HF_HUB_OFFLINE`` is set
    explicitly; yields whether it is offline.

    Runs load weights that ``vgkit prefetch`` put in the cache, so a flaky network cannot stall a
    generation. The Hub client reads the variable when it is imported; if it already was, its
    constant (``huggingface_hub.constants.HF_HUB_OFFLINE``) is set as well. On the way out, also
    on an error, the variable is removed again and the constant is put back to what it was (or,
    when the client was first imported inside the block, to what the environment now says).
    Libraries that copied the constant by value while imported inside the block (diffusers does)
    keep their copy.
    """
    if "HF_HUB_OFFLINE" in os.environ:
        yield hub_offline()
        return
    constants = sys.modules.get("huggingface_hub.constants")
    before = getattr(constants, "HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    _set_hub_constant(True)
    try:
        yield True
    finally:
        os.environ.pop("HF_HUB_OFFLINE", None)
        if isinstance(before, bool):
            _set_hub_constant(before)
        else:  # first imported inside the block, from the variable just removed
            _set_hub_constant(_env_true("TRANSFORMERS_OFFLINE"))


def _set_hub_constant(offline: bool) -> None:
    """Set ``huggingface_hub.constants.HF_HUB_OFFLINE`` if the Hub client is imported."""
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = offline  # type: ignore[attr-defined]


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
    return gpu[0] if (gpu := _query_first_gpu()) else None


def cuda_gpu_memory_gib() -> float | None:
    """The first CUDA GPU's total memory in GiB via ``nvidia-smi``, or None when there is none."""
    gpu = _query_first_gpu()
    return int(gpu[1]) / 1024 if gpu and gpu[1].isdigit() else None


def _query_first_gpu() -> tuple[str, str] | None:
    """``(name, total MiB)`` of the first GPU as ``nvidia-smi`` prints them, or None."""
    if os.environ.get("VGKIT_FORCE_CPU") == "1":
        return None
    if (smi := shutil.which("nvidia-smi")) is None:
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
    git = ["git", "-C", str(root)]
    try:
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run([*git, "status", "--porcelain", "-uno"], capture_output=True, text=True, timeout=10)
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
    return os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip() or "0"


def cost_cache_dir() -> Path:
    """Where the cost planner keeps its counts (vgkit.cost): ``VGKIT_COST_CACHE``, else
    ``$XDG_CACHE_HOME/vgkit/cost``, else ``~/.cache/vgkit/cost``."""
    if explicit := os.environ.get("VGKIT_COST_CACHE"):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vgkit" / "cost"
