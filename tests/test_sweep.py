"""Sweeps on the real tiny model with planted failures, and the model list (the five-model sweep's
rows, failure records and report are tested in test_sweep_report.py, on its one sweep)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.cli import main
from vgkit.errors import SpecError
from vgkit.evaluate.sweep import parse_models, sweep
from vgkit.records.artifacts import CLIP_LOG_SCHEMA

SHOTS = [
    {"subject": f"boat {i}", "action": "sails", "environment": "sea", "camera": "pan", "duration_s": 5.0}
    for i in range(2)
]
FAST = {"width": 32, "height": 32, "steps": 1}  # the smallest run the tiny model makes


def test_a_checkpoint_that_cannot_load_fails_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vgkit.hub.checkpoints import locate_checkpoint
    from vgkit.models import adapter

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    index = locate_checkpoint(adapter("wan22-tiny")) / "model_index.json"
    text = index.read_text()
    assert '"WanTransformer3DModel"' in text
    # same size, so the cache's completeness check (sizes) passes and the loader meets it
    index.resolve().write_text(text.replace('"WanTransformer3DModel"', '"NoSuchModel0123456789"'))
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(shots=SHOTS, overrides=FAST))
    result = sweep(spec, models=["wan22-tiny"], out=tmp_path / "sw", progress=lambda _: None)
    failure = json.loads((result.rows[0].run_dir / "failure.json").read_text())
    assert result.rows[0].status == "failed" and failure["stage"] == "load"
    # the loader's layout check names the unknown class before any weights load
    assert failure["error_class"] == "ModelUnavailableError"
    assert "NoSuchModel0123456789" in failure["message"] and "layout mismatch" in failure["message"]
    wall_s = json.loads((result.rows[0].run_dir / "sweep_run.json").read_text())["wall_s"]
    assert (
        f"| wan22-tiny | failed | {wall_s:.2f}s | n/a | Checkpoint layout mismatch "
        f"(missing files or not the diffusers layout) ({failure['error_class']}: " in result.report_markdown.read_text()
    )


def test_model_list_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_models(" wan22, cogvideox15 ") == ["wan22", "cogvideox15"]
    for bad in ("", "a,,b", "a,a"):
        with pytest.raises(SpecError, match="models ="):
            parse_models(bad)
    spec = write_spec(tmp_path / "spec.yaml", spec_dict())
    assert main(["sweep", str(spec), "--models", "a,a"]) == 2
    assert "vgkit: error: models = 'a,a'" in capsys.readouterr().err


def test_gpu_samples_feed_the_operational_notes(tmp_path: Path) -> None:
    """The sweep's whole-job samples are vgkit.supervise.telemetry's (NVML; tested in test_telemetry); a metric
    the GPU does not report is missing from its samples and the notes keep the others."""
    from vgkit.evaluate.report.summary import summarize_run

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    samples = [
        {"t_s": 0.0, "utilization_pct": 85, "memory_used_bytes": 40321 * 2**20, "temperature_c": 83, "compute_apps": 2},
        {"t_s": 2.0, "utilization_pct": 75, "memory_used_bytes": 2**30, "compute_apps": 1},  # no temperature
    ]
    (run_dir / "sweep_run.json").write_text(json.dumps({"wall_s": 3.0, "gpu_samples": samples}))
    gpu = summarize_run(run_dir).gpu
    assert gpu == {
        "samples": 2,
        "mean_util_pct": 80.0,
        "peak_temp_c": 83,
        "peak_mem_used_mib": 40321,
        "overlap_samples": 1,
    }


def test_clip_log_telemetry_is_the_fallback_for_gpu_notes(tmp_path: Path) -> None:
    from vgkit.evaluate.report.summary import summarize_run

    telemetry = {"available": True, "samples": 3, "utilization_pct_mean": 90.0, "temperature_c_max": 81,
                 "memory_used_bytes_max": 2**30, "utilization_pct_max": 99, "interval_s": 1.0}  # fmt: skip
    (tmp_path / "logs").mkdir()
    for i, util in enumerate((90.0, 70.0)):
        log = {"schema": CLIP_LOG_SCHEMA, "index": i, "status": "aborted",
               "gpu_telemetry": {**telemetry, "utilization_pct_mean": util}}  # fmt: skip
        (tmp_path / "logs" / f"log_{i:03d}.json").write_text(json.dumps(log))
    gpu = summarize_run(tmp_path).gpu
    assert gpu == {"samples": 6, "mean_util_pct": 80.0, "peak_temp_c": 81, "peak_mem_used_mib": 1024}
