"""Structured progress: every progress line of a run is an ``Event``, and the line is rendered from it.

An ``Event`` is a ``str`` (its rendered line, so a ``print``-like callback shows it unchanged)
that also carries typed fields: the ``stage`` (one of ``STAGES``), the clip index and count, the
denoising step and total, elapsed seconds, the ETA, a small ``figures`` dict and, for notes, the
``detail`` text. Code that needs to know what happened reads the fields, never the wording.

A run appends every event to ``events.jsonl`` in its run folder (``EVENTS_FILE``; one JSON
object per line, schema ``vgkit.event/1``, each line written by one ``write`` on an append-only
descriptor, so concurrent writers never interleave within a line). A supervised worker sends the
same JSON lines to its parent over its stdout pipe (``to_json``/``from_json``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

__all__ = [
    "EVENTS_FILE",
    "EVENT_SCHEMA",
    "STAGES",
    "Event",
    "EventLog",
    "Progress",
    "Stage",
    "append_event",
    "note",
    "read_events",
    "render",
    "text_sink",
]

EVENTS_FILE = "events.jsonl"
EVENT_SCHEMA = "vgkit.event/1"

Stage = Literal[
    "plan",  # the plan is made: ``detail`` is its summary
    "load",  # the pipeline starts loading (figures: model, snapshot)
    "loaded",  # the pipeline is loaded (elapsed_s: load time)
    "clip-start",  # a clip starts denoising (figures: num_frames, seed)
    "denoise",  # a denoising step (step, total, elapsed_s, eta_s, figures: run_deadline_in_s)
    "projection",  # the live check measured a step (figures: step_s, projected_denoise_s, planned_clip_s)
    "decode",  # the VAE decode starts (figures: saved latents file when reused)
    "encode",  # the clip's frames are encoded
    "clip-done",  # a clip is committed (elapsed_s: its total time; figures: clip)
    "clip-reused",  # a finished clip of an earlier run verified and is kept (figures: clip)
    "stitch",  # the final video is being stitched (figures: final)
    "qa",  # the sweep measures the run (vgkit.evaluate.qa)
    "run-done",  # the run finished (figures: final_frames, final_seconds)
    "failed",  # the run stopped (figures: kind, phase, error_class, exit_code)
    "note",  # anything else worth a line: ``detail`` says it
]
STAGES: tuple[str, ...] = get_args(Stage)

Figure = float | int | str | bool | None


# Stages whose line starts with the clip (``clip 2/5: ...``).
_CLIP_STAGES = frozenset({"clip-start", "denoise", "projection", "decode", "encode", "clip-done", "clip-reused"})


def render(stage: str, fields: Mapping[str, Any]) -> str:
    """The human line for an event's ``stage`` and fields (what ``print`` shows)."""
    line = _describe(stage, fields, fields.get("figures") or {})
    return f"clip {fields['clip_index'] + 1}/{fields['clip_count']}: {line}" if stage in _CLIP_STAGES else line


def _describe(stage: str, fields: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    if stage == "load":
        return f"loading {f.get('model')} from {f.get('snapshot')}"
    if stage == "loaded":
        return f"loaded in {fields['elapsed_s']:.1f} s"
    if stage == "clip-start":
        return f"generating {f.get('num_frames')} frames, seed {f.get('seed')}"
    if stage == "denoise":
        step, total = fields["step"], fields["total"]
        return (
            f"step {step}/{total} ({100 * step // total}%), {fields['elapsed_s']:.1f} s elapsed, "
            f"denoise ETA {fields['eta_s']:.0f} s, run deadline in {f.get('run_deadline_in_s', 0):.0f} s"
        )
    if stage == "projection":
        planned = f.get("planned_clip_s")
        versus = f" (the plan projected {planned:.0f} s for the whole clip)" if planned is not None else ""
        return (
            f"measured {f['step_s']:.2f} s a step: denoise projects {f['projected_denoise_s']:.0f} s{versus}, "
            f"clip deadline {f['clip_timeout_s']:g} s"
        )
    if stage == "decode":
        return f"decoding saved {f['saved_latents']} (no re-denoising)" if f.get("saved_latents") else "decoding"
    if stage == "clip-done":
        return f"done in {fields['elapsed_s']:.1f} s -> {f.get('clip')}"
    if stage == "clip-reused":
        return f"verified, reusing {f.get('clip')}"
    if stage == "stitch":
        return f"stitching {f.get('final')}"
    if stage == "run-done":
        return f"run done: {f.get('final_frames')} frames, {f.get('final_seconds', 0):.2f} s"
    if stage == "failed":  # the message itself is the error's own line (detail), said once by the CLI
        where = f"clip {fields['clip_index']:03d}: " if fields.get("clip_index") is not None else ""
        during = f" during {f['phase']}" if f.get("phase") else ""
        return f"{where}failed: {f.get('kind')}{during} ({f.get('error_class')})"
    fixed = {"encode": "encoding", "qa": "qa: measuring clips and seams"}
    return fixed.get(stage, str(fields.get("detail") or ""))  # plan, note: the detail says it


class Event(str):
    """One progress event; its string value is the rendered line (``render``)."""

    stage: str
    clip_index: int | None
    clip_count: int | None
    step: int | None
    total: int | None
    elapsed_s: float | None
    eta_s: float | None
    figures: dict[str, Figure]
    detail: str
    at: float

    def __new__(
        cls,
        stage: Stage,
        *,
        clip_index: int | None = None,
        clip_count: int | None = None,
        step: int | None = None,
        total: int | None = None,
        elapsed_s: float | None = None,
        eta_s: float | None = None,
        figures: Mapping[str, Figure] | None = None,
        detail: str = "",
        at: float | None = None,
    ) -> Event:
        if stage not in STAGES:
            raise ValueError(f"event stage = {stage!r}: not one of {', '.join(STAGES)}")
        fields: dict[str, Any] = {
            "stage": stage,
            "clip_index": clip_index,
            "clip_count": clip_count,
            "step": step,
            "total": total,
            "elapsed_s": elapsed_s,
            "eta_s": eta_s,
            "figures": dict(figures or {}),
            "detail": detail,
            "at": time.time() if at is None else at,
        }
        event = super().__new__(cls, render(stage, fields))
        event.__dict__.update(fields)
        return event

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (Ray ships events between processes) by the fields, not the rendered text."""
        fields = dict(self.__dict__)
        return (_event_from_fields, (fields.pop("stage"), fields))

    def record(self) -> dict[str, Any]:
        """The JSON record of this event (what ``events.jsonl`` holds), with the rendered ``text``."""
        fields = {k: v for k, v in self.__dict__.items() if v is not None and v != {} and v != ""}
        return {"schema": EVENT_SCHEMA, **fields, "text": str(self)}

    def to_json(self) -> str:
        return json.dumps(self.record(), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Event | None:
        """The event a ``to_json`` line holds, or None for any other line."""
        if not line.startswith("{"):
            return None
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("schema") != EVENT_SCHEMA or data.get("stage") not in STAGES:
            return None
        keys = ("clip_index", "clip_count", "step", "total", "elapsed_s", "eta_s", "figures", "detail", "at")
        try:
            return cls(data["stage"], **{k: data[k] for k in keys if k in data})
        except (TypeError, KeyError, ValueError):
            return None


def _event_from_fields(stage: Stage, fields: dict[str, Any]) -> Event:
    return Event(stage, **fields)


Progress = Callable[[Event], None]


def note(text: str) -> Event:
    """A free-text ``note`` event (messages that carry no figures)."""
    return Event("note", detail=text)


def text_sink(progress: Progress) -> Callable[[str], None]:
    """A plain-text callback (for helpers that report lines) that sends each line to ``progress`` as a note."""

    def send(text: str) -> None:
        progress(text if isinstance(text, Event) else note(text))

    return send


def append_event(run_dir: Path, event: Event) -> None:
    """Append ``event`` as one line of ``run_dir/events.jsonl`` (one ``write`` on an ``O_APPEND`` descriptor)."""
    line = (event.to_json() + "\n").encode()
    fd = os.open(run_dir / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class EventLog:
    """A progress callback that forwards each event to ``progress`` and keeps it for the run's
    ``events.jsonl``: held in memory until ``write_to`` names the run folder (once vgkit may write
    there), appended from then on."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.run_dir: Path | None = None
        self._held: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.progress(event)
        if self.run_dir is None:
            self._held.append(event)
        else:
            append_event(self.run_dir, event)

    def write_to(self, run_dir: Path) -> None:
        """Append the held events to ``run_dir/events.jsonl``, and every later one as it comes."""
        self.run_dir = run_dir
        for event in self._held:
            append_event(run_dir, event)
        self._held.clear()


def read_events(run_dir: Path, *, since: float | None = None) -> list[Event]:
    """The events of ``run_dir/events.jsonl`` in order (those at or after epoch ``since``); a line that
    does not parse (a torn last line) is skipped."""
    try:
        lines = (run_dir / EVENTS_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    found = (Event.from_json(line) for line in lines)
    return [e for e in found if e is not None and (since is None or e.at >= since)]
