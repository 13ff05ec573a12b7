"""Find a model's checkpoint in the local cache; build the tiny ones there on first use."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from vgkit.cache import snapshot_dir, write_snapshot
from vgkit.errors import ModelUnavailableError
from vgkit.models import ModelAdapter

__all__ = ["TINY_RECIPE_VERSION", "locate_checkpoint", "tiny_commit"]

# Bump when a tiny checkpoint's recipe changes, so old cached builds are not reused.
TINY_RECIPE_VERSION = 4


def tiny_commit(model: ModelAdapter) -> str:
    """The stable pseudo-commit of a tiny checkpoint: a hash of its repo id and recipe version."""
    return hashlib.sha1(f"{model.repo_id}@recipe-{TINY_RECIPE_VERSION}".encode()).hexdigest()


def locate_checkpoint(model: ModelAdapter, *, cache_dir: Path | None = None) -> Path:
    """The snapshot directory to load ``model`` from; tiny checkpoints are built when missing."""
    if model.tiny:
        commit = tiny_commit(model)
        found = snapshot_dir(model.repo_id, commit, cache_dir=cache_dir)
        if found is not None:
            return found
        with tempfile.TemporaryDirectory(prefix="vgkit-tiny-") as tmp:
            model.build_tiny(Path(tmp))
            return write_snapshot(model.repo_id, commit, Path(tmp), cache_dir=cache_dir)
    found = snapshot_dir(model.repo_id, model.revision, cache_dir=cache_dir)
    if found is None:
        raise ModelUnavailableError(
            f"model {model.name!r}: {model.repo_id}@{model.revision} is not in the local HF cache; "
            f"fix: vgkit prefetch --model {model.name}"
        )
    return found
