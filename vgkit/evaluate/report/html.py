"""The sweep report as one HTML page: inline CSS, inline SVG charts, PNG data URIs.

The page loads nothing from the network (no scripts, fonts or remote images), so it opens offline.
Clip previews (Shots Across Models) are embedded as data URIs up to ``EMBED_VIDEO_BYTES`` each; a
larger clip plays from its run folder by a relative path (open the page beside the run folders).
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Sequence
from html import escape
from pathlib import Path

from vgkit.evaluate.report.header import SweepHeader, header_items
from vgkit.evaluate.report.markdown import (
    OPERATIONAL_COLUMNS,
    latency_cell,
    operational_row,
    operational_summary,
    prompt_cell,
)
from vgkit.evaluate.report.placements import (
    PLACEMENT_COLUMNS,
    Segment,
    gpu_timelines,
    placement_rows,
    placement_summary,
)
from vgkit.evaluate.report.recommend import recommend
from vgkit.evaluate.report.summary import QA_COLUMNS, SETTINGS, RunSummary, clip_failure, cost, qa_rows
from vgkit.evaluate.shot_board import boards_html, data_uri

__all__ = ["qa_table_html", "render_html"]

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem; color: #1d232a; max-width: 1200px; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.completed { color: #1a7f37; font-weight: 600; } .failed { color: #cf222e; font-weight: 600; }
.partial { color: #9a6700; font-weight: 600; }
figure { margin: .4rem 0; } figcaption { font-size: 12px; color: #57606a; }
svg text { font: 11px system-ui, sans-serif; }
"""

COLOURS = {
    "model load": "#0969da",
    "denoise": "#1a7f37",
    "VAE decode": "#bf8700",
    "encode + save": "#8250df",
    "reused (first run)": "#8c959f",
}
EMBED_VIDEO_BYTES = 4 * 2**20
BAR_WIDTH_PX = 760
LABEL_WIDTH_PX = 150


def _colour(label: str) -> str:
    return next((c for key, c in COLOURS.items() if label.startswith(key)), "#d0d7de")


def _parts(r: RunSummary) -> list[Segment]:
    """A run's first generation as chart parts: model load, then each clip's denoise, VAE decode
    and encode + save (from the clip logs, so a resumed run keeps the timings of its first run)."""
    t, parts = 0.0, []
    load = next((s.duration_s for s in r.segments if s.label == "model load"), 0.0)
    if load:
        parts.append(Segment("model load", 0.0, load))
        t = load
    for c in r.clip_timings:
        for label, seconds in (("denoise", c.denoise_s), ("VAE decode", c.decode_s), ("encode + save", c.other_s)):
            shown = "reused (first run)" if c.reused else label
            parts.append(Segment(f"{shown}: clip {c.index} {label}", t, seconds))
            t += seconds
    return parts


def _timing_chart(runs: list[RunSummary]) -> str:
    """One stacked horizontal bar per run (load, then denoise / decode / encode per clip)."""
    runs_parts = [(r, _parts(r)) for r in runs]
    longest = max((sum(s.duration_s for s in p) for _, p in runs_parts), default=0.0) or 1.0
    scale = BAR_WIDTH_PX / longest
    row_px = 26
    height = row_px * len(runs) + 24
    parts = [f'<svg width="{LABEL_WIDTH_PX + BAR_WIDTH_PX + 80}" height="{height}" role="img">']
    for i, (r, bars) in enumerate(runs_parts):
        y = i * row_px + 4
        parts.append(f'<text x="0" y="{y + 14}">{escape(r.label)}</text>')
        for s in bars:
            x = LABEL_WIDTH_PX + (s.start_s * scale)
            w = max(s.duration_s * scale, 0.5)
            parts.append(
                f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="18" fill="{_colour(s.label)}" stroke="#fff">'
                f"<title>{escape(s.label)}: {s.duration_s:.2f} s</title></rect>"
            )
        total = sum(s.duration_s for s in bars)
        parts.append(f'<text x="{LABEL_WIDTH_PX + total * scale + 4:.1f}" y="{y + 14}">{total:.1f} s</text>')
    legend_y = height - 6
    for j, (key, colour) in enumerate(COLOURS.items()):
        x = LABEL_WIDTH_PX + j * 140
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{legend_y}">{escape(key)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(head: Iterable[str], rows: Iterable[Sequence[str]], *, numeric: Container[int] = ()) -> str:
    """A table; the columns at ``numeric`` are right-aligned numbers."""
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{escape(v)}</td>" for i, v in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{header}</tr>{body}</table>"


def _billing(
    segments: Sequence[Segment], usd_per_hour: float | None, *, total_label: str = "total", total_s: float | None = None
) -> str:
    rows = "".join(
        f"<tr><td>{escape(s.label)}</td><td class=num>{s.start_s:.2f} s</td><td class=num>{s.duration_s:.2f} s</td>"
        f"<td class=num>{cost(s.duration_s, usd_per_hour)}</td></tr>"
        for s in segments
    )
    total = sum(s.duration_s for s in segments) if total_s is None else total_s
    rows += (
        f"<tr><th>{escape(total_label)}</th><td></td><td class=num>{total:.2f} s</td>"
        f"<td class=num>{cost(total, usd_per_hour)}</td>"
    )
    return f"<table><tr><th>Segment</th><th>Start</th><th>Duration</th><th>Cost</th></tr>{rows}</tr></table>"


def qa_table_html(runs: list[RunSummary]) -> str:
    """Every clip's QA measurements and verdicts, one row per clip of each run (``qa_rows``)."""
    rows = qa_rows(runs)
    return _table(QA_COLUMNS, rows, numeric=range(2, 8)) if rows else "<p>n/a</p>"


def _video(path: Path, out: Path | None) -> str:
    """A preview player: the clip embedded when small, else by a path relative to the report."""
    import os

    if path.stat().st_size <= EMBED_VIDEO_BYTES or out is None:
        src = data_uri("video/mp4", path.read_bytes())
    else:
        src = escape(Path(os.path.relpath(path, out)).as_posix())
    return f'<video controls muted loop preload="metadata" width="240" src="{src}"></video>'


def _shots(runs: list[RunSummary], out: Path | None) -> str:
    """One row per shot, one column per model (playable previews, prompt match), then settings."""
    with_clips = [r for r in runs if r.clip_videos]
    if not with_clips:
        return "<p>No model finished a clip.</p>"
    head = "".join(f"<th>{escape(r.label)}</th>" for r in with_clips)

    def cell(r: RunSummary, i: int) -> str:
        if (video := r.clip_videos.get(i)) is None:
            return "<td>not made</td>"
        caption = f"prompt match {prompt_cell(r.prompt_score(i))}"
        return f"<td><figure>{_video(video, out)}<figcaption>{caption}</figcaption></figure></td>"

    rows = "".join(
        f"<tr><th>shot {i}</th>{''.join(cell(r, i) for r in with_clips)}</tr>"
        for i in sorted({i for r in with_clips for i in r.clip_videos})
    )
    settings = [(r.label, *(r.settings[k] for k in SETTINGS)) for r in runs if r.settings]
    return f"<table><tr><th>Shot</th>{head}</tr>{rows}</table>" + _table(("Model", *SETTINGS), settings)


def _operational(runs: list[RunSummary]) -> str:
    """The seed's three summary lines, then one row of notes per model."""
    out = ["<h2>Operational Notes</h2><ul>", *(f"<li>{escape(line)}</li>" for line in operational_summary(runs))]
    notes = [(r.label, *operational_row(r)) for r in runs]
    out.append("</ul>" + _table(("Model", *OPERATIONAL_COLUMNS), notes, numeric=range(2, 7)))
    placements = [p for r in runs for p in r.placements]
    out += ["<ul>", *(f"<li>{escape(line)}</li>" for line in placement_summary(placements)), "</ul>"]
    if placements:
        out.append(_table(PLACEMENT_COLUMNS, placement_rows(placements), numeric=range(5, len(PLACEMENT_COLUMNS))))
    return "".join(out)


def _gpu_billing(runs: list[RunSummary], usd_per_hour: float | None) -> str:
    """Each GPU's billed time on Ray (vgkit.evaluate.report.placements): its runs and idle time."""
    timelines = gpu_timelines([p for r in runs for p in r.placements])
    if not timelines:
        return ""
    out = [
        "<h3>Per GPU (Ray)</h3><p>Each GPU from the sweep's first start to its last end: its runs and idle time.</p>"
    ]
    for t in timelines:
        out.append(f"<h4>{escape(t.where)}</h4>")
        out.append(
            _billing(t.segments, usd_per_hour, total_label=f"billed ({t.busy_share:.0%} busy)", total_s=t.billed_s)
        )
    return "".join(out)


def render_html(
    runs: list[RunSummary],
    *,
    usd_per_hour: float | None,
    header: SweepHeader | None = None,
    out_dir: Path | None = None,
) -> str:
    """The page; ``out_dir`` (the report folder) makes paths of large clips relative."""
    from vgkit.evaluate.clip_score import LIMITS, MAPPING

    header = header or SweepHeader()
    out = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{escape(header.title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{escape(header.title)}</h1><ul>",
        *(
            f"<li>{escape(k)}: <b>{escape(v)}</b></li>"
            for k, v in header_items(runs, header, usd_per_hour=usd_per_hour)
        ),
        "</ul><h2>Model Outcomes</h2><table><tr><th>Model</th><th>Status</th><th>Latency</th><th>Prompt Match</th>"
        "<th>Verdict</th></tr>",
    ]
    for r in runs:
        out.append(
            f"<tr><td>{escape(r.label)}</td><td class={r.status}>{r.status}</td>"
            f'<td class=num title="{escape(r.latency_source)}">{escape(latency_cell(r))}</td>'
            f"<td class=num>{prompt_cell(r.prompt_match)}</td><td>{escape(r.verdict)}</td></tr>"
        )
    out.append("</table>" + _operational(runs) + "<h2>Recommendations</h2><ul>")
    recommendations = recommend(runs)
    out += [
        f"<li>{escape(rec.text)}<br><small>Evidence: {escape('; '.join(rec.evidence))}</small></li>"
        for rec in recommendations
    ] or ["<li>None: no failure and no weak prompt match.</li>"]
    out.append(f"</ul><h2>Prompt Match</h2><p>Scale: {escape(MAPPING)}. Limits: {escape(LIMITS)}.</p><ul>")
    out += [f"<li><b>{escape(r.label)}</b>: {escape(r.prompt_note)}</li>" for r in runs]
    out.append("</ul><h2>Shots Across Models</h2>" + _shots(runs, out_dir))
    out.append("<h2>Shot Boards</h2>" + boards_html([r.run_dir for r in runs], out_dir=out_dir))  # shot_board.py
    out.append("<h2>Failure Details</h2>")
    failed = [r for r in runs if r.failure or r.clip_failures or r.status != "completed"]
    out.append("<ul>" if failed else "<p>None.</p>")
    for r in failed:
        f = r.failure or {}
        kind = f" [{escape(r.kind)}]" if r.kind else ""
        message = f.get("message", "no finished clip, no failure.json")
        out.append(
            f"<li><b>{escape(r.label)}</b> ({escape(r.run_dir.name)}): "
            f"<code>{escape(str(f.get('error_class', 'no failure record')))}</code>{kind} at stage "
            f"{escape(str(f.get('stage', 'n/a')))}: {escape(str(message))}"
            + "".join(f"<br>{escape(clip_failure(g))}" for g in r.clip_failures)
            + "</li>"
        )
    out.append("</ul>" if failed else "")
    out.append("<h2>QA Per Clip</h2>" + qa_table_html(runs))
    out.append(
        "<h2>Timing Breakdown</h2><p>First generation of each clip: denoise, VAE decode, encode + save "
        "(a resumed run keeps the timings of the run that made each clip).</p>" + _timing_chart(runs)
    )
    rate = "no rate given" if usd_per_hour is None else f"${usd_per_hour:.2f}/hour"
    out.append(f"<h2>Billing Timeline ({escape(rate)})</h2>")
    for r in runs:
        out.append(f"<h3>{escape(r.label)}</h3><p>Source: {escape(r.timeline_source)}.</p>")
        out.append(_billing(r.segments, usd_per_hour))
    out.append(_gpu_billing(runs, usd_per_hour))
    out.append("<h2>Filmstrips</h2>")
    for r in runs:
        out.append(f"<h3>{escape(r.label)}</h3>")
        figures = [
            f'<figure><img alt="{escape(label)}" src="{data_uri("image/png", png)}">'
            f"<figcaption>{escape(label)}</figcaption></figure>"
            for label, png in r.filmstrips
        ]
        out.append("".join(figures) or "<p>n/a</p>")
    out.append("</body></html>")
    return "\n".join(out)
