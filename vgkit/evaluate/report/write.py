"""Write a sweep's report: ``report.md`` (with ``img/*.png``), ``report.html`` and ``report.json``."""

from __future__ import annotations

from pathlib import Path

from vgkit.errors import SpecError
from vgkit.evaluate.report.header import best_completed, sweep_header
from vgkit.evaluate.report.html import render_html
from vgkit.evaluate.report.markdown import render_markdown
from vgkit.evaluate.report.recommend import recommend
from vgkit.evaluate.report.summary import REPORT_SCHEMA, label_runs, summarize_run
from vgkit.records.artifacts import atomic_write_bytes, atomic_write_json

__all__ = ["write_report"]


def write_report(run_dirs: list[Path], *, out: Path, usd_per_hour: float | None = None) -> dict[str, Path]:
    """Write ``report.md`` (with ``img/*.png``), ``report.html`` and ``report.json`` into ``out``."""
    if usd_per_hour is not None and usd_per_hour < 0:
        raise SpecError(f"usd_per_hour = {usd_per_hour}: must be >= 0; fix: pass the GPU's hourly price")
    runs = label_runs([summarize_run(Path(d)) for d in run_dirs])
    header = sweep_header([Path(d) for d in run_dirs])
    images: dict[str, str] = {}
    for r in runs:
        for i, (label, png) in enumerate(r.filmstrips):
            rel = f"img/{r.run_dir.name}-{i:02d}.png"
            atomic_write_bytes(out / rel, png)
            images[f"{r.run_dir.name}/{label}"] = rel
    markdown = render_markdown(runs, usd_per_hour=usd_per_hour, images=images, header=header, out=out)
    atomic_write_bytes(out / "report.md", markdown.encode())
    atomic_write_bytes(
        out / "report.html", render_html(runs, usd_per_hour=usd_per_hour, header=header, out_dir=out).encode()
    )
    best, rule = best_completed(runs, usd_per_hour=usd_per_hour)
    record = {
        "schema": REPORT_SCHEMA,
        "run_id": header.run_id,
        "remote_dir": header.remote_dir,
        "best_completed": None if best is None else best.model,
        "best_rule": rule,
        "recommendations": [vars(rec) for rec in recommend(runs)],
        "usd_per_hour": usd_per_hour,
        "runs": [
            {
                "run_dir": str(r.run_dir),
                "model": r.model,
                "status": r.status,
                "latency_s": r.latency_s,
                "latency_source": r.latency_source,
                "resumed_s": r.resumed_s,
                "kind": r.kind,
                "prompt_match": r.prompt_match,
                "verdict": r.verdict,
                "failure": r.failure,
                "segments": [vars(s) for s in r.segments],
                "placements": [vars(p) for p in r.placements],
            }
            for r in runs
        ],
    }
    atomic_write_json(out / "report.json", record)
    return {"markdown": out / "report.md", "html": out / "report.html", "json": out / "report.json"}
