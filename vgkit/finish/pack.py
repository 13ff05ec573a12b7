"""Pack a verified run into one reproducible ``.tar.gz`` holding exactly vgkit's artifacts.

Layout: ``bundle_index.json`` first (vgkit.finish.bundle), then, sorted: ``manifest.json``,
``plan.json``, ``events.jsonl`` (when there is one), ``final/final_stitched.mp4`` and, for each
clip the plan lists, its mp4, last frame and log. Nothing else in the run folder is packed
(previews, latents, notes or old takes a user keeps under ``clips/``...). Zeroed mtimes and owners,
a fixed mode and no gzip timestamp: the same run gives the same bytes. A run is bundled only once
it verifies (vgkit.finish.verify).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import IO, Any

from vgkit.errors import ArtifactError
from vgkit.finish.bundle import BUNDLE_INDEX, INDEX_SCHEMA, bundle_path, digest_artifact, open_artifact
from vgkit.finish.verify import find_problems
from vgkit.records.artifacts import RunLayout, commit_file, temp_path_for
from vgkit.records.events import EVENTS_FILE

__all__ = ["write_bundle"]


def _packed_names(layout: RunLayout) -> list[str]:
    """vgkit's artifacts of a verified run: run-level files (with the run's ``events.jsonl`` as it
    stands, vgkit.records.events) and each planned clip's three."""
    with open_artifact(layout.root, "plan.json") as fh:
        count = int(json.load(fh)["clip_count"])
    names = ["manifest.json", "plan.json", "final/final_stitched.mp4"]
    names += [EVENTS_FILE] if (layout.root / EVENTS_FILE).is_file() else []
    for i in range(count):
        names += [p.relative_to(layout.root).as_posix() for p in (layout.clip(i), layout.last_frame(i), layout.log(i))]
    return sorted(names)


def write_bundle(run_dir: Path) -> Path:
    """Write the run's bundle and return its path; the run must verify first.

    On a write failure (disk full, read-only folder) raises ``ArtifactError`` in one line and
    leaves no partial bundle; an older bundle at that path stays as it was.
    """
    layout = RunLayout(run_dir)
    for needed in (layout.manifest, layout.final):
        if not needed.is_file():
            raise ArtifactError(
                f"{run_dir}: {needed.relative_to(run_dir)} is missing; fix: run `vgkit stitch {run_dir}` first"
            )
    problems = find_problems(run_dir)
    if problems:
        raise ArtifactError(
            f"{run_dir}: not bundled, {len(problems)} problem(s): {'; '.join(problems)}; "
            f"fix: re-run the run or `vgkit stitch {run_dir}`"
        )
    index = {
        "schema": INDEX_SCHEMA,
        "run": run_dir.name,
        "members": [digest_artifact(run_dir, name) for name in _packed_names(layout)],
    }
    dest = bundle_path(run_dir)
    tmp = temp_path_for(dest)
    try:
        with tmp.open("wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
            _write_tar(run_dir, index, gz)
        commit_file(tmp, dest)
    except OSError as exc:
        raise ArtifactError(
            f"{dest}: cannot write the bundle ({exc.strerror or exc}); no bundle was written; "
            f"fix: free space in {dest.parent} (or make it writable) and run `vgkit bundle {run_dir}`"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Hashing(io.RawIOBase):
    """A reader that hashes what passes through it (catches a file changed while bundling)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data


def _write_tar(run_dir: Path, index: dict[str, Any], sink: gzip.GzipFile) -> None:
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
        body = (json.dumps(index, indent=2, sort_keys=True) + "\n").encode()
        tar.addfile(_tar_info(f"{run_dir.name}/{BUNDLE_INDEX}", len(body)), io.BytesIO(body))
        for entry in index["members"]:
            with open_artifact(run_dir, entry["path"]) as fh:
                reader = _Hashing(fh)
                tar.addfile(_tar_info(f"{run_dir.name}/{entry['path']}", entry["bytes"]), reader)
            if reader.digest.hexdigest() != entry["sha256"]:
                raise ArtifactError(f"{entry['path']}: changed while it was being bundled; fix: bundle again")
