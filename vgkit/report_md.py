"""The sweep report as Markdown: the seed report's table, then failures, QA, billing, filmstrips."""

from __future__ import annotations

from vgkit.report import QA_COLUMNS, RunSummary, best_completed, clip_failure, cost, fmt, fmt_bytes, qa_rows

__all__ = ["render_markdown"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(runs: list[RunSummary], *, usd_per_hour: float | None, images: dict[str, str]) -> str:
    """The Markdown report; ``images`` maps "<run>/<strip label>" to a relative PNG path."""
    best = best_completed(runs)
    lines = [
        "# Model sweep report",
        "",
        f"- Models tested: {len(runs)}",
        f"- Completed: {sum(r.status == 'completed' for r in runs)}",
        f"- Failed: {sum(r.status == 'failed' for r in runs)}",
        f"- Partial: {sum(r.status == 'partial' for r in runs)}",
        f"- Infeasible (refused by the cost planner): {sum(r.status == 'infeasible' for r in runs)}",
        f"- Best completed model: {best.model if best else 'none'}",
        "",
        "## Model Outcomes",
        "",
        "| Model | Status | Latency | Prompt Match | Verdict |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for r in runs:
        lines.append(
            f"| {_cell(r.model)} | {r.status} | {fmt(r.latency_s, 's')} | {fmt(r.prompt_match)} | {_cell(r.verdict)} |"
        )
    lines += ["", "## Failure Details", ""]
    failed = [r for r in runs if r.failure or r.clip_failures or r.status != "completed"]
    for r in failed:
        f = r.failure or {}
        lines.append(
            f"- **{r.model}** ({r.run_dir.name}): {f.get('error_class', 'no failure record')}"
            f"{' [' + f['kind'] + ']' if f.get('kind') else ''} at stage {f.get('stage', 'n/a')}: "
            f"{_cell(f.get('message', 'the run dir has no finished clip and no failure.json'))}"
        )
        lines += [f"  - {_cell(clip_failure(g))}" for g in r.clip_failures]
    if not failed:
        lines.append("None.")
    lines += ["", "## Operational Notes", ""]
    for r in runs:
        g = r.gpu or {}
        lines.append(
            f"- **{r.model}**: preset {_cell(r.preset)}, peak RSS {fmt_bytes(r.peak_rss_bytes)}, "
            f"peak GPU memory {fmt_bytes(r.peak_gpu_bytes)}, "
            f"mean GPU utilisation {fmt(g.get('mean_util_pct'), '%', 1)}, peak temperature "
            f"{fmt(g.get('peak_temp_c'), ' C')}, overlapping-job samples {fmt(g.get('overlap_samples'))}"
        )
    lines += ["", "## QA Per Clip", "", "| " + " | ".join(QA_COLUMNS) + " |", "|" + " --- |" * len(QA_COLUMNS)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in qa_rows(runs)]
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
    lines += ["## Filmstrips", ""]
    for r in runs:
        lines += [f"### {r.model}", ""]
        lines += [f"![{label}]({images[f'{r.run_dir.name}/{label}']})  " for label, _ in r.filmstrips] or ["n/a"]
        lines.append("")
    return "\n".join(lines)
