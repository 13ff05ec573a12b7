"""Find a model's checkpoint in the local cache; build the tiny ones there on first use."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from vgkit.errors import ModelUnavailableError
from vgkit.hub.cache import CacheStatus, FileRecord, check_snapshot, repo_cache_dir, write_file_record
from vgkit.records.artifacts import atomic_write_bytes

__all__ = [
    "TINY_RECIPE_VERSION",
    "Checkpoint",
    "checkpoint_status",
    "locate_checkpoint",
    "required_file",
    "tiny_commit",
    "write_snapshot",
]


class Checkpoint(Protocol):
    """What locating a checkpoint needs: a video model's adapter (``vgkit.models``) or the
    prompt-match scorer's (``vgkit.evaluate.clip_score``)."""

    @property
    def name(self) -> str: ...
    @property
    def repo_id(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def tiny(self) -> bool: ...
    def build_tiny(self, dest: Path) -> None: ...


def required_file(model: Checkpoint) -> str:
    """The file that marks a snapshot of ``model``: ``config.json`` for a transformers model that
    says so (``required_file``), else a diffusers pipeline's ``model_index.json``."""
    return str(getattr(model, "required_file", "model_index.json"))


# Bump when a tiny checkpoint's recipe changes, so old cached builds are not reused.
TINY_RECIPE_VERSION = 5


def tiny_commit(model: Checkpoint) -> str:
    """The stable pseudo-commit of a tiny checkpoint: a hash of its repo id and recipe version."""
    return hashlib.sha1(f"{model.repo_id}@recipe-{TINY_RECIPE_VERSION}".encode()).hexdigest()


def checkpoint_status(model: Checkpoint, *, verify: bool = False, cache_dir: Path | None = None) -> CacheStatus:
    """How complete ``model``'s snapshot is in the cache (a tiny one at its pseudo-commit), offline."""
    revision = tiny_commit(model) if model.tiny else model.revision
    return check_snapshot(
        model.repo_id, revision, verify=verify, cache_dir=cache_dir, required_file=required_file(model)
    )


def locate_checkpoint(model: Checkpoint, *, cache_dir: Path | None = None) -> Path:
    """The snapshot directory to load ``model`` from; tiny checkpoints are built when missing."""
    status = checkpoint_status(model, cache_dir=cache_dir)
    if status.complete and status.snapshot is not None:
        return status.snapshot
    if model.tiny:
        with tempfile.TemporaryDirectory(prefix="vgkit-tiny-") as tmp:
            model.build_tiny(Path(tmp))
            return write_snapshot(model.repo_id, tiny_commit(model), Path(tmp), cache_dir=cache_dir)
    raise ModelUnavailableError(
        f"model {model.name!r}: {model.repo_id}@{model.revision} is not in the local HF cache; "
        f"fix: vgkit prefetch --model {model.name}"
    )


def write_snapshot(repo_id: str, commit: str, source: Path, *, cache_dir: Path | None = None) -> Path:
    """Copy the files under ``source`` into the cache as snapshot ``commit`` (``refs/main``), with its
    file record.

    The snapshot directory appears in one rename, so a concurrent reader sees it whole or not at
    all; blobs are content-addressed, so writing the same files twice is harmless.
    """
    repo_dir = repo_cache_dir(repo_id, cache_dir=cache_dir)
    (repo_dir / "snapshots").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{commit}.", dir=repo_dir / "snapshots"))
    record: list[FileRecord] = []
    try:
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            rel, data = file.relative_to(source), file.read_bytes()
            blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
            record.append({"path": rel.as_posix(), "size": len(data), "sha256": blob.name})
            if not blob.exists():
                atomic_write_bytes(blob, data)
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).symlink_to(os.path.relpath(blob, (staging / rel).parent))
        write_file_record(repo_id, commit, record, cache_dir=cache_dir)
        shutil.rmtree(repo_dir / "snapshots" / commit, ignore_errors=True)
        os.replace(staging, repo_dir / "snapshots" / commit)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    atomic_write_bytes(repo_dir / "refs" / "main", commit.encode())
    return repo_dir / "snapshots" / commit
