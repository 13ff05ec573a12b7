"""Checkpoints in the Hugging Face hub cache layout, checked with no network.

``vgkit prefetch`` fills ``<hub cache>/models--<org>--<name>/`` with huggingface_hub's
``snapshot_download``: ``blobs/<etag>`` (sha256 for LFS files, else git sha1), ``refs/<revision>``
and ``snapshots/<commit>/<path>`` (links into blobs); vgkit's tiny checkpoints use the same layout.
``vgkit-files/<commit>.json`` is vgkit's file record (path, size, hash of every file the snapshot
must hold), written once a prefetch verified them or a tiny build wrote them
(``vgkit.hub.checkpoints.write_snapshot``). With a record,
"complete" means every listed file is there at its size (``verify=True``: and hash); without one,
only the ``required_file`` is checked. The Hub client (it reads its environment when imported) is
imported only to hash.
"""

from __future__ import annotations

import fcntl
import re
from dataclasses import dataclass, field
from pathlib import Path

from vgkit.records.artifacts import atomic_write_json, read_json_object
from vgkit.settings import hub_cache_dir

__all__ = [
    "CacheStatus",
    "check_snapshot",
    "find_problems",
    "read_file_record",
    "repo_cache_dir",
    "snapshot_dir",
    "sweep_incomplete",
    "write_file_record",
]

RECORD_SCHEMA = 1
FileRecord = dict[str, object]  # path, size, and sha256 (LFS files) or git_sha1 (small files)


def repo_cache_dir(repo_id: str, *, cache_dir: Path | None = None) -> Path:
    """``models--org--name`` under the hub cache (huggingface_hub's ``repo_folder_name``)."""
    return (cache_dir or hub_cache_dir()) / ("models--" + repo_id.replace("/", "--"))


def snapshot_dir(
    repo_id: str, revision: str, *, cache_dir: Path | None = None, required_file: str = "model_index.json"
) -> Path | None:
    """The cached snapshot of ``repo_id`` at ``revision`` if it is complete (see ``check_snapshot``)."""
    status = check_snapshot(repo_id, revision, cache_dir=cache_dir, required_file=required_file)
    return status.snapshot if status.complete else None


def _record_path(repo_id: str, commit: str, cache_dir: Path | None) -> Path:
    return repo_cache_dir(repo_id, cache_dir=cache_dir) / "vgkit-files" / f"{commit}.json"


def write_file_record(repo_id: str, commit: str, files: list[FileRecord], *, cache_dir: Path | None = None) -> Path:
    """Record the files snapshot ``commit`` must hold (see ``FileRecord``), atomically."""
    path = _record_path(repo_id, commit, cache_dir)
    atomic_write_json(path, {"schema": RECORD_SCHEMA, "repo_id": repo_id, "commit": commit, "files": files})
    return path


def read_file_record(repo_id: str, commit: str, *, cache_dir: Path | None = None) -> list[FileRecord] | None:
    """The recorded file list of snapshot ``commit``, or None when there is no readable record."""
    data = read_json_object(_record_path(repo_id, commit, cache_dir)) or {}
    files = data.get("files") if data.get("schema") == RECORD_SCHEMA else None
    return files if isinstance(files, list) else None


def _content_ok(path: Path, item: FileRecord) -> bool:
    """Whether ``path`` has the record's ``sha256`` (or ``git_sha1``), hashed as ``hf cache verify`` does."""
    from huggingface_hub.utils._verification import compute_file_hash

    key = "sha256" if "sha256" in item else "git_sha1"
    return key not in item or compute_file_hash(path, "sha256" if key == "sha256" else "git-sha1") == item[key]


def find_problems(snap: Path, files: list[FileRecord], *, verify: bool | set[str] = False) -> dict[str, list[str]]:
    """Which of ``files`` are missing from ``snap``, of the wrong size, or (hashed when ``verify`` is
    True or names them) corrupt."""
    problems: dict[str, list[str]] = {"missing": [], "wrong size": [], "corrupt": []}
    for item in files:
        rel, path = str(item["path"]), snap / str(item["path"])
        if not path.is_file():
            problems["missing"].append(rel)
        elif path.stat().st_size != item["size"]:
            problems["wrong size"].append(rel)
        elif (verify is True or (verify and rel in verify)) and not _content_ok(path, item):
            problems["corrupt"].append(rel)
    return problems


@dataclass
class CacheStatus:
    """Whether a snapshot is complete, and what is wrong with it when not."""

    repo_id: str
    revision: str
    commit: str | None
    snapshot: Path | None = None
    files: list[FileRecord] | None = None  # the vgkit record (None: only required_file was checked)
    problems: dict[str, list[str]] = field(default_factory=dict)  # see find_problems
    required_file: str = "model_index.json"  # what marks a snapshot of this kind (see check_snapshot)

    @property
    def complete(self) -> bool:
        return self.snapshot is not None and not any(self.problems.values())

    def describe(self) -> str:
        if self.commit is None:
            return "not in cache"
        if self.snapshot is None:
            return f"snapshot {self.commit[:12]} missing or has no {self.required_file}"
        found = [
            f"{len(n)} {kind} ({', '.join(n[:3])}{', ...' * (len(n) > 3)})" for kind, n in self.problems.items() if n
        ]
        if found:
            return "incomplete: " + "; ".join(found)
        return "complete" if self.files is not None else f"complete ({self.required_file} only; no vgkit file record)"


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
    repo_dir = repo_cache_dir(repo_id, cache_dir=cache_dir)
    ref = repo_dir / "refs" / revision
    commit = revision if re.fullmatch(r"[0-9a-f]{40}", revision) else ref.read_text().strip() if ref.is_file() else None
    status = CacheStatus(repo_id, revision, commit, required_file=required_file)
    if commit is not None:
        snap, status.files = repo_dir / "snapshots" / commit, read_file_record(repo_id, commit, cache_dir=cache_dir)
        if (snap / required_file).is_file():
            status.snapshot, status.problems = snap, find_problems(snap, status.files or [], verify=verify)
    return status


def sweep_incomplete(repo_id: str, *, cache_dir: Path | None = None) -> list[Path]:
    """Delete the ``blobs/*.incomplete`` files that killed downloads left behind; return them.

    huggingface_hub writes ``blobs/<etag>.<random>.incomplete`` while it holds the flock
    ``.locks/<repo folder>/<etag>.lock``; a partial file whose lock is free is an orphan.
    """
    cache = cache_dir or hub_cache_dir()
    repo_dir = repo_cache_dir(repo_id, cache_dir=cache)
    removed: list[Path] = []
    for path in sorted((repo_dir / "blobs").glob("*.incomplete")):
        lock_path = cache / ".locks" / repo_dir.name / (path.name.split(".")[0] + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released when the file closes
            except BlockingIOError:
                continue  # a live download owns it
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
