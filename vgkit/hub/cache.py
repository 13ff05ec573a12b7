"""Checkpoints in the Hugging Face hub cache layout, checked with no network. Standard library only
(the content hashes come from huggingface_hub, imported when ``verify=True``).

Real checkpoints land here through ``vgkit prefetch`` (huggingface_hub's ``snapshot_download``);
vgkit writes the tiny random-weight checkpoints in the same layout::

    <hub cache>/models--<org>--<name>/
        blobs/<etag>                   contents, named by their hash (sha256 for LFS files, else git sha1)
        refs/<revision>                a commit hash
        snapshots/<commit>/<path>      relative symlinks into blobs/
        vgkit-files/<commit>.json      vgkit's file record

so one loader, ``from_pretrained(snapshot_dir)``, serves both. The file record lists the path, size
and sha256 (or git sha1) of every file a snapshot must hold; vgkit writes it once a prefetch has
verified the files or a tiny build has written them. With a record, "complete" means every listed
file is present at its size (``verify=True`` also hashes contents); without one, only the
``required_file`` can be checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vgkit.settings import hub_cache_dir

__all__ = [
    "CacheStatus",
    "check_snapshot",
    "file_matches",
    "read_file_record",
    "repo_cache_dir",
    "resolve_commit",
    "snapshot_dir",
    "sweep_incomplete",
    "write_file_record",
    "write_snapshot",
]

RECORD_DIR = "vgkit-files"
RECORD_SCHEMA = 1
FileRecord = dict[str, object]  # path, size, and sha256 (LFS files) or git_sha1 (small files)


def repo_cache_dir(repo_id: str, *, cache_dir: Path | None = None) -> Path:
    """``models--org--name`` under the hub cache (huggingface_hub's ``repo_folder_name``)."""
    return (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))


def resolve_commit(repo_id: str, revision: str, *, cache_dir: Path | None = None) -> str | None:
    """The commit ``revision`` points at in the cache (itself when it is a commit hash), or None."""
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    ref = repo_cache_dir(repo_id, cache_dir=cache_dir) / "refs" / revision
    return ref.read_text().strip() if ref.is_file() else None


def snapshot_dir(
    repo_id: str, revision: str, *, cache_dir: Path | None = None, required_file: str = "model_index.json"
) -> Path | None:
    """The cached snapshot of ``repo_id`` at ``revision`` if it is complete (see ``check_snapshot``)."""
    status = check_snapshot(repo_id, revision, cache_dir=cache_dir, required_file=required_file)
    return status.snapshot if status.complete else None


def file_matches(path: Path, item: FileRecord) -> bool:
    """Whether ``path`` has the record's ``sha256`` (or ``git_sha1``), hashed as ``hf cache verify`` does."""
    from huggingface_hub.utils.sha import git_hash, sha_fileobj

    if item.get("sha256"):
        with path.open("rb") as fh:
            return sha_fileobj(fh).hex() == item["sha256"]
    return not item.get("git_sha1") or git_hash(path.read_bytes()) == item["git_sha1"]


# -- file records --------------------------------------------------------------------------------
def _record_path(repo_id: str, commit: str, cache_dir: Path | None) -> Path:
    return repo_cache_dir(repo_id, cache_dir=cache_dir) / RECORD_DIR / f"{commit}.json"


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_file_record(repo_id: str, commit: str, files: list[FileRecord], *, cache_dir: Path | None = None) -> Path:
    """Record the files snapshot ``commit`` must hold (see ``FileRecord``), atomically."""
    path = _record_path(repo_id, commit, cache_dir)
    body = {"schema": RECORD_SCHEMA, "repo_id": repo_id, "commit": commit, "files": files}
    _atomic_write_text(path, json.dumps(body, indent=1, sort_keys=True) + "\n")
    return path


def read_file_record(repo_id: str, commit: str, *, cache_dir: Path | None = None) -> list[FileRecord] | None:
    """The recorded file list of snapshot ``commit``, or None when there is no readable record."""
    try:
        data = json.loads(_record_path(repo_id, commit, cache_dir).read_text())
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) and data.get("schema") == RECORD_SCHEMA else None
    return files if isinstance(files, list) else None


# -- completeness --------------------------------------------------------------------------------
@dataclass
class CacheStatus:
    """Whether a snapshot is complete, and what is wrong with it when not."""

    repo_id: str
    revision: str
    commit: str | None
    snapshot: Path | None
    recorded: bool  # a vgkit file record exists (else only the required file was checked)
    total_bytes: int = 0
    num_files: int = 0  # files in the record (0 without one)
    missing: list[str] = field(default_factory=list)
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    required_file: str = "model_index.json"  # what marks a snapshot of this kind (see check_snapshot)

    @property
    def complete(self) -> bool:
        return self.snapshot is not None and not (self.missing or self.wrong_size or self.corrupt)

    def describe(self) -> str:
        if self.commit is None:
            return "not in cache"
        if self.snapshot is None:
            return f"snapshot {self.commit[:12]} missing or has no {self.required_file}"
        problems = [
            f"{len(names)} {label} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
            for label, names in (("missing", self.missing), ("wrong size", self.wrong_size), ("corrupt", self.corrupt))
            if names
        ]
        if problems:
            return "incomplete: " + "; ".join(problems)
        return "complete" if self.recorded else f"complete ({self.required_file} only; no vgkit file record)"


def check_snapshot(
    repo_id: str,
    revision: str,
    *,
    verify: bool = False,
    cache_dir: Path | None = None,
    required_file: str = "model_index.json",
) -> CacheStatus:
    """Check the cached snapshot of ``repo_id`` at ``revision`` with no network access at all.

    Every file in the vgkit record must be present with its size; ``verify=True`` also compares
    content hashes (reads every byte). ``required_file`` must exist in any case: a diffusers
    pipeline's ``model_index.json`` (the default) or a transformers model's ``config.json``.
    """
    commit = resolve_commit(repo_id, revision, cache_dir=cache_dir)
    status = CacheStatus(repo_id, revision, commit, None, recorded=False, required_file=required_file)
    if commit is None:
        return status
    snap = repo_cache_dir(repo_id, cache_dir=cache_dir) / "snapshots" / commit
    files = read_file_record(repo_id, commit, cache_dir=cache_dir)
    status.recorded = files is not None
    if not (snap / required_file).is_file():
        return status
    status.snapshot, status.num_files = snap, len(files or [])
    for item in files or []:
        rel, path = str(item["path"]), snap / str(item["path"])
        if not path.is_file():
            status.missing.append(rel)
            continue
        status.total_bytes += path.stat().st_size
        if path.stat().st_size != item["size"]:
            status.wrong_size.append(rel)
        elif verify and not file_matches(path, item):
            status.corrupt.append(rel)
    return status


def sweep_incomplete(repo_id: str, *, cache_dir: Path | None = None) -> list[Path]:
    """Delete the ``blobs/*.incomplete`` files that killed downloads left behind; return them.

    huggingface_hub writes ``blobs/<etag>.<random>.incomplete`` while it holds the flock
    ``.locks/<repo folder>/<etag>.lock``; a partial file whose lock is free is an orphan.
    """
    import fcntl

    cache = cache_dir or hub_cache_dir()
    repo_dir = repo_cache_dir(repo_id, cache_dir=cache)
    locks = cache / ".locks" / repo_dir.name
    removed: list[Path] = []
    for path in sorted((repo_dir / "blobs").glob("*.incomplete")):
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / (path.name.split(".")[0] + ".lock"), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live download owns it
            path.unlink(missing_ok=True)
            removed.append(path)
            fcntl.flock(lock, fcntl.LOCK_UN)
    return removed


def write_snapshot(
    repo_id: str, commit: str, source: Path, *, revision: str = "main", cache_dir: Path | None = None
) -> Path:
    """Copy the files under ``source`` into the cache as snapshot ``commit``, with its file record.

    The snapshot directory appears in one rename, so a concurrent reader sees it whole or not at
    all; blobs are content-addressed, so writing the same files twice is harmless.
    """
    repo_dir = repo_cache_dir(repo_id, cache_dir=cache_dir)
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "snapshots").mkdir(exist_ok=True)
    final = repo_dir / "snapshots" / commit
    staging = Path(tempfile.mkdtemp(prefix=f".{commit}.", dir=repo_dir / "snapshots"))
    record: list[FileRecord] = []
    try:
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            rel = file.relative_to(source)
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            record.append({"path": rel.as_posix(), "size": file.stat().st_size, "sha256": digest})
            if not (repo_dir / "blobs" / digest).exists():
                shutil.copyfile(file, repo_dir / "blobs" / f".{digest}.tmp")
                os.replace(repo_dir / "blobs" / f".{digest}.tmp", repo_dir / "blobs" / digest)
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            (staging / rel).symlink_to(Path(*([".."] * (len(rel.parts) + 1)), "blobs", digest))
        write_file_record(repo_id, commit, record, cache_dir=cache_dir)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    if revision != commit:
        _atomic_write_text(repo_dir / "refs" / revision, commit)
    return final
