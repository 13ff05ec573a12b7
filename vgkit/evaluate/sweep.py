"""The model sweep: one spec on several models in turn, each its own run dir and bundle, then a report.

Jobs run one at a time (one GPU), each in a supervised worker (``vgkit.supervise.worker``) like ``vgkit
run``: a hung pipeline call is killed with its process group past the deadline plus the grace
period, and recorded as a failure with ``GuardrailError``'s exit code. A model that fails is
recorded and the sweep goes on. Each model's run directory ``<out>/<spec name>-<model>/`` gets,
besides what ``vgkit run`` writes:

``sweep_run.json`` (schema ``vgkit.sweep-run/2``)::

    {"schema", "model", "status": "completed" | "failed" | "infeasible", "started_at": ISO-8601 UTC,
     "started_at_s": the same instant in epoch seconds (the run's ``events.jsonl`` from then on is
     this job's: vgkit.records.events), "wall_s": seconds from start to end of the job and its QA,
     "gpu_samples": [{"t_s", "utilization_pct", "memory_used_bytes", "temperature_c", "power_w",
                      "compute_apps"}, ...],
     "first_run": null, or when the job ran before in this folder (a resume) that first session's
                  {"started_at", "started_at_s", "status", "wall_s"}, so its timings are not lost}

A run on Ray (vgkit.scale.scheduler) writes the same file without ``first_run`` and with
``"events"`` (its progress lines, ``{"t_s", "line"}``) and ``"placements"``: one per attempt,
``{"attempt", "clips_home_at_start", "started_at", "started_at_s", "node", "gpu", "pid",
"ended_at", "ended_at_s", "outcome"}`` (the report's placements, vgkit.evaluate.report.placements).

``failure.json`` (schema ``vgkit.failure/2``), only when the job raised: the failure record of
``vgkit.records.failures`` (``kind``, ``phase``, ``clip_index``, ``verdict``, ``error_class``, ``message``,
``cause``, ``exit_code``) and::

    {"schema", "model", "stage": "plan" | "load" | "generate" | "stitch" | "qa" (the last stage
     the job's events reached, as the worker sent them: a job refused before its run folder was
     accepted writes no events.jsonl), "elapsed_s", "at": ISO-8601 UTC}

``<out>/sweep.json`` (schema ``vgkit.sweep/1``), the sweep as a whole (the report's header)::

    {"schema", "name": spec name, "run_id": "<name>-<UTC start, YYYYMMDDTHHMMSSZ>", "started_at",
     "models": [...], "remote_dir": absolute sweep directory when it ran inside a ``vgkit remote``
     job (``VGKIT_REMOTE_JOB`` set), else null, "resumed_at": [ISO-8601 UTC of each later sweep]}

A sweep run again into the same directory keeps its run ID (it resumes). After each completed job
the prompt match is scored (``vgkit.evaluate.clip_score.score_run``, ``prompt_match.json``); a missing CLIP
checkpoint or a scoring error is recorded there and never fails the job.

GPU samples come from ``vgkit.supervise.telemetry`` (NVML) every ``GPU_SAMPLE_S`` seconds while a job runs;
without a usable NVML (a CPU machine) the list is empty and the report shows "n/a". A sample with
more than one compute process on the GPU counts as an overlapping-job sample in the report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vgkit.errors import SpecError
from vgkit.records.artifacts import FAILURE_FILE, SWEEP_FILE, SWEEP_RUN_FILE, atomic_write_json, read_json_object
from vgkit.records.events import Event, Progress, append_event, note
from vgkit.records.failures import classify
from vgkit.supervise.guard import DEFAULT_GRACE_S, check_grace
from vgkit.supervise.telemetry import GpuSampler

__all__ = [
    "FAILURE_FILE",
    "FAILURE_SCHEMA",
    "SWEEP_FILE",
    "SWEEP_RUN_FILE",
    "SWEEP_RUN_SCHEMA",
    "SweepResult",
    "SweepRow",
    "parse_models",
    "sweep",
    "sweep_cell",
    "write_sweep_record",
]

FAILURE_SCHEMA = "vgkit.failure/2"
SWEEP_RUN_SCHEMA = "vgkit.sweep-run/2"
SWEEP_SCHEMA = "vgkit.sweep/1"
GPU_SAMPLE_S = 2.0
_FIRST_RUN_KEYS = ("started_at", "started_at_s", "status", "wall_s")  # a resumed job keeps these of its first session

# The sweep stage each event stage (vgkit.records.events) belongs to, to say where a failed job stopped.
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
    kind: str | None = None  # the failure kind (vgkit.records.failures), None when completed


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


def score_prompt_match(run_dir: Path, scorer_name: str | None, say: Callable[[str], None]) -> None:
    """Prompt match after the job (vgkit.evaluate.clip_score): recorded, never raised."""
    if scorer_name is None:
        return
    from vgkit.evaluate.clip_score import score_run

    try:
        record = score_run(run_dir, model=scorer_name)
        score = record["run_score"]
        say(f"prompt match: {score}/10" if score is not None else f"prompt match: {record['reason']}")
    except Exception as exc:  # scoring is optional: a failure is reported, the run stands
        say(f"prompt match: not scored ({type(exc).__name__}: {exc})")


def write_sweep_record(root: Path, name: str, models: list[str]) -> None:
    """``sweep.json``: the run ID stays the first sweep's when the sweep is resumed."""
    now = datetime.now(UTC)
    path = root / SWEEP_FILE
    record = read_json_object(path)
    if record is not None and "run_id" in record:
        record["resumed_at"] = [*record.get("resumed_at", []), now.isoformat(timespec="seconds")]
    else:
        record = {
            "schema": SWEEP_SCHEMA,
            "name": name,
            "run_id": f"{name}-{now.strftime('%Y%m%dT%H%M%SZ')}",
            "started_at": now.isoformat(timespec="seconds"),
            "resumed_at": [],
        }
    record["models"] = models
    record["remote_dir"] = str(root.resolve()) if os.environ.get("VGKIT_REMOTE_JOB") else None
    atomic_write_json(path, record)


def _first_run(previous: Path) -> dict[str, Any] | None:
    """The first session's timing of a resumed job (kept from its earlier ``sweep_run.json``)."""
    record = read_json_object(previous)
    if record is None:
        return None
    kept = record.get("first_run")
    return kept if isinstance(kept, dict) else {k: record.get(k) for k in _FIRST_RUN_KEYS}


def sweep_cell(
    spec_path: Path,
    model: str,
    run_dir: Path,
    *,
    progress: Progress = print,
    grace_s: float = DEFAULT_GRACE_S,
    prompt_match_model: str | None = "clip",
) -> SweepRow:
    """One model's job of a sweep in ``run_dir``, recorded like the others (vgkit.scale runs cells through it)."""
    from vgkit.evaluate.qa import run_qa
    from vgkit.records.rundir import MARKER_NAME
    from vgkit.spec.schema import load_spec
    from vgkit.supervise.worker import run_supervised

    run_dir.mkdir(parents=True, exist_ok=True)
    reference = Path(load_spec(spec_path).reference_image)
    first_run = None
    if (run_dir / MARKER_NAME).is_file():  # only vgkit's own run folder is cleaned (vgkit.records.rundir)
        first_run = _first_run(run_dir / SWEEP_RUN_FILE)
        for stale in (FAILURE_FILE, SWEEP_RUN_FILE, "prompt_match.json"):
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
            score_prompt_match(run_dir, prompt_match_model, lambda text: progress(note(f"[{model}] {text}")))
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
            "first_run": first_run,
        },
    )
    return SweepRow(model=model, run_dir=run_dir, status=status, detail=detail, kind=kind)


def sweep(
    spec_path: str | Path,
    *,
    models: list[str],
    out: str | Path | None = None,
    usd_per_hour: float | None = None,
    progress: Progress = print,
    watchdog_grace_s: float = DEFAULT_GRACE_S,
    prompt_match_model: str | None = "clip",
) -> SweepResult:
    """Run ``spec_path`` on each of ``models`` in turn, then write ``<out>/report/``.

    ``prompt_match_model`` scores each completed run's prompt match (``clip``, or the random-weight
    ``clip-tiny`` in tests; None: not scored)."""
    from vgkit.evaluate.report.write import write_report
    from vgkit.settings import apply_env_file
    from vgkit.spec.schema import load_spec

    apply_env_file()
    check_grace(watchdog_grace_s)
    spec = load_spec(spec_path)  # a bad spec fails once, here, not once per model
    if not models:
        raise SpecError("models: empty; fix: name at least one model, e.g. --models wan22-tiny")
    root = Path(out) if out else Path("runs") / f"sweep-{spec.name}"
    root.mkdir(parents=True, exist_ok=True)
    write_sweep_record(root, spec.name, models)
    rows = []
    for i, model in enumerate(models):
        progress(note(f"sweep: model {i + 1}/{len(models)}: {model}"))
        run_dir = root / f"{spec.name}-{model}"
        rows.append(
            sweep_cell(
                Path(spec_path),
                model,
                run_dir,
                progress=progress,
                grace_s=watchdog_grace_s,
                prompt_match_model=prompt_match_model,
            )
        )
    paths = write_report([row.run_dir for row in rows], out=root / "report", usd_per_hour=usd_per_hour)
    return SweepResult(rows=rows, report_markdown=paths["markdown"], report_html=paths["html"])
