"""One reproducible ``.tar.gz`` with everything needed to rebuild the final video.

Members sit under ``<run name>/`` in sorted order with zeroed mtimes, owners and a fixed mode, and
the gzip header carries no timestamp, so the same run directory always gives the same bytes.
"""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

from vgkit.artifacts import RunLayout, commit_file, temp_path_for
from vgkit.errors import ArtifactError

__all__ = ["BUNDLE_PARTS", "bundle_path", "extract_bundle", "write_bundle"]

BUNDLE_PARTS = ("manifest.json", "plan.json", "final", "clips", "frames", "logs")


def bundle_path(run_dir: Path) -> Path:
    """The bundle sits beside the run directory: ``runs/<name>.tar.gz``."""
    return run_dir.parent / f"{run_dir.name}.tar.gz"


def _members(run_dir: Path) -> list[Path]:
    files: list[Path] = []
    for part in BUNDLE_PARTS:
        path = run_dir / part
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: p.relative_to(run_dir).as_posix())


def write_bundle(run_dir: Path) -> Path:
    """Write the run's bundle and return its path; needs the manifest and final video."""
    layout = RunLayout(run_dir)
    for needed in (layout.manifest, layout.final):
        if not needed.is_file():
            raise ArtifactError(
                f"{run_dir}: {needed.relative_to(run_dir)} is missing; fix: run `vgkit stitch {run_dir}` first"
            )
    dest = bundle_path(run_dir)
    tmp = temp_path_for(dest)
    try:
        with tmp.open("wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
            _write_tar(run_dir, gz)
        commit_file(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _write_tar(run_dir: Path, sink: gzip.GzipFile) -> None:
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in _members(run_dir):
            info = tarfile.TarInfo(f"{run_dir.name}/{path.relative_to(run_dir).as_posix()}")
            info.size = path.stat().st_size
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with path.open("rb") as fh:
                tar.addfile(info, fh)


def extract_bundle(bundle: Path, dest_dir: Path) -> Path:
    """Extract ``bundle`` safely into ``dest_dir`` and return the run directory inside it.

    Only regular files and directories under one top-level ``<run name>/`` are accepted; links,
    devices, absolute names and ``..`` are refused (and ``filter="data"`` guards the extraction).
    """
    if not bundle.is_file():
        raise ArtifactError(f"{bundle}: no such bundle; fix: pass the .tar.gz that `vgkit bundle` wrote")
    try:
        with tarfile.open(bundle, mode="r:*") as tar:
            members = tar.getmembers()
            tops = set()
            for m in members:
                parts = Path(m.name).parts
                if m.name.startswith("/") or ".." in parts or not parts:
                    raise ArtifactError(f"{bundle}: member {m.name!r} points outside the bundle; refused")
                if not (m.isfile() or m.isdir()):
                    raise ArtifactError(f"{bundle}: member {m.name!r} is a link or special file; refused")
                tops.add(parts[0])
            if len(tops) != 1:
                raise ArtifactError(f"{bundle}: expected one top-level run directory, found {sorted(tops)}")
            tar.extractall(dest_dir, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ArtifactError(f"{bundle}: cannot be extracted safely: {exc}") from exc
    return dest_dir / tops.pop()
