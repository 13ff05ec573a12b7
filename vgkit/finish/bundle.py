"""A run's bundle format (``<run>.tar.gz``), vgkit's artifact names in it, and its guarded extraction.

A bundle's members sit under ``<run name>/``; the first is ``bundle_index.json`` (schema
``vgkit.bundle-index/1``) listing the path, sha256 and size of every other member in order
(vgkit.finish.pack writes it).

A bundle is untrusted input: ``extract_bundle`` reads the gzip stream once, in order, and never
decompresses more than the index declares plus tar headers. The index must come first (at most
``MAX_INDEX_BYTES``); its member count, total size and expansion over the compressed file are
checked against ``MAX_BUNDLE_MEMBERS``, ``MAX_BUNDLE_BYTES``, ``MAX_EXPANSION`` (plus
``EXPANSION_SLACK_BYTES``) and the free disk space before anything is written. Each member must then
be the next listed regular file with its listed size before it is extracted (``filter="data"``),
and its sha256 must match after. Unknown, duplicate, missing, linked or special members are
refused, and a refused extraction leaves nothing behind.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vgkit.errors import ArtifactError
from vgkit.records.artifacts import sha256_stream

__all__ = [
    "BUNDLE_INDEX",
    "EXPANSION_SLACK_BYTES",
    "INDEX_SCHEMA",
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_MEMBERS",
    "MAX_EXPANSION",
    "MAX_INDEX_BYTES",
    "artifact_clip_index",
    "bundle_path",
    "digest_artifact",
    "extract_bundle",
    "open_artifact",
]

BUNDLE_INDEX = "bundle_index.json"
INDEX_SCHEMA = "vgkit.bundle-index/1"
MAX_INDEX_BYTES = 1 << 20  # a 64-shot index is ~30 KB
MAX_BUNDLE_MEMBERS = 1024  # a 64-shot run (the spec's maximum) has 3 + 3 x 64 = 195 artifacts
MAX_BUNDLE_BYTES = 32 << 30  # extracted total; a 64-shot 720p run is a few GB
MAX_EXPANSION = 4  # mp4 and png are compressed already: real bundles expand ~1.0x, a zip bomb ~1000x
EXPANSION_SLACK_BYTES = 64 << 20  # small bundles (tiny clips, JSON logs) may compress better than that
_HEADER_BYTES = 8 << 10  # tar header + pax/longname blocks + padding allowed per member

# vgkit's artifact names inside a run folder; the only paths a bundle, manifest or log may name.
_ARTIFACT = re.compile(
    r"manifest\.json|plan\.json|events\.jsonl|final/final_stitched\.mp4"
    r"|clips/clip_(?P<clip>\d{3})\.mp4|frames/last_frame_(?P<frame>\d{3})\.png|logs/log_(?P<log>\d{3})\.json"
)
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def artifact_clip_index(name: object) -> int | None:
    """The clip index of an artifact name (``clips/clip_002.mp4`` -> 2), None for run-level ones.

    Raises ``ArtifactError`` for anything that is not one of vgkit's artifact names (absolute,
    ``..``, other folders or files).
    """
    match = _ARTIFACT.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ArtifactError(f"path {_shown(name)} is not a vgkit artifact inside the run; refused (not opened)")
    digits = match.group("clip") or match.group("frame") or match.group("log")
    return int(digits) if digits else None


def open_artifact(root: Path, name: str) -> IO[bytes]:
    """Open artifact ``name`` of the run at ``root`` for reading, confined to that folder.

    ``name`` must be a vgkit artifact name, no folder on the way may be a symbolic link, and the
    file must be a regular file, not a link, FIFO or device: checked before it is opened or read.
    Raises ``FileNotFoundError`` when it is missing, ``ArtifactError`` when it is refused.
    """
    artifact_clip_index(name)
    folder = root
    for part in name.split("/")[:-1]:
        folder = folder / part
        mode = os.lstat(folder).st_mode
        if not stat.S_ISDIR(mode):
            raise ArtifactError(f"{part}/: a symbolic link or not a folder; refused (not opened)")
    try:
        fd = os.open(root / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ArtifactError(f"{name}: a symbolic link; refused (not opened)") from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArtifactError(f"{name}: not a regular file; refused (not read)")
    return os.fdopen(fd, "rb")


def digest_artifact(root: Path, name: str) -> dict[str, Any]:
    """``{"path", "sha256", "bytes"}`` of artifact ``name`` of the run at ``root``, read through ``open_artifact``."""
    with open_artifact(root, name) as fh:
        sha256, size = sha256_stream(fh)
    return {"path": name, "sha256": sha256, "bytes": size}


def bundle_path(run_dir: Path) -> Path:
    """The bundle sits beside the run directory: ``runs/<name>.tar.gz``."""
    return run_dir.parent / f"{run_dir.name}.tar.gz"


class _Capped:
    """The decompressed stream, cut off once more than ``limit`` bytes have been read."""

    def __init__(self, raw: gzip.GzipFile, limit: int, bundle: Path) -> None:
        self.raw, self.limit, self.bundle, self.done = raw, limit, bundle, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.done += len(data)
        if self.done > self.limit:
            raise ArtifactError(
                f"{self.bundle}: decompresses past the {self.limit} bytes its index accounts for; refused"
            )
        return data


@dataclass(frozen=True)
class _Index:
    run: str
    members: list[dict[str, Any]]

    @property
    def total_bytes(self) -> int:
        return sum(int(m["bytes"]) for m in self.members)


def _parse_index(bundle: Path, body: bytes) -> _Index:
    def bad(why: str) -> ArtifactError:
        return ArtifactError(f"{bundle}: {BUNDLE_INDEX} {why}; refused")

    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise bad(f"is not valid JSON ({type(exc).__name__})") from exc
    if not isinstance(data, dict) or data.get("schema") != INDEX_SCHEMA:
        raise bad(f"has schema {_shown(data.get('schema') if isinstance(data, dict) else data)}, not {INDEX_SCHEMA!r}")
    run, members = data.get("run"), data.get("members")
    if not isinstance(run, str) or not 0 < len(run) <= 255 or run in (".", "..") or re.search(r"[/\\\x00]", run):
        raise bad(f"names the run {_shown(run)}, not a single folder name")
    if not isinstance(members, list) or not members:
        raise bad("lists no members")
    if len(members) > MAX_BUNDLE_MEMBERS:
        raise bad(f"lists {len(members)} members, more than the limit of {MAX_BUNDLE_MEMBERS}")
    seen: set[str] = set()
    for m in members:
        if not isinstance(m, dict):
            raise bad(f"has a member entry {_shown(m)} that is not an object")
        path, digest, size = m.get("path"), m.get("sha256"), m.get("bytes")
        try:
            artifact_clip_index(path)
        except ArtifactError as exc:
            raise bad(f"lists an unknown member: {exc}") from None
        if path in seen:
            raise bad(f"lists {path} twice")
        seen.add(str(path))
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise bad(f"gives {path} the sha256 {_shown(digest)}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise bad(f"gives {path} the size {_shown(size)}")
    if "manifest.json" not in seen:
        raise bad("does not cover manifest.json")
    return _Index(run=run, members=members)


def _check_limits(bundle: Path, index: _Index, dest_dir: Path) -> None:
    total = index.total_bytes
    allowed = MAX_EXPANSION * bundle.stat().st_size + EXPANSION_SLACK_BYTES
    if total > MAX_BUNDLE_BYTES:
        raise ArtifactError(
            f"{bundle}: would extract {total} bytes, more than the limit of {MAX_BUNDLE_BYTES}; refused"
        )
    if total > allowed:
        raise ArtifactError(
            f"{bundle}: would expand {bundle.stat().st_size} compressed bytes into {total} (more than "
            f"{MAX_EXPANSION}x + {EXPANSION_SLACK_BYTES}); a decompression bomb, not a vgkit bundle; refused"
        )
    free = shutil.disk_usage(dest_dir).free
    if total > free:
        raise ArtifactError(
            f"{bundle}: needs {total} bytes to extract, {free} free in {dest_dir}; nothing was written; "
            "fix: free space there or extract elsewhere"
        )


def extract_bundle(bundle: Path, dest_dir: Path) -> Path:
    """Extract ``bundle`` into ``dest_dir`` after checking it against its index; return the run directory.

    Refusals raise ``ArtifactError`` naming the member and reason; nothing is left in ``dest_dir``.
    """
    if not bundle.is_file():
        raise ArtifactError(f"{bundle}: no such bundle; fix: pass the .tar.gz that `vgkit bundle` wrote")
    created: Path | None = None
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        with bundle.open("rb") as raw:
            if raw.read(2) != b"\x1f\x8b":
                raise ArtifactError(f"{bundle}: not a gzip file, so not a vgkit bundle; refused")
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                capped = _Capped(gz, MAX_INDEX_BYTES + 4 * _HEADER_BYTES, bundle)
                with tarfile.open(fileobj=capped, mode="r|") as tar:  # type: ignore[call-overload]
                    members = iter(tar.next, None)
                    first = next(members, None)
                    index = _read_index(bundle, tar, first)
                    _check_limits(bundle, index, dest_dir)
                    capped.limit = capped.done + index.total_bytes + (len(index.members) + 4) * _HEADER_BYTES
                    (dest_dir / index.run).mkdir()  # a folder already there is refused, never replaced
                    created = dest_dir / index.run
                    for entry in index.members:
                        _extract_member(bundle, tar, next(members, None), index.run, entry, dest_dir)
                    extra = next(members, None)
                    if extra is not None:
                        raise ArtifactError(f"{bundle}: member {_shown(extra.name)} is not in its index; refused")
    except (ArtifactError, tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{bundle}: cannot be extracted: {exc}; refused") from exc
    assert created is not None
    return created


def _read_index(bundle: Path, tar: tarfile.TarFile, first: tarfile.TarInfo | None) -> _Index:
    if first is None or not first.name.endswith(f"/{BUNDLE_INDEX}") or first.name.count("/") != 1:
        name = "nothing" if first is None else _shown(first.name)
        raise ArtifactError(
            f"{bundle}: starts with {name}, not <run>/{BUNDLE_INDEX} (an unindexed or foreign bundle); refused; "
            "fix: ask for a bundle written by `vgkit bundle` of this version"
        )
    if not first.isreg() or first.size > MAX_INDEX_BYTES:
        raise ArtifactError(
            f"{bundle}: {BUNDLE_INDEX} is not a regular file of at most {MAX_INDEX_BYTES} bytes; refused"
        )
    body = tar.extractfile(first)
    assert body is not None
    index = _parse_index(bundle, body.read())
    if first.name != f"{index.run}/{BUNDLE_INDEX}":
        raise ArtifactError(f"{bundle}: {BUNDLE_INDEX} sits under {_shown(first.name)}, not its run {index.run!r}")
    return index


def _extract_member(
    bundle: Path,
    tar: tarfile.TarFile,
    member: tarfile.TarInfo | None,
    run: str,
    entry: dict[str, Any],
    dest_dir: Path,
) -> None:
    """Check ``member`` against its index ``entry`` (name, type, size), extract it, check its sha256."""
    path = entry["path"]
    if member is None:
        raise ArtifactError(f"{bundle}: ends before {path}, which its index lists; refused")
    if member.name != f"{run}/{path}":
        raise ArtifactError(f"{bundle}: member {_shown(member.name)} is not {run}/{path}, next in its index; refused")
    if not member.isreg():
        raise ArtifactError(f"{bundle}: member {path} is a link, folder or special file; refused")
    if member.size != entry["bytes"]:
        raise ArtifactError(f"{bundle}: {path}: {member.size} bytes, {BUNDLE_INDEX} says {entry['bytes']}; refused")
    tar.extract(member, dest_dir, filter="data")
    if digest_artifact(dest_dir / run, path)["sha256"] != entry["sha256"]:
        raise ArtifactError(f"{bundle}: {path}: sha256 differs from {BUNDLE_INDEX}; refused")
