"""Check a run directory or bundle against its own records, and rebuild its final video.

``verify``: the manifest's schema, every artifact's sha256 and size in ``manifest.json`` and in
each clip log, and that every file the brief requires exists (final video, manifest, and for each
clip its mp4, last frame and log). ``restitch``: extract a bundle safely, verify it, stitch the
clips again with the recipe recorded in the manifest and say whether the result is byte-identical
to the bundled final video.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vgkit.artifacts import RunLayout, sha256_file
from vgkit.errors import ArtifactError

__all__ = ["find_problems", "restitch", "verify"]

LOG_SCHEMA = "vgkit.clip-log/1"  # vgkit.chain.LOG_SCHEMA (not imported: chain pulls in the generator)


def _check_record(root: Path, record: dict[str, Any], *, source: str) -> list[str]:
    path = root / record["path"]
    if not path.is_file():
        return [f"{record['path']}: missing (listed in {source})"]
    problems = []
    if path.stat().st_size != record["bytes"]:
        problems.append(f"{record['path']}: {path.stat().st_size} bytes, {source} says {record['bytes']}")
    if sha256_file(path) != record["sha256"]:
        problems.append(f"{record['path']}: sha256 differs from {source}")
    return problems


def _read_json(path: Path, name: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        problems.append(f"{name}: missing")
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{name}: not valid JSON ({exc})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{name}: not a JSON object")
        return None
    return data


def find_problems(run_dir: Path) -> list[str]:
    """Everything wrong with ``run_dir``, one line each; empty when it verifies."""
    from vgkit.manifest import MANIFEST_SCHEMA

    layout = RunLayout(run_dir)
    problems: list[str] = []
    manifest = _read_json(layout.manifest, "manifest.json", problems)
    if manifest is None:
        return problems
    if manifest.get("schema") != MANIFEST_SCHEMA:
        problems.append(f"manifest.json: schema {manifest.get('schema')!r}, expected {MANIFEST_SCHEMA!r}")
    for record in manifest.get("artifacts", []):
        problems += _check_record(layout.root, record, source="manifest.json")
    count = manifest.get("clip_count")
    if not isinstance(count, int) or count < 1:
        return [*problems, f"manifest.json: clip_count {count!r} is not a positive integer"]
    required = [layout.final, *(p for i in range(count) for p in (layout.clip(i), layout.last_frame(i)))]
    problems += [f"{p.relative_to(layout.root).as_posix()}: missing" for p in required if not p.is_file()]
    for i in range(count):
        name = layout.log(i).relative_to(layout.root).as_posix()
        log = _read_json(layout.log(i), name, problems)
        if log is None:
            continue
        if log.get("schema") != LOG_SCHEMA:
            problems.append(f"{name}: schema {log.get('schema')!r}, expected {LOG_SCHEMA!r}")
        for record in log.get("artifacts", {}).values():
            problems += _check_record(layout.root, record, source=name)
    return sorted(set(problems), key=problems.index)


@contextmanager
def _opened(path: Path) -> Iterator[Path]:
    """The run directory behind ``path``: itself, or a bundle extracted safely into a temp dir."""
    if path.is_dir():
        yield path
        return
    from vgkit.bundle import extract_bundle

    with tempfile.TemporaryDirectory(prefix="vgkit-verify-") as tmp:
        yield extract_bundle(path, Path(tmp))


def _raise_problems(path: Path, problems: list[str]) -> None:
    if problems:
        listing = "\n  ".join(problems)
        raise ArtifactError(f"{path}: {len(problems)} problem(s):\n  {listing}")


def verify(path: Path) -> int:
    """Verify a run directory or bundle; return its clip count or raise ``ArtifactError`` listing all problems."""
    with _opened(path) as run_dir:
        _raise_problems(path, find_problems(run_dir))
        count: int = json.loads(RunLayout(run_dir).manifest.read_text())["clip_count"]
    return count


def restitch(bundle: Path, *, out: Path) -> dict[str, Any]:
    """Rebuild the final video of ``bundle`` into ``out`` with the manifest's recipe.

    Returns ``{"out", "sha256", "bundled_sha256", "identical"}``. The bundle must verify first.
    """
    from vgkit.stitch import StitchSettings, stitch_run

    with _opened(bundle) as run_dir:
        _raise_problems(bundle, find_problems(run_dir))
        manifest = json.loads(RunLayout(run_dir).manifest.read_text())
        recipe = manifest["stitch"]
        settings = StitchSettings(
            transition=recipe["transition"],
            overlap_frames=recipe["overlap_frames"],
            colour=recipe["colour"],
            seam_smoothing=recipe["seam_smoothing"]["mode"],
        )
        record = stitch_run(run_dir, settings, dest=out.resolve(), colour_record=recipe.get("colour_matching"))
    bundled = recipe["final"]["sha256"]
    return {
        "out": str(out),
        "sha256": record["final"]["sha256"],
        "bundled_sha256": bundled,
        "identical": record["final"]["sha256"] == bundled == sha256_file(out),
    }
