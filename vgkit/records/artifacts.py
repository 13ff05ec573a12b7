"""A run directory's fixed layout, atomic writes, hashes, and the clips its plan lists.

Every artifact is written to a temp file in its own directory, fsynced, renamed into place and
the directory fsynced, so a crash or kill leaves either the old file or the new one, never a torn
one. Leftover temp files (``.<name>.<pid>.part<ext>``) are swept when a run starts: only names
that are temp names of vgkit's own artifacts, in vgkit's own subfolders (``OWN_NAMES``), written by
a process that is gone; any other file, hidden or not, is left alone.

``plan.json`` decides which clips a run has (``planned_clips``); stitch, manifest and verify read
the clips it lists and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vgkit.errors import ArtifactError

__all__ = [
    "BUNDLED_LOG_ARTIFACTS",
    "CLIP_LOG_SCHEMA",
    "FAILURE_FILE",
    "OWN_NAMES",
    "SWEEP_FILE",
    "SWEEP_RUN_FILE",
    "PlannedClip",
    "RunLayout",
    "atomic_write_bytes",
    "atomic_write_json",
    "commit_file",
    "file_record",
    "own_name",
    "planned_clips",
    "read_json_object",
    "sha256_bytes",
    "sha256_file",
    "sha256_stream",
    "temp_path_for",
]

TEMP_MARK = ".part"

# The clip-log schema (vgkit.generate.chain writes it; verify and stitch read it) and, of the artifacts a
# log lists, those the bundle carries: saved latents stay on the machine that made them.
CLIP_LOG_SCHEMA = "vgkit.clip-log/3"
BUNDLED_LOG_ARTIFACTS = ("clip", "last_frame")

# A sweep's records: sweep.json in the sweep folder; sweep_run.json and (a failed job) failure.json in each run.
SWEEP_FILE = "sweep.json"
SWEEP_RUN_FILE = "sweep_run.json"
FAILURE_FILE = "failure.json"

# The files vgkit writes, per subfolder of a run directory ("" is the run directory itself): the
# only names whose temp files the sweep may delete, and (clip folders) the only files moved aside.
OWN_NAMES: dict[str, re.Pattern[str]] = {
    "": re.compile(r"(plan|manifest|qa|failure|sweep_run|\.vgkit-run)\.json|events\.jsonl"),
    "clips": re.compile(r"clip_(?P<index>\d{3})\.mp4"),
    "frames": re.compile(r"last_frame_(?P<index>\d{3})\.png"),
    "logs": re.compile(r"log_(?P<index>\d{3})\.json"),
    "latents": re.compile(r"latents_(?P<index>\d{3})\.(pt|json)"),
    "final": re.compile(r"final_stitched\.mp4"),
}
# ``.<stem>.<pid>.part<suffix>``, as ``temp_path_for`` names them.
_TEMP_NAME = re.compile(r"\.(?P<stem>.+)\.(?P<pid>\d+)" + re.escape(TEMP_MARK) + r"(?P<suffix>\.[A-Za-z0-9]+)?")


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

    @property
    def latents(self) -> Path:
        return self.root / "latents"

    def make_dirs(self) -> None:
        for d in (self.clips, self.frames, self.logs, self.final.parent):
            d.mkdir(parents=True, exist_ok=True)

    def sweep_temp_files(self) -> list[Path]:
        """Delete the temp files of vgkit's own artifacts whose writer is gone; return what was removed.

        Looks only at the run directory itself and its ``OWN_NAMES`` subfolders (never deeper), and
        only at ``temp_path_for`` names of a file vgkit writes there, e.g. ``clips/.clip_000.4242.part.mp4``.
        """
        removed = []
        for folder in OWN_NAMES:
            directory = self.root / folder
            if directory.is_symlink() or not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                temp = _TEMP_NAME.fullmatch(path.name)
                if temp is None or not own_name(folder, path.name) or path.is_symlink() or not path.is_file():
                    continue
                if not _alive(int(temp["pid"])):
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed


def own_name(folder: str, name: str) -> bool:
    """Whether ``name`` in subfolder ``folder`` ("" for the run directory) is a file vgkit writes
    there, or the temp file of one."""
    pattern = OWN_NAMES.get(folder)
    if pattern is None:
        return False
    temp = _TEMP_NAME.fullmatch(name)
    return pattern.fullmatch(name if temp is None else temp["stem"] + (temp["suffix"] or "")) is not None


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process other than this one (its temp file may be in use)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class PlannedClip:
    """One clip as ``plan.json`` lists it: what stitch and verify expect to find."""

    index: int
    num_frames: int
    chained: bool


def planned_clips(layout: RunLayout) -> list[PlannedClip]:
    """The clips ``plan.json`` lists, in order; ``ArtifactError`` (one line) when it is missing or malformed."""
    name = "plan.json"
    try:
        plan = json.loads(layout.plan.read_text())
        clips = plan["clips"]
        planned = [
            PlannedClip(
                index=int(c["index"]),
                num_frames=int(c["num_frames"]),
                chained=int(c["index"]) > 0 and c.get("source_image") is None,
            )
            for c in clips
        ]
    except FileNotFoundError:
        raise ArtifactError(
            f"{layout.root}: {name} is missing, and it says which clips there are: no clip logs can be read; "
            "fix: run `vgkit run` on this folder"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{layout.root / name}: unreadable ({type(exc).__name__}: {exc}); fix: re-run `vgkit run`"
        ) from None
    if not planned or [c.index for c in planned] != list(range(len(planned))):
        raise ArtifactError(f"{layout.root / name}: clip indices are not 0..N-1; fix: re-run `vgkit run`")
    return planned


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_stream(fh: IO[bytes]) -> tuple[str, int]:
    """The sha256 (hex) and size of what ``fh`` reads to its end: vgkit's one file hash."""
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return sha256_stream(fh)[0]


def file_record(path: Path, *, root: Path) -> dict[str, Any]:
    """``{"path", "sha256", "bytes"}`` for an artifact, its path relative to ``root``."""
    with path.open("rb") as fh:
        sha256, size = sha256_stream(fh)
    return {"path": path.relative_to(root).as_posix(), "sha256": sha256, "bytes": size}


def temp_path_for(dest: Path) -> Path:
    """A hidden temp path beside ``dest`` that keeps its extension (ffmpeg picks the muxer by it)."""
    return dest.with_name(f".{dest.stem}.{os.getpid()}{TEMP_MARK}{dest.suffix}")


def commit_file(tmp: Path, dest: Path) -> None:
    """fsync ``tmp``, rename it onto ``dest`` and fsync the directory."""
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dest)
    fd = os.open(dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest)
    try:
        tmp.write_bytes(data)
        commit_file(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing, unreadable, torn or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def atomic_write_json(dest: Path, record: dict[str, Any]) -> None:
    atomic_write_bytes(dest, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
