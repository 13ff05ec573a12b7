"""Which folders are vgkit's run folders, one run at a time in each, and clips a new plan drops.

A run folder is vgkit's only where vgkit made it: ``.vgkit-run.json`` (the marker) says so. A
``--out`` that exists, is not empty and has no marker is refused, unless everything in it is a
name vgkit writes (a run made before the marker existed, or a fetched bundle); then it is adopted.
While a run works in a folder it holds ``fcntl.flock`` on ``.vgkit-run.lock`` there, so a second
``vgkit run`` on the same folder is refused at once, naming the first; the kernel frees the lock
the moment the holder dies.

``open_run_dir`` writes nothing but the marker and the lock (and, for a new folder, the folder
itself), and takes all three back if the run fails before ``RunDir.accept``: the run's plan-time
checks come first, and ``accept`` is the first step that changes anything of a previous run. It
moves every clip, last frame, log and saved latents beyond the new plan (and, when the plan
changed, the previous ``plan.json``, ``manifest.json`` and final video) into
``superseded/<UTC time>/``, which is neither stitched nor bundled, and says so.

Takes (vgkit.generate.takes): another take of shot ``i`` lives in ``takes/shot_NNN/seed_S/``
(``take_root``), laid out as a run folder of that one clip; neither stitched nor bundled. Picking
one first moves clip ``i``, every later clip and what was made from them (final video, manifest,
``qa.json``) aside the same way (``supersede_from``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vgkit import __version__
from vgkit.errors import GuardrailError, SpecError
from vgkit.records.artifacts import OWN_NAMES, RunLayout, atomic_write_json, own_name, read_json_object

__all__ = [
    "LOCK_NAME",
    "MARKER_NAME",
    "TAKES",
    "RunDir",
    "RunDirBusyError",
    "foreign_entries",
    "open_run_dir",
    "supersede_from",
    "take_root",
    "take_seeds",
]

MARKER_NAME = ".vgkit-run.json"
MARKER_SCHEMA = "vgkit.run-dir/1"
LOCK_NAME = ".vgkit-run.lock"
SUPERSEDED = "superseded"
TAKES = "takes"
# Everything vgkit (or a tool driving it) puts at the top of a run folder.
TOP_LEVEL_NAMES = frozenset({MARKER_NAME, LOCK_NAME, SUPERSEDED, TAKES, "notebook", ".remote"})
# Clip artifacts that belong to one clip index, by subfolder (moved aside when beyond the plan).
CLIP_FOLDERS = ("clips", "frames", "logs", "latents")

Progress = Callable[[str], None]


class RunDirBusyError(GuardrailError):
    """Another ``vgkit run`` is working in this run folder (exit 6, like a busy device)."""


def foreign_entries(root: Path) -> list[str]:
    """Paths under ``root`` (relative) that are not names vgkit writes there; empty for a vgkit run."""
    foreign = []
    for entry in sorted(root.iterdir()):
        name = entry.name
        if name in OWN_NAMES:  # a vgkit subfolder: every file in it must be a vgkit name too
            if entry.is_symlink() or not entry.is_dir():
                foreign.append(name)
            else:
                foreign += [f"{name}/{p.name}" for p in sorted(entry.iterdir()) if not own_name(name, p.name)]
        elif name not in TOP_LEVEL_NAMES and not own_name("", name):
            foreign.append(name)
    return foreign


def _check_ownership(root: Path) -> None:
    """``SpecError`` unless ``root`` is new, empty, marked as vgkit's, or holds only vgkit names."""
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise SpecError(f"out = '{root}': exists and is not a directory; fix: choose another --out")
    marker = root / MARKER_NAME
    if not root.exists() or not any(root.iterdir()) or (marker.is_file() and not marker.is_symlink()):
        return
    foreign = foreign_entries(root)
    if foreign:
        shown = ", ".join(repr(name) for name in foreign[:3]) + (f" and {len(foreign) - 3} more" if foreign[3:] else "")
        raise SpecError(
            f"out = '{root}': a folder vgkit did not make (no {MARKER_NAME}; it holds {shown}), and vgkit "
            "never writes into or cleans up such a folder; fix: choose a new or empty --out"
        )


def _lock(root: Path) -> int:
    """Take the run folder's lock; return the open descriptor.

    Never follows a link, refuses anything but a regular file, and rewrites the holder record only
    once it holds the lock.
    """
    path = root / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        raise SpecError(
            f"out = '{root}': cannot open its run lock {LOCK_NAME} ({exc}); fix: choose another --out"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SpecError(f"out = '{root}': {LOCK_NAME} is not a regular file; fix: choose another --out")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 65536, 0) or b"{}")
        except (OSError, ValueError):
            holder = {}
        holder = holder if isinstance(holder, dict) else {}
        os.close(fd)
        who = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}" if holder else "a process"
        raise RunDirBusyError(
            f"out = '{root}': another vgkit run ({who}) is working in this run folder; "
            "fix: wait for it to end, or choose another --out"
        ) from None
    since = datetime.now(UTC).isoformat(timespec="seconds")
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
    os.ftruncate(fd, 0)  # ours: O_NOFOLLOW opened the lock file itself, and we hold its lock
    os.pwrite(fd, json.dumps(record).encode(), 0)
    return fd


@dataclass
class RunDir:
    """A run folder this process holds (``open_run_dir``)."""

    layout: RunLayout
    progress: Progress
    accepted: bool = False
    moved: list[str] = field(default_factory=list)

    def accept(self, plan: dict[str, Any]) -> list[str]:
        """The plan passed every check: move aside what it no longer covers, write ``plan.json``.

        Returns the run-relative paths moved (under ``superseded/<time>/``).
        """
        layout = self.layout
        plan = json.loads(json.dumps(plan))  # as plan.json will hold it
        clip_files = _clip_files(layout, len(plan["clips"]))
        beyond, stale = sorted(set(clip_files.values())), list(clip_files)
        previous = read_json_object(layout.plan)
        replaced = previous is not None and previous != plan  # the old final and manifest describe another plan
        if replaced:
            stale += [p for p in (layout.plan, layout.manifest, layout.final) if p.is_file()]
        if stale:
            folder, self.moved = _move_aside(layout.root, stale)
            what = [f"clip(s) {', '.join(f'{i:03d}' for i in beyond)} beyond the new plan"] if beyond else []
            what += ["the previous plan, manifest and final video"] if replaced else []
            self.progress(f"moved {' and '.join(what)} to {folder}/ (kept there; not stitched or bundled)")
        layout.make_dirs()
        atomic_write_json(layout.plan, plan)
        self.accepted = True
        return self.moved


def _clip_files(layout: RunLayout, first: int) -> dict[Path, int]:
    """vgkit's files of clip ``first`` and every later clip, and the clip index of each."""
    found: dict[Path, int] = {}
    for folder in CLIP_FOLDERS:
        directory = layout.root / folder
        for path in sorted(directory.iterdir()) if directory.is_dir() else ():
            match = OWN_NAMES[folder].fullmatch(path.name)
            if match is not None and int(match["index"]) >= first:
                found[path] = int(match["index"])
    return found


def _move_aside(root: Path, paths: list[Path]) -> tuple[str, list[str]]:
    """Move ``paths`` (under ``root``) into a new ``superseded/<UTC time>/``, keeping their subfolders;
    return that folder and the paths' new names, run-relative."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest_root, n = root / SUPERSEDED / stamp, 1
    while dest_root.exists():
        n += 1
        dest_root = root / SUPERSEDED / f"{stamp}-{n}"
    moved = []
    for path in paths:
        dest = dest_root / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        moved.append(dest.relative_to(root).as_posix())
    return dest_root.relative_to(root).as_posix(), moved


def take_root(root: Path, index: int, seed: int) -> Path:
    """The folder of shot ``index``'s take with ``seed``: ``takes/shot_NNN/seed_S/``."""
    return root / TAKES / f"shot_{index:03d}" / f"seed_{seed}"


def take_seeds(root: Path, index: int) -> list[int]:
    """The seeds of shot ``index``'s take folders, in ascending order (finished or not)."""
    folder = root / TAKES / f"shot_{index:03d}"
    names = [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    return sorted(int(name[5:]) for name in names if name.startswith("seed_") and name[5:].isdigit())


def supersede_from(layout: RunLayout, index: int, *, progress: Progress) -> list[str]:
    """Move clip ``index``'s and every later clip's artifacts, and the final video, manifest and
    ``qa.json`` made from them, into a new ``superseded/<UTC time>/``; return the run-relative
    paths they now have. The caller holds the run folder (``open_run_dir``)."""
    stale = list(_clip_files(layout, index))
    stale += [p for p in (layout.manifest, layout.final, layout.root / "qa.json") if p.is_file()]
    if not stale:
        return []
    folder, moved = _move_aside(layout.root, stale)
    progress(
        f"moved clip {index:03d}, every later clip and the final video, manifest and QA made from them to "
        f"{folder}/ (kept there; not stitched or bundled)"
    )
    return moved


@contextlib.contextmanager
def open_run_dir(root: Path, *, progress: Progress = print) -> Iterator[RunDir]:
    """Claim ``root`` as a vgkit run folder and hold its run lock for the ``with`` block.

    Refuses (``SpecError``) a non-empty folder vgkit did not make, and (``RunDirBusyError``) a
    folder another run holds. If the block fails before ``RunDir.accept``, whatever this call
    created (the folder and its missing parents, the marker, the lock file) is removed again.
    """
    _check_ownership(root)
    new_dirs = [d for d in (root, *root.parents) if not d.exists()]
    adopted = root.exists() and any(root.iterdir())
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER_NAME
    created_marker = not marker.is_file()
    fd = _lock(root)
    run = RunDir(RunLayout(root), progress)
    try:
        if created_marker:
            if adopted:
                progress(
                    f"out = '{root}': holds only files vgkit writes; adopted as a vgkit run folder ({MARKER_NAME})"
                )
            atomic_write_json(marker, {"schema": MARKER_SCHEMA, "created_by": f"vgkit {__version__}"})
        yield run
    except BaseException:
        if not run.accepted and created_marker:
            marker.unlink(missing_ok=True)
            (root / LOCK_NAME).unlink(missing_ok=True)
            for directory in new_dirs:  # innermost first; stops at one that is not empty
                try:
                    directory.rmdir()
                except OSError:
                    break
        raise
    finally:
        os.close(fd)
