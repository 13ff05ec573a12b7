"""The sweep report as Markdown, in the seed report's form: header, Model Outcomes, Operational
Notes, Recommendations; then prompt match, shots across models, failures, QA, timings, filmstrips.

Diff-friendly: one fact per line, no wall-clock time of writing (the header's date is the sweep's
start), rows in the order the models ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from vgkit.evaluate.report.header import SweepHeader, header_items
from vgkit.evaluate.report.placements import (
    PLACEMENT_COLUMNS,
    Segment,
    gpu_timelines,
    placement_rows,
    placement_summary,
)
from vgkit.evaluate.report.recommend import recommend
from vgkit.evaluate.report.summary import (
    QA_COLUMNS,
    SETTINGS,
    RunSummary,
    clip_failure,
    cost,
    fmt,
    fmt_bytes,
    qa_rows,
)
from vgkit.evaluate.shot_board import boards_markdown

__all__ = [
    "OPERATIONAL_COLUMNS",
    "SECTIONS",
    "latency_cell",
    "operational_row",
    "operational_summary",
    "prompt_cell",
    "render_markdown",
]

OUTCOME_COLUMNS = ("Model", "Status", "Latency", "Prompt Match", "Verdict")
OPERATIONAL_COLUMNS = (
    "Preset",
    "Peak RSS",
    "Peak GPU memory",
    "Mean GPU utilisation",
    "Peak temperature",
    "Overlapping-job samples",
)
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


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], *, right: str = "") -> list[str]:
    """A Markdown table; ``right`` marks right-aligned columns with "r" (``"lrr"``)."""
    align = ["---:" if right[i : i + 1] == "r" else "---" for i in range(len(head))]
    return [_row(head), _row(align), *(_row(row) for row in rows)]


def latency_cell(r: RunSummary) -> str:
    """``343.94s``; on a resumed run the first run's time, then the resumed session's."""
    text = fmt(r.latency_s, "s")
    return f"{text} (resumed session {r.resumed_s:.2f}s)" if r.resumed_s is not None else text


def prompt_cell(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.1f}/10"


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


def operational_row(r: RunSummary) -> tuple[str, ...]:
    """A run's ``OPERATIONAL_COLUMNS``."""
    g = r.gpu or {}
    return (
        r.preset,
        fmt_bytes(r.peak_rss_bytes),
        fmt_bytes(r.peak_gpu_bytes),
        fmt(g.get("mean_util_pct"), "%", 1),
        fmt(g.get("peak_temp_c"), " C"),
        fmt(g.get("overlap_samples")),
    )


def _operational(runs: list[RunSummary]) -> list[str]:
    lines = [f"- {line}" for line in operational_summary(runs)]
    for r in runs:
        notes = (f"{c[0].lower()}{c[1:]} {v}" for c, v in zip(OPERATIONAL_COLUMNS, operational_row(r), strict=True))
        lines.append(f"- **{r.label}**: " + _cell(", ".join(notes)))
    placements = [p for r in runs for p in r.placements]
    lines += [f"- {line}" for line in placement_summary(placements)]
    if placements:
        lines += ["", *_table(PLACEMENT_COLUMNS, placement_rows(placements))]
    return lines


def _billing(segments: Sequence[Segment], usd_per_hour: float | None, *, total: str, total_s: float) -> list[str]:
    rows = [(s.label, f"{s.start_s:.2f}s", f"{s.duration_s:.2f}s", cost(s.duration_s, usd_per_hour)) for s in segments]
    return [
        *_table(("Segment", "Start", "Duration", "Cost"), rows, right="lrrr"),
        f"| {total} | | {total_s:.2f}s | {cost(total_s, usd_per_hour)} |",
        "",
    ]


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
        lines += [f"#### {_cell(t.where)}", ""]
        lines += _billing(t.segments, usd_per_hour, total=f"**billed** ({t.busy_share:.0%} busy)", total_s=t.billed_s)
    return lines


def _shots(runs: list[RunSummary], out: Path | None) -> list[str]:
    """One row per shot, one column per model: a link to the clip and its prompt match."""
    with_clips = [r for r in runs if r.clip_videos]
    if not with_clips:
        return ["No model finished a clip."]

    def cell(r: RunSummary, i: int) -> str:
        video = r.clip_videos.get(i)
        if video is None:
            return "not made"
        link = os.path.relpath(video, out) if out is not None else str(video)
        return f"[clip {i}]({Path(link).as_posix()}) {prompt_cell(r.prompt_score(i))}"

    indices = sorted({i for r in with_clips for i in r.clip_videos})
    shots = [(str(i), *(cell(r, i) for r in with_clips)) for i in indices]
    settings = [(r.label, *(r.settings[k] for k in SETTINGS)) for r in runs if r.settings]
    head = ("Model", "Preset", "Size", "Frames", "FPS", "Steps", "Guidance")
    return [*_table(("Shot", *(r.label for r in with_clips)), shots), "", *_table(head, settings, right="lllrrrr")]


def _timings(runs: list[RunSummary]) -> list[str]:
    rows = [
        (
            r.label,
            str(t.index),
            f"{t.denoise_s:.2f}s",
            f"{t.decode_s:.2f}s",
            f"{t.other_s:.2f}s",
            "yes" if t.reused else "no",
        )
        for r in runs
        for t in r.clip_timings
    ]
    head = ("Model", "Clip", "Denoise", "VAE decode", "Encode + save", "Reused")
    return [
        "First generation of each clip (a resumed run keeps the timings of the run that made the clip).",
        "",
        *_table(head, rows, right="lrrrr"),
    ]


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

    header = header or SweepHeader()
    lines = [f"# {header.title}", ""]
    lines += [f"- {k}: {v}" for k, v in header_items(runs, header, usd_per_hour=usd_per_hour, code=lambda s: f"`{s}`")]
    outcomes = [(r.label, r.status, latency_cell(r), prompt_cell(r.prompt_match), r.verdict) for r in runs]
    lines += ["", "## Model Outcomes", "", *_table(OUTCOME_COLUMNS, outcomes, right="llrr")]
    lines += ["", "## Operational Notes", "", *_operational(runs)]
    recommendations = recommend(runs)
    lines += ["", "## Recommendations", ""]
    lines += [f"- {_cell(rec.line())}" for rec in recommendations] or ["- None: no failure and no weak prompt match."]
    lines += ["", "## Prompt Match", "", f"- Scale: {MAPPING}.", f"- Limits: {LIMITS}."]
    lines += [f"- **{r.label}**: {_cell(r.prompt_note)}" for r in runs]
    lines += ["", "## Shots Across Models", "", *_shots(runs, out)]
    boards = boards_markdown([r.run_dir for r in runs], out=out, labels={r.run_dir: r.label for r in runs})
    lines += ["", "## Shot Boards", "", *boards]  # shot_board.py
    lines += ["", "## Failure Details", ""]
    failed = [r for r in runs if r.failure or r.clip_failures or r.status != "completed"]
    for r in failed:
        f = r.failure or {}
        lines.append(
            f"- **{r.label}** ({r.run_dir.name}): {f.get('error_class', 'no failure record')}"
            f"{' [' + r.kind + ']' if r.kind else ''} at stage {f.get('stage', 'n/a')}: "
            f"{_cell(f.get('message', 'the run dir has no finished clip and no failure.json'))}"
        )
        lines += [f"  - {_cell(clip_failure(g))}" for g in r.clip_failures]
    if not failed:
        lines.append("None.")
    lines += ["", "## QA Per Clip", "", *_table(QA_COLUMNS, qa_rows(runs))]
    lines += ["", "## Timing Breakdown", "", *_timings(runs)]
    rate = "no rate given" if usd_per_hour is None else f"${usd_per_hour:.2f}/hour"
    lines += ["", f"## Billing Timeline ({rate})", ""]
    for r in runs:
        lines += [f"### {r.label}", "", f"Source: {r.timeline_source}.", ""]
        lines += _billing(r.segments, usd_per_hour, total="**total**", total_s=sum(s.duration_s for s in r.segments))
    lines += _gpu_billing(runs, usd_per_hour)
    lines += ["## Filmstrips", ""]
    for r in runs:
        lines += [f"### {r.label}", ""]
        lines += [f"![{label}]({images[f'{r.run_dir.name}/{label}']})  " for label, _ in r.filmstrips] or ["n/a"]
        lines.append("")
    return "\n".join(lines)
