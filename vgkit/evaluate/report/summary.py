"""The sweep report: one row per run directory, as Markdown and as a self-contained HTML page.

Input is run directories as ``vgkit run`` / ``vgkit sweep`` leave them: ``plan.json``,
``logs/log_NNN.json`` (``timings_s``, ``memory``, optional ``status``/``failure``), ``clips/``,
``final/``, ``manifest.json``, and when present ``qa.json`` (vgkit.evaluate.qa), ``prompt_match.json``
(vgkit.evaluate.clip_score), ``failure.json`` and ``sweep_run.json`` (vgkit.evaluate.sweep; on Ray
with each attempt's node and GPU, vgkit.evaluate.report.placements), and the sweep's ``sweep.json``
beside the run dirs (run ID, remote movie directory). Status is:

- ``completed``: ``manifest.json`` and the final video exist and no ``failure.json``;
- ``partial``: some clips finished, but no final video (or a failure came after them);
- ``failed``: no finished clip; the failure record, if any, says why.

Latency is the run's first generation: when a resumed sweep reused clips (``clip-reused`` events
in ``events.jsonl`` since the job started, vgkit.records.events) it is the first session's wall time
(``sweep_run.json`` ``first_run``) when that session completed, else the clip logs' own timings;
the resumed session's wall time is shown beside it, never in its place. Failure kinds are the
failure records' ``kind`` (vgkit.records.failures). The best completed model is chosen by prompt match, then QA
findings, then cost (``best_completed``); without a prompt-match score none is named, since latency
alone never chooses. Nothing is estimated: a value no record holds is shown as "n/a".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vgkit.errors import SpecError
from vgkit.evaluate.report.placements import Placement, Segment, read_placements
from vgkit.evaluate.report.recommend import failure_kind, kind_sentence
from vgkit.records.artifacts import FAILURE_FILE, SWEEP_RUN_FILE, RunLayout, read_json_object
from vgkit.records.events import read_events
from vgkit.records.schema import ClipLog, read_logs

__all__ = [
    "QA_COLUMNS",
    "REPORT_SCHEMA",
    "SETTINGS",
    "ClipTiming",
    "RunSummary",
    "Segment",
    "qa_rows",
    "summarize_run",
]

REPORT_SCHEMA = "vgkit.report/2"  # 2: run_id, remote_dir, best_completed + rule, recommendations
FILMSTRIP_FRAMES = 4  # frames shown per clip
THUMB_HEIGHT_PX = 72
SETTINGS = ("preset", "size", "frames", "fps", "steps", "guidance")  # RunSummary.settings keys, in order

_SAMPLE_KEYS = ("utilization_pct", "temperature_c", "memory_used_bytes")  # a sweep_run.json GPU sample
_TELEMETRY_KEYS = ("utilization_pct_mean", "temperature_c_max", "memory_used_bytes_max")  # a clip log's

# Events (vgkit.records.events) that open a billing segment (see Segment), by stage.
_MARKERS = {"load": "model load", "clip-start": "clip", "stitch": "stitch + manifest + bundle", "qa": "qa"}


@dataclass(frozen=True)
class ClipTiming:
    """One clip's first generation: denoise, VAE decode and the rest (encode, frames, log)."""

    index: int
    denoise_s: float
    decode_s: float
    other_s: float
    reused: bool  # reused by a resumed run: these are the timings of the run that made it


@dataclass
class RunSummary:
    """What the report says about one run directory."""

    run_dir: Path
    model: str
    status: str
    latency_s: float | None
    latency_source: str
    clips_done: int
    prompt_match: float | None
    verdict: str
    failure: dict[str, Any] | None
    clip_failures: list[ClipLog]
    peak_rss_bytes: int | None
    peak_gpu_bytes: int | None
    gpu: dict[str, float | int | None] | None
    segments: list[Segment]
    timeline_source: str
    qa: dict[str, Any] | None
    filmstrips: list[tuple[str, bytes]] = field(default_factory=list)
    preset: str = "n/a"  # the preset and, where it generated smaller, the upscale
    kind: str | None = None  # the failure kind (vgkit.evaluate.report.recommend.failure_kind) of a run that failed
    prompt_clips: list[dict[str, Any]] = field(default_factory=list)  # prompt_match.json clips
    prompt_note: str = "n/a"  # how prompt match was scored, or why it was not
    settings: dict[str, str] = field(default_factory=dict)  # preset, size, frames, fps, steps, guidance
    clip_timings: list[ClipTiming] = field(default_factory=list)
    clip_videos: dict[int, Path] = field(default_factory=dict)
    reused_clips: int = 0
    resumed_s: float | None = None  # wall time of the resumed session when clips were reused
    placements: list[Placement] = field(default_factory=list)  # where it ran on Ray (sweep_run.json)
    label: str = ""  # what the report calls the run: the model, or with its folder where two runs share one

    def __post_init__(self) -> None:
        self.label = self.label or self.model

    def prompt_score(self, index: int) -> float | None:
        """Clip ``index``'s prompt match (0-10), or None when not scored."""
        return next((float(c["score"]) for c in self.prompt_clips if c["index"] == index), None)


def label_runs(runs: list[RunSummary]) -> list[RunSummary]:
    """The runs, each labelled by its model, or ``model (folder)`` where two runs share a model (a
    sweep with ``--seeds``), so no two columns, rows or sections of the report read alike."""
    shared = {model for model, n in Counter(r.model for r in runs).items() if n > 1}
    for r in runs:
        r.label = f"{r.model} ({r.run_dir.name})" if r.model in shared else r.model
    return runs


def preset_note(plan: dict[str, Any] | None) -> str:
    """``"4090 (960x544 generated, upscaled to 1280x720)"``, ``"cpu"``, or n/a without a plan."""
    if not plan or not plan.get("preset"):
        return "n/a"
    name = str(plan["preset"]["name"])
    made, out = (plan["width"], plan["height"]), (plan.get("output_width"), plan.get("output_height"))
    if None in out or made == out:
        return name
    return f"{name} ({made[0]}x{made[1]} generated, upscaled to {out[0]}x{out[1]})"


def _segments(run_dir: Path, sweep_run: dict[str, Any] | None, ok_logs: list[ClipLog]) -> tuple[list[Segment], str]:
    """Billing segments from the sweep job's events (``events.jsonl`` since the job started), else
    from the clip logs."""
    started = (sweep_run or {}).get("started_at_s")
    events = read_events(run_dir, since=started) if isinstance(started, int | float) else []
    if events and sweep_run and isinstance(started, int | float) and sweep_run.get("wall_s") is not None:
        marks: list[tuple[float, str]] = [(0.0, "start-up (plan, checkpoint)")]
        for event in events:
            if (label := _MARKERS.get(event.stage)) is not None:
                if label == "clip":
                    label = f"clip {event.clip_index}"
                elif event.stage == "stitch" and event.figures.get("on") == "driver":  # on Ray: the clips home
                    label = f"{label} on the driver"
                marks.append((event.at - started, label))
        ends = [t for t, _ in marks[1:]] + [float(sweep_run["wall_s"])]
        segments = [Segment(label, t, max(end - t, 0.0)) for (t, label), end in zip(marks, ends, strict=True)]
        return segments, "events.jsonl timestamps"
    segments, t = [], 0.0
    if ok_logs and (load_s := ok_logs[0].load_s) is not None:
        segments.append(Segment("model load", 0.0, load_s))
        t = load_s
    for log in ok_logs:
        duration = log.timings_s.total_s or 0.0
        segments.append(Segment(f"clip {log.index}", t, duration))
        t += duration
    return segments, "clip logs (start-up and stitch not recorded)"


def _gpu_stats(sweep_run: dict[str, Any] | None, logs: list[ClipLog]) -> dict[str, float | int | None] | None:
    """GPU notes from the sweep's whole-job samples, else from the clip logs' ``gpu_telemetry``."""
    samples = (sweep_run or {}).get("gpu_samples") or []
    records = samples or [t for g in logs if (t := g.gpu_telemetry or {}).get("available")]
    if not records:
        return None
    # A metric the GPU does not report is None in every record (vgkit.supervise.telemetry).
    keys = _SAMPLE_KEYS if samples else _TELEMETRY_KEYS
    util, temps, used = ([v for r in records if (v := r.get(key)) is not None] for key in keys)
    stats: dict[str, float | int | None] = {
        "samples": len(samples) if samples else sum(t["samples"] for t in records),
        "mean_util_pct": round(float(np.mean(util)), 1) if util else None,
        "peak_temp_c": max(temps) if temps else None,
        "peak_mem_used_mib": round(max(used) / 2**20) if used else None,
    }
    if samples:
        stats["overlap_samples"] = sum(1 for s in samples if s.get("compute_apps", 0) > 1)
    return stats


def _filmstrips(layout: RunLayout, ok_logs: list[ClipLog]) -> list[tuple[str, bytes]]:
    """PNG strips: a few frames of each clip, then the frames either side of each seam."""
    from vgkit.finish.encode import read_frames

    strips: list[tuple[str, bytes]] = []
    prev: tuple[int, np.ndarray] | None = None
    for log in ok_logs:
        frames = read_frames(layout.root / log.artifacts["clip"].path)
        picks = np.unique(np.linspace(0, len(frames) - 1, FILMSTRIP_FRAMES).round().astype(int))
        strips.append((f"clip {log.index}", _strip([frames[i] for i in picks])))
        if prev is not None and prev[0] == log.index - 1:
            around = [*prev[1][-2:], *frames[1:3]]
            strips.append((f"seam into clip {log.index}", _strip(around, gap_after=min(2, len(prev[1])))))
        prev = (log.index, frames)
    return strips


def _strip(frames: list[np.ndarray], *, gap_after: int | None = None) -> bytes:
    from PIL import Image

    from vgkit.spec.images import png_bytes

    h, w = frames[0].shape[:2]
    thumb_w = max(1, round(w * THUMB_HEIGHT_PX / h))
    thumbs = [
        np.asarray(Image.fromarray(f).resize((thumb_w, THUMB_HEIGHT_PX), Image.Resampling.BILINEAR)) for f in frames
    ]
    gap = np.full((THUMB_HEIGHT_PX, 2, 3), 255, dtype=np.uint8)
    cut = np.zeros((THUMB_HEIGHT_PX, 6, 3), dtype=np.uint8)
    cut[:, :, 0] = 220  # a red bar marks the cut
    parts = [thumbs[0]]
    for i, thumb in enumerate(thumbs[1:], start=1):
        parts += [cut if i == gap_after else gap, thumb]
    return png_bytes(np.concatenate(parts, axis=1))


def _settings(plan: dict[str, Any] | None) -> dict[str, str]:
    """The settings a model ran with, as the plan recorded them (empty without a plan)."""
    if not plan:
        return {}
    frames = sorted({int(c["num_frames"]) for c in plan.get("clips", []) if "num_frames" in c})
    return {
        "preset": preset_note(plan),
        "size": f"{plan.get('width')}x{plan.get('height')}",
        "frames": ", ".join(map(str, frames)) or "n/a",
        "fps": str(plan.get("fps", "n/a")),
        "steps": str(plan.get("steps", "n/a")),
        "guidance": str(plan.get("guidance_scale", "n/a")),
    }


def _clip_timings(ok_logs: list[ClipLog], reused: set[int]) -> list[ClipTiming]:
    timings = []
    for log in ok_logs:
        t = log.timings_s
        denoise, decode = t.denoise_s or 0.0, t.decode_s or 0.0
        other = max((t.total_s or 0.0) - denoise - decode, 0.0)
        timings.append(ClipTiming(log.index, denoise, decode, other, log.index in reused))
    return timings


def _reused_clips(run_dir: Path, sweep_run: dict[str, Any] | None) -> set[int]:
    """Indices of the clips the sweep job reused from an earlier session (``clip-reused`` events in
    ``events.jsonl`` since the job started, vgkit.records.events)."""
    started = (sweep_run or {}).get("started_at_s")
    if not isinstance(started, int | float):
        return set()
    return {
        e.clip_index
        for e in read_events(run_dir, since=started)
        if e.stage == "clip-reused" and e.clip_index is not None
    }


def _prompt_match(run_dir: Path, ok_logs: list[ClipLog]) -> tuple[float | None, list[dict[str, Any]], str]:
    """Run score, per-clip scores and a note, from ``prompt_match.json`` (vgkit.evaluate.clip_score)."""
    record = read_json_object(run_dir / "prompt_match.json")
    if record is None:
        return None, [], "not scored (no prompt_match.json)" if ok_logs else "n/a (no finished clip)"
    if record.get("status") != "scored":
        return None, [], f"not scored: {record.get('reason')}"
    commit = str(record.get("commit") or "")[:12]
    note = f"{record.get('model')} ({record.get('repo_id')}@{commit})"
    return record.get("run_score"), list(record.get("clips", [])), note


def _latency(
    sweep_run: dict[str, Any] | None, failure: dict[str, Any] | None, ok_logs: list[ClipLog], reused: int
) -> tuple[float | None, str]:
    """The run's first-generation time and where it comes from (see the module docstring)."""
    from_logs = ((ok_logs[0].load_s or 0.0) if ok_logs else 0.0) + sum(g.timings_s.total_s or 0.0 for g in ok_logs)
    if sweep_run and sweep_run.get("wall_s") is not None and not reused:
        return float(sweep_run["wall_s"]), "sweep wall time"
    first = (sweep_run or {}).get("first_run") or {}
    if reused and first.get("status") == "completed" and first.get("wall_s") is not None:
        return float(first["wall_s"]), "the first session's sweep wall time; this session resumed"
    if ok_logs and reused:
        return from_logs, "first-run clip logs (model load + clips); this session resumed"
    if failure and failure.get("elapsed_s") is not None:
        return float(failure["elapsed_s"]), "failure record"
    if ok_logs:
        return from_logs, "model load + clips (logs)"
    return None, "n/a"


def _verdict(
    status: str, qa: dict[str, Any] | None, failure: dict[str, Any] | None, kind: str | None, done: str
) -> str:
    """One sentence from the QA findings (completed) or the failure kind and message."""
    findings = [v for v in (qa or {}).get("verdicts", []) if v != "ok"]
    qa_part = f"QA: {'; '.join(findings)}" if findings else "QA found nothing wrong"
    if status == "completed":
        return f"Rendered a valid MP4 ({done}); {qa_part}."
    if failure is None:
        return (
            f"{done}; no failure record" + (f"; {qa_part}" if qa else "")
            if status == "partial"
            else "no failure record"
        )
    first = (str(failure.get("message", "")).strip().splitlines() or [""])[0]
    reason = f"{kind_sentence(kind or 'other')} ({failure.get('error_class', 'error')}: {first})"
    return f"{done}; {reason}; {qa_part}" if status == "partial" else reason


def summarize_run(run_dir: Path) -> RunSummary:
    """Read everything a run directory holds about itself (computes ``qa.json`` when missing)."""
    if not run_dir.is_dir():
        raise SpecError(f"run dir '{run_dir}': not a directory; fix: pass run directories made by `vgkit run`")
    layout = RunLayout(run_dir)
    plan = read_json_object(layout.plan)
    logs = read_logs(run_dir, lenient=True)
    ok_logs = [g for g in logs if g.finished_clip(run_dir) is not None]
    failure = read_json_object(run_dir / FAILURE_FILE)
    sweep_run = read_json_object(run_dir / SWEEP_RUN_FILE)
    completed = layout.manifest.is_file() and layout.final.is_file() and failure is None
    status = "completed" if completed else ("partial" if ok_logs else "failed")
    kind = failure_kind(failure) if failure else None
    if kind == "infeasible":
        status = "infeasible"  # refused by the cost planner before any GPU time was spent
    qa = read_json_object(run_dir / "qa.json")
    if qa is None and ok_logs:
        from vgkit.evaluate.qa import run_qa

        qa = run_qa(run_dir)
    model = (
        (plan or {}).get("model")
        or (ok_logs[0].model.name if ok_logs and ok_logs[0].model else None)
        or (failure or {}).get("model")
        or run_dir.name
    )
    reused = _reused_clips(run_dir, sweep_run)
    latency, source = _latency(sweep_run, failure, ok_logs, len(reused))
    prompt_match, prompt_clips, prompt_note = _prompt_match(run_dir, ok_logs)
    done = f"{len(ok_logs)} of {len((plan or {}).get('clips', [])) or '?'} clips finished"
    memory = [g.memory or {} for g in ok_logs]
    rss = [m["peak_rss_bytes"] for m in memory if "peak_rss_bytes" in m]
    gpu_mem = [m["peak_gpu_allocated_bytes"] for m in memory if "peak_gpu_allocated_bytes" in m]
    segments, timeline_source = _segments(run_dir, sweep_run, ok_logs)
    if reused:
        timeline_source += f" (the resumed session: {len(reused)} clip(s) reused, not regenerated)"
    return RunSummary(
        run_dir=run_dir,
        model=str(model),
        status=status,
        latency_s=latency,
        latency_source=source,
        clips_done=len(ok_logs),
        prompt_match=prompt_match,
        verdict=_verdict(status, qa, failure, kind, done),
        failure=failure,
        clip_failures=[g for g in logs if g.status != "ok"],
        peak_rss_bytes=max(rss) if rss else None,
        peak_gpu_bytes=max(gpu_mem) if gpu_mem else None,
        gpu=_gpu_stats(sweep_run, logs),
        segments=segments,
        timeline_source=timeline_source,
        qa=qa,
        filmstrips=_filmstrips(layout, ok_logs),
        preset=preset_note(plan),
        kind=kind,
        prompt_clips=prompt_clips,
        prompt_note=prompt_note,
        settings=_settings(plan),
        clip_timings=_clip_timings(ok_logs, reused),
        clip_videos={g.index: path for g in ok_logs if (path := g.finished_clip(run_dir)) is not None},
        reused_clips=len(reused),
        resumed_s=float(sweep_run["wall_s"]) if reused and sweep_run and sweep_run.get("wall_s") is not None else None,
        placements=read_placements(run_dir.name, str(model), sweep_run),
    )


def fmt(value: float | int | None, unit: str = "", digits: int = 2) -> str:
    """A number with its unit, or "n/a"."""
    return "n/a" if value is None else f"{value:.{digits}f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def clip_failure(log: ClipLog) -> str:
    """``clip N: <status> [<failure kind>]: <message>`` for a clip log whose status is not ok."""
    kind = f" [{log.failure.kind}]" if log.failure else ""
    return f"clip {log.index}: {log.status}{kind}: {log.failure.message if log.failure else 'no message'}"


def fmt_bytes(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**30:.2f} GiB"


def cost(duration_s: float, usd_per_hour: float | None) -> str:
    return "n/a" if usd_per_hour is None else f"${duration_s / 3600 * usd_per_hour:.4f}"


QA_COLUMNS = (
    "Model",
    "Clip",
    "Mean luma",
    "Black frames",
    "Motion",
    "Sharpness",
    "Drift (ΔE)",
    "Prompt match",  # out of 10 (prompt_match.json), as in the outcome table
    "Verdict",
)


def qa_rows(runs: list[RunSummary]) -> list[tuple[str, ...]]:
    """One row of ``QA_COLUMNS`` per measured clip of each run, seams folded into the clip they enter."""
    rows: list[tuple[str, ...]] = []
    for r in runs:
        seams = {s["index"]: s for s in (r.qa or {}).get("seams", [])}
        for c in (r.qa or {}).get("clips", []):
            seam = seams.get(c["index"])
            verdicts = [v for v in c["verdicts"] if v != "ok"]
            if seam and seam["visible"]:
                verdicts.append(f"visible seam at clip {c['index']} (jump {seam['jump']:.1f}, x{seam['ratio']:.1f})")
            rows.append(
                (
                    r.label,
                    str(c["index"]),
                    fmt(c["mean_luma"], digits=1),
                    f"{c['black_frame_share']:.0%}",
                    fmt(c["motion"]),
                    fmt(c["sharpness"], digits=0),
                    fmt(c["drift_delta_e"], digits=1),
                    "n/a" if (score := r.prompt_score(c["index"])) is None else f"{score:.1f}/10",
                    "; ".join(verdicts) or "ok",
                )
            )
    return rows
