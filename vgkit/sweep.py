"""The model sweep: one spec on several models in turn, each its own run dir and bundle, then a report.

Jobs run one at a time (one GPU), each in a supervised worker (``vgkit.worker``) like ``vgkit
run``: a hung pipeline call is killed with its process group past the deadline plus the grace
period, and recorded as a failure with ``GuardrailError``'s exit code. A model that fails is
recorded and the sweep goes on. Each model's run directory ``<out>/<spec name>-<model>/`` gets,
besides what ``vgkit run`` writes:

``sweep_run.json`` (schema ``vgkit.sweep-run/2``)::

    {"schema", "model", "status": "completed" | "failed" | "infeasible", "started_at": ISO-8601 UTC,
     "started_at_s": the same instant in epoch seconds (the run's ``events.jsonl`` from then on is
     this job's: vgkit.events), "wall_s": seconds from start to end of the job and its QA,
     "gpu_samples": [{"t_s", "utilization_pct", "memory_used_bytes", "temperature_c", "power_w",
                      "compute_apps"}, ...]}

``failure.json`` (schema ``vgkit.failure/2``), only when the job raised: the failure record of
``vgkit.failures`` (``kind``, ``phase``, ``clip_index``, ``verdict``, ``error_class``, ``message``,
``cause``, ``exit_code``) and::

    {"schema", "model", "stage": "plan" | "load" | "generate" | "stitch" | "qa" (the last stage
     the job's events reached, as the worker sent them: a job refused before its run folder was
     accepted writes no events.jsonl), "elapsed_s", "at": ISO-8601 UTC}

GPU samples come from ``vgkit.telemetry`` (NVML) every ``GPU_SAMPLE_S`` seconds while a job runs;
without a usable NVML (a CPU machine) the list is empty and the report shows "n/a". A sample with
more than one compute process on the GPU counts as an overlapping-job sample in the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vgkit.artifacts import atomic_write_json
from vgkit.errors import SpecError
from vgkit.events import Event, Progress, append_event, note
from vgkit.failures import classify
from vgkit.guard import DEFAULT_GRACE_S, check_grace
from vgkit.telemetry import GpuSampler

__all__ = [
    "FAILURE_FILE",
    "FAILURE_SCHEMA",
    "SWEEP_RUN_FILE",
    "SWEEP_RUN_SCHEMA",
    "SweepResult",
    "SweepRow",
    "parse_models",
    "sweep",
    "sweep_cell",
]

FAILURE_FILE = "failure.json"
FAILURE_SCHEMA = "vgkit.failure/2"
SWEEP_RUN_FILE = "sweep_run.json"
SWEEP_RUN_SCHEMA = "vgkit.sweep-run/2"
GPU_SAMPLE_S = 2.0

# The sweep stage each event stage (vgkit.events) belongs to, to say where a failed job stopped.
_STAGE_OF = {
    "load": "load",
    "loaded": "load",
    **dict.fromkeys(
        ("clip-start", "denoise", "projection", "decode", "encode", "clip-done", "clip-reused"), "generate"
    ),
    "stitch": "stitch",
    "qa": "qa",
}


@dataclass(frozen=True)
class SweepRow:
    model: str
    run_dir: Path
    status: str
    detail: str
    kind: str | None = None  # the failure kind (vgkit.failures), None when completed


@dataclass(frozen=True)
class SweepResult:
    rows: list[SweepRow]
    report_markdown: Path
    report_html: Path


def parse_models(text: str) -> list[str]:
    """``"a,b,c"`` -> ``["a", "b", "c"]``; empty names and repeats are refused."""
    models = [m.strip() for m in text.split(",")]
    if not models or any(not m for m in models) or len(set(models)) != len(models):
        raise SpecError(f"models = {text!r}: give distinct comma-separated names; fix: e.g. wan22,hunyuan-i2v")
    return models


def stage_reached(events: list[Event]) -> str:
    """The last sweep stage (plan, load, generate, stitch, qa) that ``events`` reached."""
    stage = "plan"
    for event in events:
        stage = _STAGE_OF.get(event.stage, stage)
    return stage


def _run_one(
    spec_path: Path, model: str, run_dir: Path, reference: Path, progress: Progress, grace_s: float
) -> SweepRow:
    from vgkit.qa import run_qa
    from vgkit.rundir import MARKER_NAME
    from vgkit.worker import run_supervised

    if (run_dir / MARKER_NAME).is_file():  # only vgkit's own run folder is cleaned (vgkit.rundir)
        for stale in (FAILURE_FILE, SWEEP_RUN_FILE):
            (run_dir / stale).unlink(missing_ok=True)
    started_at, started_at_s = datetime.now(UTC).isoformat(timespec="seconds"), time.time()
    t0 = time.perf_counter()

    received: list[Event] = []  # the job's events as the worker sent them: where it stopped

    def tagged(event: Event) -> None:
        received.append(event)
        progress(note(f"[{model}] {event}"))

    status, detail, kind = "completed", "", None
    with GpuSampler(interval_s=GPU_SAMPLE_S) as sampler:
        try:
            result = run_supervised(spec_path, model=model, out=run_dir, grace_s=grace_s, progress=tagged)
            qa_event = Event("qa")
            append_event(run_dir, qa_event)
            tagged(qa_event)
            qa = run_qa(run_dir, reference=reference)
            detail = "; ".join(qa["verdicts"]) + f"; bundle {result.bundle.name}"
        except Exception as exc:  # any failure of one model is recorded and the sweep goes on
            failure = classify(exc)
            # A plan projected past its deadlines is refused before any GPU time is spent on it.
            status, kind = ("infeasible" if failure.kind == "infeasible" else "failed"), failure.kind
            detail = f"{failure.error_class}: {failure.message}"
            atomic_write_json(
                run_dir / FAILURE_FILE,
                {
                    "schema": FAILURE_SCHEMA,
                    "model": model,
                    **failure.to_dict(),
                    "stage": stage_reached(received),
                    "elapsed_s": round(time.perf_counter() - t0, 3),
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
            progress(note(f"[{model}] failed ({kind}): {detail}"))
    atomic_write_json(
        run_dir / SWEEP_RUN_FILE,
        {
            "schema": SWEEP_RUN_SCHEMA,
            "model": model,
            "status": status,
            "started_at": started_at,
            "started_at_s": started_at_s,
            "wall_s": round(time.perf_counter() - t0, 3),
            "gpu_samples": sampler.samples,
        },
    )
    return SweepRow(model=model, run_dir=run_dir, status=status, detail=detail, kind=kind)


def sweep_cell(
    spec_path: Path, model: str, run_dir: Path, *, progress: Progress = print, grace_s: float = DEFAULT_GRACE_S
) -> SweepRow:
    """One model's job of a sweep in ``run_dir``, recorded like the others (vgkit.scale runs cells through it)."""
    from vgkit.spec import load_spec

    run_dir.mkdir(parents=True, exist_ok=True)
    return _run_one(spec_path, model, run_dir, Path(load_spec(spec_path).reference_image), progress, grace_s)


def sweep(
    spec_path: str | Path,
    *,
    models: list[str],
    out: str | Path | None = None,
    usd_per_hour: float | None = None,
    progress: Progress = print,
    watchdog_grace_s: float = DEFAULT_GRACE_S,
) -> SweepResult:
    """Run ``spec_path`` on each of ``models`` in turn, then write ``<out>/report/``."""
    from vgkit.report import write_report
    from vgkit.settings import apply_env_file
    from vgkit.spec import load_spec

    apply_env_file()
    check_grace(watchdog_grace_s)
    spec = load_spec(spec_path)  # a bad spec fails once, here, not once per model
    if not models:
        raise SpecError("models: empty; fix: name at least one model, e.g. --models wan22-tiny")
    root = Path(out) if out else Path("runs") / f"sweep-{spec.name}"
    rows = []
    for i, model in enumerate(models):
        progress(note(f"sweep: model {i + 1}/{len(models)}: {model}"))
        run_dir = root / f"{spec.name}-{model}"
        run_dir.mkdir(parents=True, exist_ok=True)
        reference = Path(spec.reference_image)
        rows.append(_run_one(Path(spec_path), model, run_dir, reference, progress, watchdog_grace_s))
    paths = write_report([row.run_dir for row in rows], out=root / "report", usd_per_hour=usd_per_hour)
    return SweepResult(rows=rows, report_markdown=paths["markdown"], report_html=paths["html"])
