"""The report's header: the sweep (run ID, start, remote movie directory) and the best completed
model with the rule that chose it. Shared by the Markdown and HTML reports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vgkit.evaluate.report.summary import RunSummary, cost
from vgkit.records.artifacts import SWEEP_FILE, read_json_object

__all__ = ["SweepHeader", "best_completed", "header_items", "sweep_header"]

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


@dataclass(frozen=True)
class SweepHeader:
    """The report's header: what the sweep was, when it started, and where its movies are."""

    title: str = "Model sweep report"
    run_id: str = "n/a"
    published: str = "n/a"  # the sweep's UTC start date: the Markdown stays the same for the same runs
    remote_dir: str | None = None


def header_items(
    runs: list[RunSummary],
    header: SweepHeader,
    *,
    usd_per_hour: float | None,
    code: Callable[[str], str] = str,
) -> list[tuple[str, str]]:
    """``HEADER_FIELDS`` with their values; ``code`` marks up the run ID and remote directory when known."""
    best, rule = best_completed(runs, usd_per_hour=usd_per_hour)
    completed = sum(r.status == "completed" for r in runs)
    values = (
        header.published,
        code(header.run_id) if header.run_id.split(" ")[0] != "n/a" else header.run_id,
        code(header.remote_dir) if header.remote_dir else "n/a (ran locally)",
        str(len(runs)),
        str(completed),
        str(len(runs) - completed),
        best.label if best else "none",
        rule,
    )
    return list(zip(HEADER_FIELDS, values, strict=True))


def _findings(r: RunSummary) -> int:
    return len([v for v in (r.qa or {}).get("verdicts", []) if v != "ok"])


def best_completed(runs: list[RunSummary], *, usd_per_hour: float | None = None) -> tuple[RunSummary | None, str]:
    """The best completed run and the rule that chose it: highest prompt match, then fewest QA
    findings, then lowest cost (first-run time at the given rate). Completed runs without a
    prompt-match score are not ranked: latency alone never names a best model."""
    done = [r for r in runs if r.status == "completed"]
    scored = sorted(
        (r for r in done if r.prompt_match is not None),
        key=lambda r: (-(r.prompt_match or 0.0), _findings(r), r.latency_s or 0.0),
    )
    if not done:
        return None, "no model completed"
    if not scored:
        return None, (
            "none named: no completed run has a prompt-match score (fix: `vgkit prefetch --model clip`), "
            "and latency alone never chooses"
        )
    best = scored[0]
    if len(scored) == 1:
        unscored = len(done) - 1
        extra = f"; {unscored} other completed run(s) have no score" if unscored else ""
        return best, f"the only completed run with a prompt-match score ({best.prompt_match:.1f}/10){extra}"
    second = scored[1]
    if best.prompt_match != second.prompt_match:
        return best, f"highest prompt match ({best.prompt_match:.1f}/10; next {second.prompt_match:.1f}/10)"
    if _findings(best) != _findings(second):
        return best, (
            f"prompt match tied at {best.prompt_match:.1f}/10; fewest QA findings "
            f"({_findings(best)}; next {_findings(second)})"
        )
    price = "generation time" if usd_per_hour is None else f"cost at ${usd_per_hour:.2f}/hour"
    return best, (
        f"prompt match ({best.prompt_match:.1f}/10) and QA findings ({_findings(best)}) tied; lowest first-run "
        f"{price} ({cost_or_time(best.latency_s, usd_per_hour)}; next {cost_or_time(second.latency_s, usd_per_hour)})"
    )


def cost_or_time(latency_s: float | None, usd_per_hour: float | None) -> str:
    if latency_s is None:
        return "n/a"
    return f"{latency_s:.2f} s" if usd_per_hour is None else cost(latency_s, usd_per_hour)


def sweep_header(run_dirs: list[Path], *, title: str | None = None) -> SweepHeader:
    """The header from the sweep's ``sweep.json`` beside the run dirs (vgkit.evaluate.sweep), else n/a."""
    parents = {Path(d).resolve().parent for d in run_dirs}
    record = read_json_object(parents.pop() / SWEEP_FILE) if len(parents) == 1 else None
    if record is None or "run_id" not in record:
        return SweepHeader(title or "Model sweep report", "n/a (no sweep.json: not one sweep)", "n/a", None)
    name = str(record.get("name", "sweep"))
    return SweepHeader(
        title=title or f"{name} video model sweep",
        run_id=str(record["run_id"]),
        published=str(record.get("started_at", "n/a"))[:10],
        remote_dir=str(record["remote_dir"]) if record.get("remote_dir") else None,
    )
