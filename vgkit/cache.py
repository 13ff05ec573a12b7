"""Checkpoints in the Hugging Face hub cache layout. Standard library only.

Real checkpoints land here through ``vgkit prefetch`` (huggingface_hub); the tiny random-weight
checkpoints are written here by vgkit itself in the same layout::

    <hub cache>/models--<org>--<name>/
        blobs/<sha256>                 file contents
        refs/<revision>                a commit hash
        snapshots/<commit>/<path>      relative symlinks into blobs/

so one loader, ``from_pretrained(snapshot_dir)``, serves both.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from vgkit.settings import hub_cache_dir

__all__ = ["repo_cache_dir", "snapshot_dir", "write_snapshot"]


def repo_cache_dir(repo_id: str, *, cache_dir: Path | None = None) -> Path:
    """``models--org--name`` under the hub cache."""
    return (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))


def _is_commit(revision: str) -> bool:
    return len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def snapshot_dir(repo_id: str, revision: str, *, cache_dir: Path | None = None) -> Path | None:
    """The cached snapshot of ``repo_id`` at ``revision`` if it holds a ``model_index.json``."""
    repo_dir = repo_cache_dir(repo_id, cache_dir=cache_dir)
    commit = revision
    if not _is_commit(revision):
        ref = repo_dir / "refs" / revision
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    snap = repo_dir / "snapshots" / commit
    return snap if (snap / "model_index.json").is_file() else None


def write_snapshot(
    repo_id: str, commit: str, source: Path, *, revision: str = "main", cache_dir: Path | None = None
) -> Path:
    """Copy the files under ``source`` into the cache as snapshot ``commit``; return its path.

    The snapshot directory appears in one rename, so a concurrent reader sees it whole or not at
    all; blobs are content-addressed, so writing the same files twice is harmless.
    """
    repo_dir = repo_cache_dir(repo_id, cache_dir=cache_dir)
    blobs = repo_dir / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    (repo_dir / "snapshots").mkdir(exist_ok=True)
    final = repo_dir / "snapshots" / commit
    staging = Path(tempfile.mkdtemp(prefix=f".{commit}.", dir=repo_dir / "snapshots"))
    try:
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            blob = blobs / digest
            if not blob.exists():
                tmp = blobs / f".{digest}.tmp"
                shutil.copyfile(file, tmp)
                os.replace(tmp, blob)
            link = staging / file.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            depth = len(file.relative_to(source).parts) + 1  # snapshots/<commit>/<parts...>
            link.symlink_to(Path(*([".."] * depth), "blobs", digest))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    refs = repo_dir / "refs"
    refs.mkdir(exist_ok=True)
    tmp_ref = refs / f".{revision}.tmp"
    tmp_ref.write_text(commit)
    os.replace(tmp_ref, refs / revision)
    return final
