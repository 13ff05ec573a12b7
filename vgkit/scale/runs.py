"""``vgkit sweep``/``vgkit batch`` with ``--ray``, ``--seeds`` or ``--shard``: cells run, then one report.

With ``ray`` the cells run on a Ray cluster's GPUs (vgkit.scale.scheduler); without, one after
another here, each like a model of ``vgkit sweep`` (a supervised worker, QA, ``sweep_run.json``).
A cell with its own seed runs from a copy of its spec with that seed written in, kept under
``<root>/.vgkit-specs/<cell>/`` beside the run folders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgkit.scale.cells import Cell, shard_cells, task_for, write_task
from vgkit.scale.scheduler import CellOutcome, RayOptions
from vgkit.supervise.guard import DEFAULT_GRACE_S

__all__ = ["SPECS_FOLDER", "ScaledResult", "run_scaled"]

Progress = Callable[[str], None]
SPECS_FOLDER = ".vgkit-specs"


@dataclass(frozen=True)
class ScaledResult:
    outcomes: list[CellOutcome]
    report_markdown: Path | None
    report_html: Path | None


def _spec_for(cell: Cell, root: Path) -> Path:
    """The spec a cell runs: the user's, or (own seed) a copy with the seed written in."""
    return cell.spec_path if cell.seed is None else write_task(task_for(cell), root / SPECS_FOLDER / cell.name)


def _run_here(cell: Cell, root: Path, progress: Progress, grace_s: float, scorer: str | None) -> CellOutcome:
    from vgkit.evaluate.sweep import sweep_cell

    row = sweep_cell(
        _spec_for(cell, root), cell.model, cell.run_dir, progress=progress, grace_s=grace_s, prompt_match_model=scorer
    )
    return CellOutcome(cell, row.status, row.detail)


def run_scaled(
    cells: list[Cell],
    *,
    root: Path,
    ray: RayOptions | None,
    shard: tuple[int, int] | None = None,
    progress: Progress = print,
    usd_per_hour: float | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    prompt_match_model: str | None = "clip",
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> ScaledResult:
    """Run ``cells`` (only shard ``i`` of ``N`` of them with ``shard``) and write one report of them.

    ``prompt_match_model`` scores each completed run's prompt match (vgkit.evaluate.clip_score; None: not
    scored). ``on_event`` sees every event of a run on Ray (vgkit.scale.scheduler ``run_cells``; a
    notebook's live table, vgkit.lab.progress_view). The report goes to ``<root>/report``
    (``<root>/report-shard-<i>-of-<N>`` for a shard; a report over every shard's fetched runs is
    ``vgkit report``).
    """
    from vgkit.evaluate.report.write import write_report

    if shard is not None:
        index, count = shard
        total = len(cells)
        cells = shard_cells(cells, index=index, count=count)
        models = ", ".join(dict.fromkeys(c.model for c in cells)) or "none"
        progress(f"shard {index}/{count}: {len(cells)} of {total} run(s); models: {models}")
    if not cells:
        return ScaledResult([], None, None)
    if ray is not None:
        from vgkit.evaluate.sweep import score_prompt_match
        from vgkit.scale.scheduler import run_cells

        outcomes = run_cells(cells, options=ray, progress=progress, on_event=on_event, grace_s=grace_s)
        for outcome in outcomes:  # on the driver, once the run's clips are home
            if outcome.status == "completed":
                say = (lambda name: lambda text: progress(f"[{name}] {text}"))(outcome.cell.name)
                score_prompt_match(outcome.cell.run_dir, prompt_match_model, say)
    else:
        outcomes = []
        for i, cell in enumerate(cells):
            progress(f"run {i + 1}/{len(cells)}: {cell.name}")
            outcomes.append(_run_here(cell, root, progress, grace_s, prompt_match_model))
    name = "report" if shard is None else f"report-shard-{shard[0]}-of-{shard[1]}"
    run_dirs = [c.run_dir for c in cells if c.run_dir.is_dir()]
    if not run_dirs:
        return ScaledResult(outcomes, None, None)
    paths = write_report(run_dirs, out=root / name, usd_per_hour=usd_per_hour)
    return ScaledResult(outcomes, paths["markdown"], paths["html"])
