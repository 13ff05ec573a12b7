"""The model sweep: one spec on several models in turn, each its own run dir and bundle, then a report.

Jobs run one at a time (one GPU), each in a supervised worker (``vgkit.worker``) like ``vgkit
run``: a hung pipeline call is killed with its process group past the deadline plus the grace
period, and recorded as a failure with ``GuardrailError``'s exit code. A model that fails is
recorded and the sweep goes on. Each model's run directory ``<out>/<spec name>-<model>/`` gets,
besides what ``vgkit run`` writes:

``sweep_run.json`` (schema ``vgkit.sweep-run/1``)::

    {"schema", "model", "status": "completed" | "failed" | "infeasible", "started_at": ISO-8601 UTC,
     "wall_s": seconds from start to end of the job and its QA,
     "events": [{"t_s": seconds since start, "line": progress line}, ...],
     "gpu_samples": [{"t_s", "util_pct", "temp_c", "mem_used_mib", "compute_apps"}, ...],
     "first_run": null, or when the job ran before in this folder (a resume) that first session's
                  {"started_at", "status", "wall_s", "events"}, so its timings are not lost}

``failure.json`` (schema ``vgkit.failure/1``), only when the job raised::

    {"schema", "model", "error_class": exception class name, "message": str(exception),
     "exit_code": the VgkitError's CLI exit code or null, "stage": "plan" | "load" | "generate" |
     "stitch" | "qa" (the last stage the progress lines reached), "elapsed_s", "at": ISO-8601 UTC}

``<out>/sweep.json`` (schema ``vgkit.sweep/1``), the sweep as a whole (the report's header)::

    {"schema", "name": spec name, "run_id": "<name>-<UTC start, YYYYMMDDTHHMMSSZ>", "started_at",
     "models": [...], "remote_dir": absolute sweep directory when it ran inside a ``vgkit remote``
     job (``VGKIT_REMOTE_JOB`` set), else null, "resumed_at": [ISO-8601 UTC of each later sweep]}

A sweep run again into the same directory keeps its run ID (it resumes). After each completed job
the prompt match is scored (``vgkit.clip_score.score_run``, ``prompt_match.json``); a missing CLIP
checkpoint or a scoring error is recorded there and never fails the job.

GPU samples come from ``nvidia-smi`` every ``GPU_SAMPLE_S`` seconds while a job runs; without
nvidia-smi (or with ``VGKIT_FORCE_CPU=1``) the list is empty and the report shows "n/a". A sample with
more than one compute process on the GPU counts as an overlapping-job sample in the report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vgkit.artifacts import atomic_write_json
from vgkit.errors import InfeasiblePlanError, SpecError, VgkitError
from vgkit.guard import DEFAULT_GRACE_S, check_grace

__all__ = [
    "FAILURE_FILE",
    "FAILURE_SCHEMA",
    "SWEEP_FILE",
    "SWEEP_RUN_FILE",
    "SWEEP_RUN_SCHEMA",
    "GpuSampler",
    "SweepResult",
    "SweepRow",
    "parse_models",
    "sweep",
]

FAILURE_FILE = "failure.json"
FAILURE_SCHEMA = "vgkit.failure/1"
SWEEP_FILE = "sweep.json"
SWEEP_RUN_FILE = "sweep_run.json"
SWEEP_RUN_SCHEMA = "vgkit.sweep-run/1"
SWEEP_SCHEMA = "vgkit.sweep/1"
GPU_SAMPLE_S = 2.0

# The first progress line of each stage (vgkit.runner), to say where a failed job stopped.
_STAGES = (("loading ", "load"), ("clip ", "generate"), ("stitching ", "stitch"), ("qa: ", "qa"))

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SweepRow:
    model: str
    run_dir: Path
    status: str
    detail: str


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


class GpuSampler:
    """Polls nvidia-smi in a thread while a job runs (nothing when there is no NVIDIA GPU)."""

    def __init__(self, started: float) -> None:
        self.samples: list[dict[str, float | int]] = []
        self._started = started
        self._stop = threading.Event()
        smi = shutil.which("nvidia-smi")
        self._smi = None if os.environ.get("VGKIT_FORCE_CPU") == "1" else smi
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> GpuSampler:
        if self._smi:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _query(self, *args: str) -> list[str]:
        assert self._smi is not None
        try:
            done = subprocess.run([self._smi, *args], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return []
        return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []

    def _loop(self) -> None:
        while True:  # sample once before looking at the stop flag: even a short job gets a sample
            gpu = self._query(
                "--query-gpu=utilization.gpu,temperature.gpu,memory.used", "--format=csv,noheader,nounits"
            )
            apps = self._query("--query-compute-apps=pid", "--format=csv,noheader")
            try:
                util, temp, mem = (float(v) for v in gpu[0].split(",")) if gpu else (None, None, None)
            except ValueError:  # "[N/A]" on GPUs that do not report a field
                util = temp = mem = None
            if util is not None and temp is not None and mem is not None:
                self.samples.append(
                    {
                        "t_s": round(time.perf_counter() - self._started, 3),
                        "util_pct": util,
                        "temp_c": temp,
                        "mem_used_mib": mem,
                        "compute_apps": len(apps),
                    }
                )
            if self._stop.wait(GPU_SAMPLE_S):
                return


def _stage(events: list[dict[str, Any]]) -> str:
    stage = "plan"
    for event in events:
        stage = next((name for prefix, name in _STAGES if event["line"].startswith(prefix)), stage)
    return stage


def _score_prompt_match(run_dir: Path, scorer_name: str | None, progress: Progress) -> None:
    """Prompt match after the job (vgkit.clip_score): recorded, never raised."""
    if scorer_name is None:
        return
    from vgkit.clip_score import score_run

    try:
        record = score_run(run_dir, model=scorer_name)
        progress(
            f"prompt match: {record['run_score']}/10"
            if record["run_score"] is not None
            else f"prompt match: {record['reason']}"
        )
    except Exception as exc:  # scoring is optional: a failure is reported, the run stands
        progress(f"prompt match: not scored ({type(exc).__name__}: {exc})")


def _write_sweep_record(root: Path, name: str, models: list[str]) -> None:
    """``sweep.json``: the run ID stays the first sweep's when the sweep is resumed."""
    now = datetime.now(UTC)
    path = root / SWEEP_FILE
    try:
        record = json.loads(path.read_text())
        record.setdefault("resumed_at", []).append(now.isoformat(timespec="seconds"))
    except (OSError, ValueError):
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
    try:
        record = json.loads(previous.read_text())
    except (OSError, ValueError):
        return None
    keep = ("started_at", "status", "wall_s", "events")
    return record.get("first_run") or {k: record.get(k) for k in keep}


def _run_one(
    spec_path: Path,
    model: str,
    run_dir: Path,
    reference: Path,
    progress: Progress,
    grace_s: float,
    scorer_name: str | None = None,
) -> SweepRow:
    from vgkit.qa import run_qa
    from vgkit.rundir import MARKER_NAME
    from vgkit.worker import run_supervised

    first_run = None
    if (run_dir / MARKER_NAME).is_file():  # only vgkit's own run folder is cleaned (vgkit.rundir)
        first_run = _first_run(run_dir / SWEEP_RUN_FILE)
        for stale in (FAILURE_FILE, SWEEP_RUN_FILE, "prompt_match.json"):
            (run_dir / stale).unlink(missing_ok=True)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    events: list[dict[str, Any]] = []

    def record(line: str) -> None:
        events.append({"t_s": round(time.perf_counter() - t0, 3), "line": line})
        progress(f"[{model}] {line}")

    status, detail = "completed", ""
    with GpuSampler(t0) as sampler:
        try:
            result = run_supervised(spec_path, model=model, out=run_dir, grace_s=grace_s, progress=record)
            record("qa: measuring clips and seams")
            qa = run_qa(run_dir, reference=reference)
            detail = "; ".join(qa["verdicts"]) + f"; bundle {result.bundle.name}"
            _score_prompt_match(run_dir, scorer_name, record)
        except Exception as exc:  # any failure of one model is recorded and the sweep goes on
            # A plan projected past its deadlines is refused before any GPU time is spent on it.
            status = "infeasible" if isinstance(exc, InfeasiblePlanError) else "failed"
            detail = f"{type(exc).__name__}: {exc}"
            atomic_write_json(
                run_dir / FAILURE_FILE,
                {
                    "schema": FAILURE_SCHEMA,
                    "model": model,
                    "error_class": type(exc).__name__,
                    "message": str(exc),
                    "exit_code": exc.exit_code if isinstance(exc, VgkitError) else None,
                    "stage": _stage(events),
                    "elapsed_s": round(time.perf_counter() - t0, 3),
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
            )
            progress(f"[{model}] failed: {detail}")
    atomic_write_json(
        run_dir / SWEEP_RUN_FILE,
        {
            "schema": SWEEP_RUN_SCHEMA,
            "model": model,
            "status": status,
            "started_at": started_at,
            "wall_s": round(time.perf_counter() - t0, 3),
            "events": events,
            "gpu_samples": sampler.samples,
            "first_run": first_run,
        },
    )
    return SweepRow(model=model, run_dir=run_dir, status=status, detail=detail)


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
    from vgkit.report import write_report
    from vgkit.settings import apply_env_file
    from vgkit.spec import load_spec

    apply_env_file()
    check_grace(watchdog_grace_s)
    spec = load_spec(spec_path)  # a bad spec fails once, here, not once per model
    if not models:
        raise SpecError("models: empty; fix: name at least one model, e.g. --models wan22-tiny")
    root = Path(out) if out else Path("runs") / f"sweep-{spec.name}"
    root.mkdir(parents=True, exist_ok=True)
    _write_sweep_record(root, spec.name, models)
    rows = []
    for i, model in enumerate(models):
        progress(f"sweep: model {i + 1}/{len(models)}: {model}")
        run_dir = root / f"{spec.name}-{model}"
        run_dir.mkdir(parents=True, exist_ok=True)
        reference = Path(spec.reference_image)
        rows.append(
            _run_one(Path(spec_path), model, run_dir, reference, progress, watchdog_grace_s, prompt_match_model)
        )
    paths = write_report([row.run_dir for row in rows], out=root / "report", usd_per_hour=usd_per_hour)
    return SweepResult(rows=rows, report_markdown=paths["markdown"], report_html=paths["html"])
