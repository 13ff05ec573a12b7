"""Typed records of a run: the clip log, the plan, the manifest and the failure record.

Every record is pydantic data versioned by its ``schema`` field, read here and only here:
``read_log``/``read_logs`` (``logs/log_NNN.json``), ``read_plan`` (``plan.json``) and
``read_manifest`` (``manifest.json``). Code elsewhere uses the typed fields
(``log.effective.num_frames``), never string keys, so a renamed field is a type error, not a silent ``None``.

Clip logs of schema ``vgkit.clip-log/2`` (before the failure vocabulary) are read and upgraded in
memory: their ``failure_class``/``failure``/``phase`` become the ``failure`` record. Any other
schema is refused in one ``ArtifactError`` line naming the version and the fix. Fields a record
has beyond those named here are kept (``extra="allow"``): newer writers may add fields.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vgkit.errors import ArtifactError
from vgkit.records.artifacts import BUNDLED_LOG_ARTIFACTS, CLIP_LOG_SCHEMA

__all__ = [
    "CLIP_LOG_SCHEMA",
    "MANIFEST_SCHEMA",
    "ClipLog",
    "FailureRecord",
    "FileRecord",
    "Manifest",
    "Plan",
    "parse_log",
    "picked_take_log",
    "read_log",
    "read_logs",
    "read_manifest",
    "read_plan",
]

MANIFEST_SCHEMA = "vgkit.manifest/2"
# Older clip-log schemas that are read (upgraded in memory), and the failure kind of each old class.
_CLIP_LOG_V2 = "vgkit.clip-log/2"
_V2_KINDS = {
    "clip_deadline": "timeout",
    "run_deadline": "timeout",
    "projected_past_deadline": "timeout",
    "decode_oom": "out-of-memory",
}


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


_R = TypeVar("_R", bound=_Record)


class FileRecord(_Record):
    """An artifact as a record names it: run-relative path, sha256 and size."""

    path: str
    sha256: str
    bytes: int


class FailureRecord(_Record):
    """A failure in the vocabulary of ``vgkit.records.failures`` (``classify`` makes it), as clip logs,
    ``failure.json`` and ``failed`` events write it."""

    kind: str
    phase: str | None = None
    clip_index: int | None = None
    verdict: str = ""
    error_class: str = ""  # the class of the error raised (what a sweep row names)
    message: str = ""
    cause: str | None = None  # "Type: first line" of the deeper error that showed the kind, if not the error
    exit_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class ModelRecord(_Record):
    name: str
    repo_id: str | None = None
    revision: str | None = None
    snapshot: str | None = None
    device: str | None = None
    pipeline_class: str | None = None
    scheduler_class: str | None = None


class Size(_Record):
    width: int
    height: int


class Effective(_Record):
    """What the pipeline actually made (``num_frames``, size, fps, steps, decode attempt)."""

    num_frames: int | None = None
    width: int | None = None
    height: int | None = None
    fps: int | None = None
    steps: int | None = None
    decode_attempt: str | None = None
    generated_frames: int | None = None  # a long shot: what the model made before interpolation


class Timings(_Record):
    load_s: float | None = None
    denoise_s: float | None = None
    decode_s: float | None = None
    encode_s: float | None = None
    interpolate_s: float | None = None
    total_s: float | None = None


class InputRecord(_Record):
    source: str
    sha256: str | None = None


class ClipLog(_Record):
    """``logs/log_NNN.json``: the commit record of one clip (vgkit.generate.chain writes it)."""

    schema_: str = Field(alias="schema")
    index: int
    status: Literal["ok", "failed", "aborted"]
    failure: FailureRecord | None = None
    killed_by: str | None = None
    clip_count: int | None = None
    model: ModelRecord | None = None
    preset: dict[str, Any] | None = None
    speed: dict[str, Any] | None = None
    output_size: Size | None = None
    load_s: float | None = None
    request: dict[str, Any] | None = None
    effective: Effective = Effective()
    input: InputRecord | None = None
    artifacts: dict[str, FileRecord] = {}
    timings_s: Timings = Timings()
    memory: dict[str, Any] | None = None
    gpu_telemetry: dict[str, Any] | None = None
    interpolation: dict[str, Any] | None = None  # a long shot's retiming (vgkit.finish.interpolate)

    @property
    def chained(self) -> bool:
        """Whether the clip started from the previous clip's last frame (its first frame repeats it).

        Clip 0 and keyframe shots (input ``shots[i].source_image``) are not chained.
        """
        return self.index > 0 and (self.input is None or self.input.source.startswith("frames/"))

    def finished_clip(self, run_dir: Path) -> Path | None:
        """The clip file of an ``ok`` log, when it is in ``run_dir``; None otherwise."""
        record = self.artifacts.get("clip")
        path = run_dir / record.path if record is not None and self.status == "ok" else None
        return path if path is not None and path.is_file() else None

    @property
    def prompt(self) -> str | None:
        return None if self.request is None else self.request.get("prompt")

    def to_json(self) -> dict[str, Any]:
        """The record as JSON holds it (``schema`` under its own name)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class PlanClip(_Record):
    index: int
    num_frames: int
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    camera: str | None = None
    source_image: str | None = None


class Plan(_Record):
    """``plan.json``: the accepted plan (``RunPlan.to_dict()``); required are the fields every reader
    needs (clip count and list, final frames, fps)."""

    clip_count: int
    clips: list[PlanClip]
    final_frames: int
    joined_frames: int | None = None  # before crossfade overlaps (plans before it: final_frames was it)
    fps: int
    model: str | None = None
    width: int | None = None
    height: int | None = None
    output_width: int | None = None
    output_height: int | None = None
    steps: int | None = None
    preset: dict[str, Any] = {}
    speed: dict[str, Any] = {}


class Manifest(_Record):
    """``manifest.json`` (vgkit.finish.manifest writes it)."""

    schema_: str = Field(alias="schema")
    run: str
    model: ModelRecord
    clip_count: int
    stitch: dict[str, Any]
    artifacts: list[FileRecord]
    preset: dict[str, Any] | None = None
    planned: dict[str, Any] | None = None
    actual: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    timings_s: dict[str, float] | None = None
    cost: dict[str, Any] | None = None


def _refused(source: str, what: str) -> ArtifactError:
    return ArtifactError(f"{source}: {what}; fix: re-run the run with this vgkit to write it again")


def _validated(model: type[_R], data: object, source: str) -> _R:
    """``data`` as ``model``; else ``ArtifactError`` naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "(record)"
        got = str(error.get("input"))[:60]
        raise _refused(source, f"field {field}: {error['msg'].lower()} (got {got!r})") from None


def _upgrade_v2(data: dict[str, Any]) -> dict[str, Any]:
    """A ``vgkit.clip-log/2`` log as schema 3 would hold it (its failure as the failure record)."""
    old_class, message, phase = data.get("failure_class"), data.get("failure"), data.get("phase")
    rest = {k: v for k, v in data.items() if k not in ("failure_class", "failure", "phase")}
    failure = None
    if data.get("status") != "ok":
        kind = _V2_KINDS.get(str(old_class), "other")
        failure = {"kind": kind, "phase": phase, "clip_index": data.get("index"), "message": str(message or "")}
    return {**rest, "schema": CLIP_LOG_SCHEMA, "failure": failure}


def parse_log(data: object, *, source: str) -> ClipLog:
    """The clip log ``data`` (parsed JSON) read from ``source``; ``ArtifactError`` in one line when
    it is not one, or of a schema vgkit does not read."""
    if not isinstance(data, dict):
        raise _refused(source, "not a JSON object")
    schema = data.get("schema")
    if schema == _CLIP_LOG_V2:
        data = _upgrade_v2(data)
    elif schema != CLIP_LOG_SCHEMA:
        raise _refused(
            source, f"clip-log schema {str(schema)[:40]!r} is not one vgkit reads ({CLIP_LOG_SCHEMA} or {_CLIP_LOG_V2})"
        )
    return _validated(ClipLog, data, source)


def _read_json(path: Path, source: str) -> object:
    """``path`` parsed; ``FileNotFoundError`` when missing, ``ArtifactError`` when unreadable."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(
            f"{source} is unreadable ({type(exc).__name__}; truncated?); fix: re-run the run to write it again"
        ) from None


def read_log(path: Path, *, root: Path | None = None) -> ClipLog:
    """The clip log at ``path`` (named relative to ``root`` in errors)."""
    source = path.relative_to(root).as_posix() if root is not None else str(path)
    return parse_log(_read_json(path, source), source=source)


def read_logs(run_dir: Path, *, lenient: bool = False) -> list[ClipLog]:
    """Every ``logs/log_NNN.json`` of ``run_dir`` in index order. ``lenient`` skips one that is
    unreadable or refused (a report shows what it can); else the first such raises."""
    logs = []
    for path in sorted((run_dir / "logs").glob("log_[0-9][0-9][0-9].json")):
        try:
            logs.append(read_log(path, root=run_dir))
        except (ArtifactError, OSError):
            if not lenient:
                raise
    return logs


def read_plan(run_dir: Path) -> Plan:
    """``plan.json`` of ``run_dir``; ``FileNotFoundError`` when missing, ``ArtifactError`` when not a plan."""
    return _validated(Plan, _read_json(run_dir / "plan.json", "plan.json"), "plan.json")


def read_manifest(run_dir: Path) -> Manifest:
    """``manifest.json`` of ``run_dir``, of schema ``MANIFEST_SCHEMA`` (else one ``ArtifactError`` line)."""
    data = _read_json(run_dir / "manifest.json", "manifest.json")
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != MANIFEST_SCHEMA:
        raise _refused("manifest.json", f"manifest schema {str(schema)[:40]!r} is not {MANIFEST_SCHEMA}")
    return _validated(Manifest, data, "manifest.json")


def picked_take_log(take: ClipLog, *, clip_count: int, picked: dict[str, Any]) -> dict[str, Any]:
    """A take's log as its run's clip log (``vgkit pick``): the clip and last frame it brings (not the
    take's own latents), the run's clip count and a ``picked_take`` note; parsed back before it is returned."""
    kept = {name: record for name, record in take.artifacts.items() if name in BUNDLED_LOG_ARTIFACTS}
    log = {**take.model_copy(update={"artifacts": kept, "clip_count": clip_count}).to_json(), "picked_take": picked}
    parse_log(log, source="picked take")
    return log
