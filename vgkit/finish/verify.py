"""Check a run directory or bundle against its own records and its plan, and rebuild its final video.

``verify``: a bundle is first extracted against its index (vgkit.finish.bundle: every member, the
manifest included, by sha256 and size, within size limits). Then, for the run: the manifest's
schema; every path a manifest or clip log names must be one of vgkit's artifact names inside the
run, not reached through a symbolic link, and a regular file (anything else is refused before it is
opened); each artifact's sha256 and size against ``manifest.json`` and its clip log; the clip count
and frame counts against ``plan.json`` (every planned clip has its mp4, last frame and log, no
clip beyond the plan, each clip's frames as planned, the final video's counted frames equal to the
plan's less the recorded crossfade overlap); and every video is an MP4 file. Each problem is one line.

``restitch``: verify, then rebuild the filtergraph from vgkit's own recipe and the manifest's
typed settings (vgkit.finish.stitch ``filtergraph_from_record``), run the clips through it with the
pinned encoder recipe and say whether the result is byte-identical to the bundled final video. A
graph string stored in the manifest never reaches ffmpeg: a manifest whose stored graph differs
from the rebuilt one is refused.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vgkit.errors import ArtifactError
from vgkit.finish.bundle import artifact_clip_index, digest_artifact, open_artifact
from vgkit.records.artifacts import BUNDLED_LOG_ARTIFACTS, RunLayout, sha256_file
from vgkit.records.schema import ClipLog, parse_log

__all__ = ["MAX_RECORD_BYTES", "find_problems", "restitch", "verify"]

MAX_RECORD_BYTES = 16 << 20  # a manifest, plan or clip log larger than this is not one vgkit wrote
_CLIP_FOLDERS = ("clips", "frames", "logs")


def _rel(layout: RunLayout, path: Path) -> str:
    return path.relative_to(layout.root).as_posix()


def _check_record(root: Path, record: object, *, source: str, expected: str | None = None) -> list[str]:
    """Problems of one ``{"path", "sha256", "bytes"}`` record; its path is confined before anything is opened."""
    if not isinstance(record, dict):
        return [f"{source}: artifact record {str(record)[:60]!r} is not an object"]
    path = record.get("path")
    if expected is not None and path != expected:
        return [f"{source}: names {str(path)[:80]!r} where {expected} belongs; refused (not opened)"]
    try:
        artifact_clip_index(path)
        actual = digest_artifact(root, str(path))
    except ArtifactError as exc:
        return [f"{source}: {exc}"]
    except FileNotFoundError:
        return [f"{path}: missing (listed in {source})"]
    problems = []
    if actual["bytes"] != record.get("bytes"):
        problems.append(f"{path}: {actual['bytes']} bytes, {source} says {record.get('bytes')}")
    if actual["sha256"] != record.get("sha256"):
        problems.append(f"{path}: sha256 differs from {source}")
    return problems


def _read_json(root: Path, name: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        with open_artifact(root, name) as fh:
            body = fh.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        problems.append(f"{name}: missing")
        return None
    except ArtifactError as exc:
        problems.append(str(exc))
        return None
    if len(body) > MAX_RECORD_BYTES:
        problems.append(f"{name}: larger than {MAX_RECORD_BYTES} bytes; not a vgkit record")
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        problems.append(f"{name}: not valid JSON ({type(exc).__name__})")
        return None
    if not isinstance(data, dict):
        problems.append(f"{name}: not a JSON object")
        return None
    return data


def _obj(value: object) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (malformed records are reported elsewhere)."""
    return value if isinstance(value, dict) else {}


def _whole(value: object, *, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _planned_clips(plan: dict[str, Any] | None, problems: list[str]) -> list[tuple[int, bool]] | None:
    """``(num_frames, chained)`` per clip of ``plan.json``, or None when it cannot be read."""
    if plan is None:
        return None
    clips = plan.get("clips")
    if not _whole(plan.get("clip_count"), low=1) or not isinstance(clips, list) or len(clips) != plan["clip_count"]:
        problems.append(f"plan.json: clip_count {str(plan.get('clip_count'))[:20]!r} does not match its clip list")
        return None
    planned = []
    for i, clip in enumerate(clips):
        if not isinstance(clip, dict) or not _whole(clip.get("num_frames"), low=1) or clip.get("index") != i:
            problems.append(f"plan.json: clips[{i}] has no whole num_frames or index {i}")
            return None
        planned.append((int(clip["num_frames"]), i > 0 and clip.get("source_image") is None))
    return planned


def _is_mp4(root: Path, name: str) -> bool:
    with open_artifact(root, name) as fh:
        return fh.read(12)[4:8] == b"ftyp"


def _frame_problems(
    layout: RunLayout, manifest: dict[str, Any], planned: list[tuple[int, bool]], logs: dict[int, ClipLog]
) -> list[str]:
    """Clip frame counts against the plan, then the final's recorded and counted frames."""
    from vgkit.finish.encode import count_frames

    problems = []
    for i, log in sorted(logs.items()):
        frames = log.effective.num_frames
        if i < len(planned) and frames != planned[i][0]:
            problems.append(f"{_rel(layout, layout.log(i))}: {frames} frames, plan.json plans {planned[i][0]}")
    stitch = _obj(manifest.get("stitch"))
    overlap = stitch.get("overlap_frames", 0)
    if not _whole(overlap):
        return [*problems, f"manifest.json: stitch.overlap_frames {str(overlap)[:20]!r} is not a whole number"]
    want = sum(n - chained for n, chained in planned) - (len(planned) - 1) * overlap
    given = f"plan.json gives {want} ({len(planned)} clips, {overlap} overlap frames per join)"
    recorded = {"stitch": stitch.get("final_frames"), "actual": _obj(manifest.get("actual")).get("final_frames")}
    for part, value in recorded.items():
        if value != want:
            problems.append(f"manifest.json: {part}.final_frames {str(value)[:20]}, {given}")
    final = _rel(layout, layout.final)
    try:
        if not _is_mp4(layout.root, final):
            return [*problems, f"{final}: not an MP4 file (no ftyp box); refused"]
        counted = count_frames(layout.final)
    except (OSError, ArtifactError, RuntimeError, ValueError):
        return problems  # missing or refused: said elsewhere
    if counted != want:
        problems.append(f"{final}: {counted} frames, {given}")
    return problems


def _extra_files(layout: RunLayout, planned: int) -> list[str]:
    """vgkit-named clip files beyond the plan (left by an older run of another spec)."""
    extra = []
    for folder in _CLIP_FOLDERS:
        directory = layout.root / folder
        if not directory.is_dir() or directory.is_symlink():
            continue
        for entry in sorted(directory.iterdir()):
            name = f"{folder}/{entry.name}"
            try:
                index = artifact_clip_index(name)
            except ArtifactError:
                continue  # not vgkit's: a user's file, neither checked nor bundled
            if index is not None and index >= planned:
                extra.append(f"{name}: clip {index} is not in plan.json, which plans {planned} clips")
    return extra


def _log_problems(layout: RunLayout, i: int, log: ClipLog) -> list[str]:
    name = _rel(layout, layout.log(i))
    problems = []
    if log.index != i:
        problems.append(f"{name}: index {log.index}, expected {i}")
    expected = {"clip": layout.clip(i), "last_frame": layout.last_frame(i)}
    for key in BUNDLED_LOG_ARTIFACTS:
        if (record := log.artifacts.get(key)) is not None:
            problems += _check_record(
                layout.root, record.model_dump(), source=name, expected=_rel(layout, expected[key])
            )
    return problems


def find_problems(run_dir: Path) -> list[str]:
    """Everything wrong with ``run_dir``, one line each; empty when it verifies."""
    from vgkit.finish.manifest import MANIFEST_SCHEMA

    layout = RunLayout(run_dir)
    problems: list[str] = []
    manifest = _read_json(layout.root, "manifest.json", problems)
    plan = _read_json(layout.root, "plan.json", problems)
    if manifest is None:
        return problems
    if manifest.get("schema") != MANIFEST_SCHEMA:
        problems.append(f"manifest.json: schema {str(manifest.get('schema'))[:40]!r}, expected {MANIFEST_SCHEMA!r}")
    artifacts = manifest.get("artifacts")
    if not isinstance(artifacts, list):
        problems.append(f"manifest.json: artifacts {str(artifacts)[:40]!r} is not a list of records")
    for record in artifacts if isinstance(artifacts, list) else []:
        problems += _check_record(layout.root, record, source="manifest.json")
    count = manifest.get("clip_count")
    if not isinstance(count, int) or not _whole(count, low=1):
        return [*problems, f"manifest.json: clip_count {str(count)[:20]!r} is not a positive integer"]
    planned = _planned_clips(plan, problems)
    if planned is not None and len(planned) != count:
        problems.append(f"manifest.json: clip_count {count}, plan.json plans {len(planned)} clips")
    clips = max(count, len(planned or []))
    required = [layout.final, *(p for i in range(clips) for p in (layout.clip(i), layout.last_frame(i)))]
    problems += [f"{_rel(layout, p)}: missing" for p in required if not p.is_file()]
    logs: dict[int, ClipLog] = {}
    for i in range(clips):
        name = _rel(layout, layout.log(i))
        data = _read_json(layout.root, name, problems)
        if data is None:
            continue
        try:
            logs[i] = parse_log(data, source=name)
        except ArtifactError as exc:
            problems.append(str(exc).split("; fix:")[0])
            continue
        problems += _log_problems(layout, i, logs[i])
    for i in range(clips):
        name = _rel(layout, layout.clip(i))
        try:
            if not _is_mp4(layout.root, name):
                problems.append(f"{name}: not an MP4 file (no ftyp box); refused")
        except (OSError, ArtifactError):
            pass  # missing or refused: said above
    if planned is not None:
        problems += _extra_files(layout, len(planned))
        problems += _frame_problems(layout, manifest, planned, logs)
    return sorted(set(problems), key=problems.index)


@contextmanager
def _opened(path: Path) -> Iterator[Path]:
    """The run directory behind ``path``: itself, or a bundle extracted against its index into a temp dir."""
    if path.is_dir():
        yield path
        return
    from vgkit.finish.bundle import extract_bundle

    with tempfile.TemporaryDirectory(prefix="vgkit-verify-") as tmp:
        yield extract_bundle(path, Path(tmp))


def _verified(path: Path, run_dir: Path) -> dict[str, Any]:
    """The manifest of ``run_dir`` once every check passes."""
    problems = find_problems(run_dir)
    manifest = None if problems else _read_json(run_dir, "manifest.json", problems)
    if manifest is None:
        listing = "\n  ".join(problems)
        raise ArtifactError(f"{path}: {len(problems)} problem(s):\n  {listing}")
    return manifest


def verify(path: Path) -> int:
    """Verify a run directory or bundle; return its clip count or raise ``ArtifactError`` listing all problems."""
    with _opened(path) as run_dir:
        count: int = _verified(path, run_dir)["clip_count"]
    return count


def _encoder_from_record(record: dict[str, Any]) -> list[str]:
    """vgkit's pinned encoder recipe with the recorded thread count (it changes the bytes)."""
    from vgkit.finish.encode import ENCODER_ARGS

    recorded = record.get("encoder_args")
    threads = recorded[-1] if isinstance(recorded, list) and recorded else None
    ok = isinstance(threads, str) and threads.isdigit() and 1 <= int(threads) <= 256
    encoder = [*ENCODER_ARGS, "-threads", str(threads)] if ok else []
    if not ok or recorded != encoder:
        raise ArtifactError(
            f"manifest.json: stitch.encoder_args {str(recorded)[:80]} are not vgkit's pinned recipe; refused"
        )
    return encoder


def restitch(bundle: Path, *, out: Path) -> dict[str, Any]:
    """Rebuild the final video of ``bundle`` (or a run directory) into ``out``.

    The bundle must verify first. The filtergraph is rebuilt by vgkit's stitch recipe from the
    manifest's typed settings and the clip logs; the manifest's stored graph must equal it or the
    bundle is refused, and it is never run. Returns ``{"out", "sha256", "bundled_sha256", "identical"}``.
    """
    from vgkit.finish.stitch import filtergraph_from_record, kept_frames, planned_final_frames, render_recorded

    with _opened(bundle) as run_dir:
        manifest = _verified(bundle, run_dir)
        layout = RunLayout(run_dir)
        record = manifest.get("stitch")
        if not isinstance(record, dict):
            raise ArtifactError(f"{bundle}: manifest.json: stitch: no record; refused")
        names = [_rel(layout, layout.log(i)) for i in range(manifest["clip_count"])]
        checked = [parse_log(_read_json(run_dir, name, []), source=name) for name in names]  # verified above
        graph = filtergraph_from_record(record, checked)
        if record.get("filtergraph") != graph:
            raise ArtifactError(
                f"{bundle}: manifest.json: stitch.filtergraph is not the graph vgkit's recipe builds from the "
                "recorded settings; refused (a stored graph is never run)"
            )
        encoder = _encoder_from_record(record)
        expected = planned_final_frames(kept_frames(checked), overlap_frames=record["overlap_frames"])
        clips = [layout.clip(i) for i in range(len(checked))]
        render_recorded(clips, checked, record, encoder=encoder, dest=out, expected_frames=expected)
    digest = sha256_file(out)
    bundled = record["final"]["sha256"] if isinstance(record.get("final"), dict) else None
    return {"out": str(out), "sha256": digest, "bundled_sha256": bundled, "identical": digest == bundled}
