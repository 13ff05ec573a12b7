"""The compare notebook's sweep: one spec on several models, in turn here or on Ray, then the report.

``compare`` is what ``notebooks/compare_models.ipynb`` calls: with ``ray`` False the models run one
after another on this machine (vgkit.evaluate.sweep); with True (a local Ray over this machine's
GPUs) or a cluster's address, one worker per GPU (vgkit.scale), each run's progress shown live as
a table of runs from its events (vgkit.lab.progress_view.RunsTable) or, headless, as lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vgkit.errors import SpecError
from vgkit.evaluate.sweep import SweepResult, SweepRow

if TYPE_CHECKING:
    from vgkit.scale.scheduler import RayOptions

__all__ = ["compare", "ray_options"]


def ray_options(ray: bool | str) -> RayOptions | None:
    """The notebook's ``ray`` parameter as vgkit.scale.scheduler.RayOptions (None: not on Ray).

    False: not on Ray; True: ``RAY_ADDRESS`` or a local Ray; a non-empty text: that cluster's address.
    """
    from vgkit.scale.scheduler import RayOptions

    if ray is False:
        return None
    if ray is True:
        return RayOptions()
    if not isinstance(ray, str) or not ray.strip():
        raise SpecError(
            f"parameter ray = {ray!r}: must be False, True or a Ray address; "
            'fix: e.g. ray = True or ray = "10.0.0.5:6379"'
        )
    return RayOptions(address=ray.strip())


def compare(
    spec: Path,
    *,
    models: list[str],
    out: Path,
    usd_per_hour: float | None = None,
    ray: bool | str = False,
    live: bool = True,
) -> SweepResult:
    """Run ``spec`` on each of ``models`` into ``out`` (a run folder per model, ``out/report/``).

    On Ray with ``live``, a table of the runs is displayed and updated as their events arrive;
    otherwise each progress line is printed as it comes.
    """
    from vgkit.evaluate.sweep import parse_models, sweep, write_sweep_record
    from vgkit.lab.progress_view import runs_view
    from vgkit.scale.cells import make_cells
    from vgkit.scale.runs import run_scaled
    from vgkit.spec.schema import load_spec

    options = ray_options(ray)
    if options is None:
        return sweep(spec, models=models, out=out, usd_per_hour=usd_per_hour)
    parse_models(",".join(models))  # distinct, non-empty names, as the sweep without Ray checks
    cells = make_cells([spec], models=models, root=out)
    out.mkdir(parents=True, exist_ok=True)
    write_sweep_record(out, load_spec(spec).name, models)
    progress, on_event = runs_view(live, [cell.name for cell in cells])
    result = run_scaled(cells, root=out, ray=options, progress=progress, on_event=on_event, usd_per_hour=usd_per_hour)
    if result.report_markdown is None or result.report_html is None:
        raise SpecError(f"out = '{out}': no run folder was made, so there is no report; fix: see the lines above")
    rows = [SweepRow(o.cell.model, o.cell.run_dir, o.status, o.detail) for o in result.outcomes]
    return SweepResult(rows=rows, report_markdown=result.report_markdown, report_html=result.report_html)
