"""The sweep report as Markdown, in the seed report's form: header, Model Outcomes, Operational
Notes, Recommendations; then prompt match, shots across models, failures, QA, timings, filmstrips.

Diff-friendly: one fact per line, no wall-clock time of writing (the header's date is the sweep's
start), rows in the order the models ran.
"""

from __future__ import annotations

import os
from pathlib import Path

from vgkit.evaluate.report.header import SweepHeader, best_completed
from vgkit.evaluate.report.placements import (
    PLACEMENT_COLUMNS,
    gpu_timelines,
    placement_rows,
    placement_summary,
)
from vgkit.evaluate.report.recommend import recommend
from vgkit.evaluate.report.summary import (
    QA_COLUMNS,
    RunSummary,
    clip_failure,
    cost,
    fmt,
    fmt_bytes,
    qa_rows,
)
from vgkit.evaluate.shot_board import boards_markdown

__all__ = [
    "HEADER_FIELDS",
    "OUTCOME_COLUMNS",
    "SECTIONS",
    "latency_cell",
    "operational_summary",
    "prompt_cell",
    "render_markdown",
]

HEADER_FIELDS = (
    "Published",
    "Run ID",
    "Remote movie directory",
    "Models tested",
    "Completed",
    "Failed",
    "Best completed model",
    "Best-model rule",
)
OUTCOME_COLUMNS = ("Model", "Status", "Latency", "Prompt Match", "Verdict")
SECTIONS = (
    "Model Outcomes",
    "Operational Notes",
    "Recommendations",
    "Prompt Match",
    "Shots Across Models",
    "Shot Boards",
    "Failure Details",
    "QA Per Clip",
    "Timing Breakdown",
    "Billing Timeline",
    "Filmstrips",
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def latency_cell(r: RunSummary) -> str:
    """``343.94s``; on a resumed run the first run's time, then the resumed session's."""
    text = fmt(r.latency_s, "s")
    return f"{text} (resumed session {r.resumed_s:.2f}s)" if r.resumed_s is not None else text


def prompt_cell(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.1f}/10"


def _header(runs: list[RunSummary], header: SweepHeader, usd_per_hour: float | None) -> list[str]:
    best, rule = best_completed(runs, usd_per_hour=usd_per_hour)
    completed = sum(r.status == "completed" for r in runs)
    remote = f"`{header.remote_dir}`" if header.remote_dir else "n/a (ran locally)"
    values = (
        header.published,
        f"`{header.run_id}`" if header.run_id.split(" ")[0] != "n/a" else header.run_id,
        remote,
        str(len(runs)),
        str(completed),
        str(len(runs) - completed),
        best.model if best else "none",
        rule,
    )
    return [f"# {header.title}", "", *(f"- {k}: {v}" for k, v in zip(HEADER_FIELDS, values, strict=True)), ""]


def operational_summary(runs: list[RunSummary]) -> list[str]:
    """The seed report's three operational lines, over every run's GPU samples."""

    def measured(key: str) -> list[float]:
        return [float(v) for r in runs if (v := (r.gpu or {}).get(key)) is not None]

    utils, temps, overlap = measured("mean_util_pct"), measured("peak_temp_c"), measured("overlap_samples")
    return [
        f"Average GPU utilization during sampled run: {fmt(sum(utils) / len(utils), '%', 1) if utils else 'n/a'}.",
        f"Peak temperature: {fmt(float(max(temps)), 'C', 1) if temps else 'n/a'}.",
        f"Multi-generator overlap samples: {round(sum(overlap)) if overlap else 'n/a'}.",
    ]


def _operational(runs: list[RunSummary]) -> list[str]:
    lines = [f"- {line}" for line in operational_summary(runs)]
    for r in runs:
        g = r.gpu or {}
        lines.append(
            f"- **{r.model}**: preset {_cell(r.preset)}, peak RSS {fmt_bytes(r.peak_rss_bytes)}, "
            f"peak GPU memory {fmt_bytes(r.peak_gpu_bytes)}, "
            f"mean GPU utilisation {fmt(g.get('mean_util_pct'), '%', 1)}, peak temperature "
            f"{fmt(g.get('peak_temp_c'), ' C')}, overlapping-job samples {fmt(g.get('overlap_samples'))}"
        )
    placements = [p for r in runs for p in r.placements]
    lines += [f"- {line}" for line in placement_summary(placements)]
    if placements:
        lines += ["", "| " + " | ".join(PLACEMENT_COLUMNS) + " |", "|" + " --- |" * len(PLACEMENT_COLUMNS)]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in placement_rows(placements)]
    return lines


def _gpu_billing(runs: list[RunSummary], usd_per_hour: float | None) -> list[str]:
    """Each GPU's billed time on Ray, from the sweep's first start to its last end (report.placements)."""
    timelines = gpu_timelines([p for r in runs for p in r.placements])
    if not timelines:
        return []
    lines = [
        "### Per GPU (Ray)",
        "",
        "Each GPU from the sweep's first start to its last end: its runs and idle time.",
        "",
    ]
    for t in timelines:
        busy = t.busy_s / t.billed_s if t.billed_s else 0.0
        lines += [f"#### {_cell(t.where)}", "", "| Segment | Start | Duration | Cost |", "| --- | ---: | ---: | ---: |"]
        lines += [
            f"| {_cell(s.label)} | {s.start_s:.2f}s | {s.duration_s:.2f}s | {cost(s.duration_s, usd_per_hour)} |"
            for s in t.segments
        ]
        lines += [f"| **billed** ({busy:.0%} busy) | | {t.billed_s:.2f}s | {cost(t.billed_s, usd_per_hour)} |", ""]
    return lines


def _shots(runs: list[RunSummary], out: Path | None) -> list[str]:
    """One row per shot, one column per model: a link to the clip and its prompt match."""
    with_clips = [r for r in runs if r.clip_videos]
    if not with_clips:
        return ["No model finished a clip."]
    indices = sorted({i for r in with_clips for i in r.clip_videos})
    lines = ["| Shot | " + " | ".join(_cell(r.model) for r in with_clips) + " |"]
    lines.append("| --- |" + " --- |" * len(with_clips))
    for i in indices:
        cells = []
        for r in with_clips:
            video = r.clip_videos.get(i)
            score = next((c["score"] for c in r.prompt_clips if c["index"] == i), None)
            if video is None:
                cells.append("not made")
                continue
            link = os.path.relpath(video, out) if out is not None else str(video)
            cells.append(f"[clip {i}]({Path(link).as_posix()}) {prompt_cell(score)}")
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| Model | Preset | Size | Frames | FPS | Steps | Guidance |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        s = r.settings
        if s:
            lines.append(
                f"| {_cell(r.model)} | {_cell(s['preset'])} | {s['size']} | {s['frames']} | {s['fps']} | "
                f"{s['steps']} | {s['guidance']} |"
            )
    return lines


def _timings(runs: list[RunSummary]) -> list[str]:
    lines = ["First generation of each clip (a resumed run keeps the timings of the run that made the clip).", ""]
    lines += [
        "| Model | Clip | Denoise | VAE decode | Encode + save | Reused |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        lines += [
            f"| {_cell(r.model)} | {t.index} | {t.denoise_s:.2f}s | {t.decode_s:.2f}s | {t.other_s:.2f}s | "
            f"{'yes' if t.reused else 'no'} |"
            for t in r.clip_timings
        ]
    return lines


def render_markdown(
    runs: list[RunSummary],
    *,
    usd_per_hour: float | None,
    images: dict[str, str],
    header: SweepHeader | None = None,
    out: Path | None = None,
) -> str:
    """The Markdown report; ``images`` maps "<run>/<strip label>" to a relative PNG path and
    ``out`` (the report folder) makes clip links relative."""
    from vgkit.evaluate.clip_score import LIMITS, MAPPING

    header = header or SweepHeader("Model sweep report", "n/a", "n/a", None)
    lines = _header(runs, header, usd_per_hour)
    lines += ["## Model Outcomes", "", "| " + " | ".join(OUTCOME_COLUMNS) + " |", "| --- | --- | ---: | ---: | --- |"]
    for r in runs:
        cells = (_cell(r.model), r.status, latency_cell(r), prompt_cell(r.prompt_match), _cell(r.verdict))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Operational Notes", "", *_operational(runs)]
    recommendations = recommend(runs)
    lines += ["", "## Recommendations", ""]
    lines += [f"- {_cell(rec.line())}" for rec in recommendations] or ["- None: no failure and no weak prompt match."]
    lines += ["", "## Prompt Match", "", f"- Scale: {MAPPING}.", f"- Limits: {LIMITS}."]
    lines += [f"- **{r.model}**: {_cell(r.prompt_note)}" for r in runs]
    lines += ["", "## Shots Across Models", "", *_shots(runs, out)]
    lines += ["", "## Shot Boards", "", *boards_markdown([r.run_dir for r in runs], out=out)]  # shot_board.py
    lines += ["", "## Failure Details", ""]
    failed = [r for r in runs if r.failure or r.clip_failures or r.status != "completed"]
    for r in failed:
        f = r.failure or {}
        lines.append(
            f"- **{r.model}** ({r.run_dir.name}): {f.get('error_class', 'no failure record')}"
            f"{' [' + r.kind + ']' if r.kind else ''} at stage {f.get('stage', 'n/a')}: "
            f"{_cell(f.get('message', 'the run dir has no finished clip and no failure.json'))}"
        )
        lines += [f"  - {_cell(clip_failure(g))}" for g in r.clip_failures]
    if not failed:
        lines.append("None.")
    lines += ["", "## QA Per Clip", "", "| " + " | ".join(QA_COLUMNS) + " |", "|" + " --- |" * len(QA_COLUMNS)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in qa_rows(runs)]
    lines += ["", "## Timing Breakdown", "", *_timings(runs)]
    rate = "no rate given" if usd_per_hour is None else f"${usd_per_hour:.2f}/hour"
    lines += ["", f"## Billing Timeline ({rate})", ""]
    for r in runs:
        total = sum(s.duration_s for s in r.segments)
        lines += [f"### {r.model}", "", f"Source: {r.timeline_source}.", ""]
        lines += ["| Segment | Start | Duration | Cost |", "| --- | ---: | ---: | ---: |"]
        lines += [
            f"| {s.label} | {s.start_s:.2f}s | {s.duration_s:.2f}s | {cost(s.duration_s, usd_per_hour)} |"
            for s in r.segments
        ]
        lines += [f"| **total** | | {total:.2f}s | {cost(total, usd_per_hour)} |", ""]
    lines += _gpu_billing(runs, usd_per_hour)
    lines += ["## Filmstrips", ""]
    for r in runs:
        lines += [f"### {r.model}", ""]
        lines += [f"![{label}]({images[f'{r.run_dir.name}/{label}']})  " for label, _ in r.filmstrips] or ["n/a"]
        lines.append("")
    return "\n".join(lines)
