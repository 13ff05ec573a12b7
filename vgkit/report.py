"""The sweep report: one row per run directory, as Markdown and as a self-contained HTML page.

Input is run directories as ``vgkit run`` / ``vgkit sweep`` leave them: ``plan.json``,
``logs/log_NNN.json`` (``timings_s``, ``memory``, optional ``status``/``failure``), ``clips/``,
``final/``, ``manifest.json``, and when present ``qa.json`` (vgkit.qa), ``failure.json`` and
``sweep_run.json`` (vgkit.sweep). Status is:

- ``completed``: ``manifest.json`` and the final video exist and no ``failure.json``;
- ``partial``: some clips finished, but no final video (or a failure came after them);
- ``failed``: no finished clip; the failure record, if any, says why.

Nothing is estimated: a value no record holds is shown as "n/a".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vgkit.artifacts import RunLayout, atomic_write_bytes, atomic_write_json, read_json_object
from vgkit.errors import SpecError
from vgkit.events import read_events
from vgkit.records import ClipLog, read_logs
from vgkit.sweep import FAILURE_FILE, SWEEP_RUN_FILE

__all__ = [
    "QA_COLUMNS",
    "REPORT_SCHEMA",
    "RunSummary",
    "Segment",
    "qa_rows",
    "summarize_run",
    "write_report",
]

REPORT_SCHEMA = "vgkit.report/1"
FILMSTRIP_FRAMES = 4  # frames shown per clip
THUMB_HEIGHT_PX = 72

# Events (vgkit.events) that open a billing segment (see Segment), by stage.
_MARKERS = {"load": "model load", "clip-start": "clip", "stitch": "stitch + manifest + bundle", "qa": "qa"}


@dataclass(frozen=True)
class Segment:
    """A stretch of a run's wall time: ``label`` from ``start_s`` for ``duration_s`` seconds."""

    label: str
    start_s: float
    duration_s: float


@dataclass
class RunSummary:
    """What the report says about one run directory."""

    run_dir: Path
    model: str
    status: str
    latency_s: float | None
    latency_source: str
    clips_done: int
    clips_planned: int | None
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
                marks.append((event.at - started, f"clip {event.clip_index}" if label == "clip" else label))
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
    if not samples:
        per_clip = [t for g in logs if (t := g.gpu_telemetry or {}).get("available")]
        if not per_clip:
            return None
        # A metric the GPU does not report is None in every clip's record (vgkit.telemetry).
        util = [v for t in per_clip if (v := t.get("utilization_pct_mean")) is not None]
        temps = [v for t in per_clip if (v := t.get("temperature_c_max")) is not None]
        memory = [v for t in per_clip if (v := t.get("memory_used_bytes_max")) is not None]
        return {
            "samples": sum(t["samples"] for t in per_clip),
            "mean_util_pct": round(float(np.mean(util)), 1) if util else None,
            "peak_temp_c": max(temps) if temps else None,
            "peak_mem_used_mib": round(max(memory) / 2**20) if memory else None,
        }
    util = [v for s in samples if (v := s.get("utilization_pct")) is not None]
    temps = [v for s in samples if (v := s.get("temperature_c")) is not None]
    used = [v for s in samples if (v := s.get("memory_used_bytes")) is not None]
    return {
        "samples": len(samples),
        "mean_util_pct": round(float(np.mean(util)), 1) if util else None,
        "peak_temp_c": max(temps) if temps else None,
        "peak_mem_used_mib": round(max(used) / 2**20) if used else None,
        "overlap_samples": sum(1 for s in samples if s.get("compute_apps", 0) > 1),
    }


def _filmstrips(layout: RunLayout, ok_logs: list[ClipLog]) -> list[tuple[str, bytes]]:
    """PNG strips: a few frames of each clip, then the frames either side of each seam."""
    from vgkit.encode import read_frames

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

    from vgkit.images import png_bytes

    h, w = frames[0].shape[:2]
    thumb_w = max(1, round(w * THUMB_HEIGHT_PX / h))
    thumbs = [
        np.asarray(Image.fromarray(f).resize((thumb_w, THUMB_HEIGHT_PX), Image.Resampling.BILINEAR)) for f in frames
    ]
    gap = np.full((THUMB_HEIGHT_PX, 2, 3), 255, dtype=np.uint8)
    cut = np.zeros((THUMB_HEIGHT_PX, 6, 3), dtype=np.uint8)
    cut[:, :, 0] = 220  # a red bar marks the cut
    parts: list[np.ndarray] = []
    for i, thumb in enumerate(thumbs):
        if i:
            parts.append(cut if gap_after is not None and i == gap_after else gap)
        parts.append(thumb)
    return png_bytes(np.concatenate(parts, axis=1))


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
    if (failure or {}).get("error_class") == "InfeasiblePlanError":
        status = "infeasible"  # refused by the cost planner before any GPU time was spent
    qa = read_json_object(run_dir / "qa.json")
    if qa is None and ok_logs:
        from vgkit.qa import run_qa

        qa = run_qa(run_dir)
    model = (
        (plan or {}).get("model")
        or (ok_logs[0].model.name if ok_logs and ok_logs[0].model else None)
        or (failure or {}).get("model")
        or run_dir.name
    )
    if sweep_run and sweep_run.get("wall_s") is not None:
        latency, source = float(sweep_run["wall_s"]), "sweep wall time"
    elif failure and failure.get("elapsed_s") is not None:
        latency, source = float(failure["elapsed_s"]), "failure record"
    elif ok_logs:
        latency = (ok_logs[0].load_s or 0.0) + sum(g.timings_s.total_s or 0.0 for g in ok_logs)
        source = "model load + clips (logs)"
    else:
        latency, source = None, "n/a"
    scores = [c["prompt_match"] for c in (qa or {}).get("clips", []) if c.get("prompt_match") is not None]
    verdict = "; ".join((qa or {}).get("verdicts", []))
    if status != "completed":
        reason = f"{failure['error_class']}: {failure['message']}" if failure else "no failure record"
        done = f"{len(ok_logs)} of {len((plan or {}).get('clips', [])) or '?'} clips finished"
        verdict = (
            reason if status in ("failed", "infeasible") else f"{done}; {reason}" + (f"; {verdict}" if verdict else "")
        )
    memory = [g.memory or {} for g in ok_logs]
    rss = [m["peak_rss_bytes"] for m in memory if "peak_rss_bytes" in m]
    gpu_mem = [m["peak_gpu_allocated_bytes"] for m in memory if "peak_gpu_allocated_bytes" in m]
    segments, timeline_source = _segments(run_dir, sweep_run, ok_logs)
    return RunSummary(
        run_dir=run_dir,
        model=str(model),
        status=status,
        latency_s=latency,
        latency_source=source,
        clips_done=len(ok_logs),
        clips_planned=len(plan["clips"]) if plan else None,
        prompt_match=round(float(np.mean(scores)), 2) if scores else None,
        verdict=verdict or "n/a",
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


def best_completed(runs: list[RunSummary]) -> RunSummary | None:
    """Best completed run: highest prompt match, then fewest QA findings, then lowest latency."""
    done = [r for r in runs if r.status == "completed"]

    def key(r: RunSummary) -> tuple[float, int, float]:
        findings = len([v for v in (r.qa or {}).get("verdicts", []) if v != "ok"])
        return (-(r.prompt_match or 0.0), findings, r.latency_s or 0.0)

    return min(done, key=key) if done else None


QA_COLUMNS = (
    "Model",
    "Clip",
    "Mean luma",
    "Black frames",
    "Motion",
    "Sharpness",
    "Drift (ΔE)",
    "Prompt match",
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
                    r.model,
                    str(c["index"]),
                    fmt(c["mean_luma"], digits=1),
                    f"{c['black_frame_share']:.0%}",
                    fmt(c["motion"]),
                    fmt(c["sharpness"], digits=0),
                    fmt(c["drift_delta_e"], digits=1),
                    fmt(c["prompt_match"]),
                    "; ".join(verdicts) or "ok",
                )
            )
    return rows


def write_report(run_dirs: list[Path], *, out: Path, usd_per_hour: float | None = None) -> dict[str, Path]:
    """Write ``report.md`` (with ``img/*.png``), ``report.html`` and ``report.json`` into ``out``."""
    from vgkit.report_html import render_html
    from vgkit.report_md import render_markdown

    if usd_per_hour is not None and usd_per_hour < 0:
        raise SpecError(f"usd_per_hour = {usd_per_hour}: must be >= 0; fix: pass the GPU's hourly price")
    runs = [summarize_run(Path(d)) for d in run_dirs]
    images: dict[str, str] = {}
    for r in runs:
        for i, (label, png) in enumerate(r.filmstrips):
            rel = f"img/{r.run_dir.name}-{i:02d}.png"
            atomic_write_bytes(out / rel, png)
            images[f"{r.run_dir.name}/{label}"] = rel
    atomic_write_bytes(out / "report.md", render_markdown(runs, usd_per_hour=usd_per_hour, images=images).encode())
    atomic_write_bytes(out / "report.html", render_html(runs, usd_per_hour=usd_per_hour).encode())
    record = {
        "schema": REPORT_SCHEMA,
        "usd_per_hour": usd_per_hour,
        "runs": [
            {
                "run_dir": str(r.run_dir),
                "model": r.model,
                "status": r.status,
                "latency_s": r.latency_s,
                "prompt_match": r.prompt_match,
                "verdict": r.verdict,
                "failure": r.failure,
                "segments": [vars(s) for s in r.segments],
            }
            for r in runs
        ],
    }
    atomic_write_json(out / "report.json", record)
    return {"markdown": out / "report.md", "html": out / "report.html", "json": out / "report.json"}
