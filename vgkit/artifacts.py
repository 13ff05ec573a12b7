"""A run directory's fixed layout, atomic writes and hashes.

Every artifact is written to a temp file in its own directory, fsynced, renamed into place and
the directory fsynced, so a crash or kill leaves either the old file or the new one, never a torn
one. Leftover temp files (``.<name>.<pid>.part<ext>``) are swept when a run starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLED_LOG_ARTIFACTS",
    "CLIP_LOG_SCHEMA",
    "RunLayout",
    "atomic_write_bytes",
    "atomic_write_json",
    "commit_file",
    "file_record",
    "sha256_bytes",
    "sha256_file",
    "temp_path_for",
]

TEMP_MARK = ".part"

# The clip-log schema (vgkit.chain writes it; verify and stitch read it) and, of the artifacts a
# log lists, those the bundle carries: saved latents stay on the machine that made them.
CLIP_LOG_SCHEMA = "vgkit.clip-log/2"
BUNDLED_LOG_ARTIFACTS = ("clip", "last_frame")


@dataclass(frozen=True)
class RunLayout:
    """Where each artifact of a run lives (names fixed by the brief)."""

    root: Path

    @property
    def clips(self) -> Path:
        return self.root / "clips"

    @property
    def frames(self) -> Path:
        return self.root / "frames"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def final(self) -> Path:
        return self.root / "final" / "final_stitched.mp4"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    def clip(self, index: int) -> Path:
        return self.clips / f"clip_{index:03d}.mp4"

    def last_frame(self, index: int) -> Path:
        return self.frames / f"last_frame_{index:03d}.png"

    def log(self, index: int) -> Path:
        return self.logs / f"log_{index:03d}.json"

    def make_dirs(self) -> None:
        for d in (self.clips, self.frames, self.logs, self.final.parent):
            d.mkdir(parents=True, exist_ok=True)

    def sweep_temp_files(self) -> list[Path]:
        """Delete temp files a killed writer left behind; return what was removed."""
        removed = sorted(self.root.rglob(f".*{TEMP_MARK}*")) if self.root.exists() else []
        for path in removed:
            path.unlink(missing_ok=True)
        return removed


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path, *, root: Path) -> dict[str, Any]:
    """``{"path", "sha256", "bytes"}`` for an artifact, its path relative to ``root``."""
    return {
        "path": path.relative_to(root).as_posix(),
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
    }


def temp_path_for(dest: Path) -> Path:
    """A hidden temp path beside ``dest`` that keeps its extension (ffmpeg picks the muxer by it)."""
    return dest.with_name(f".{dest.stem}.{os.getpid()}{TEMP_MARK}{dest.suffix}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_file(tmp: Path, dest: Path) -> None:
    """fsync ``tmp``, rename it onto ``dest`` and fsync the directory."""
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest)
    try:
        tmp.write_bytes(data)
        commit_file(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(dest: Path, record: dict[str, Any]) -> None:
    atomic_write_bytes(dest, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
