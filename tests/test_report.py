"""The sweep report from a real tiny run plus hand-made partial and failed run dirs; QA on a real run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DEMO_IMAGE, spec_dict, write_spec
from vgkit.cli import main
from vgkit.errors import ArtifactError, InfeasiblePlanError, SpecError
from vgkit.evaluate.players import side_by_side
from vgkit.evaluate.qa import QA_SCHEMA, run_qa
from vgkit.evaluate.report.summary import summarize_run
from vgkit.evaluate.report.write import write_report
from vgkit.generate.runner import run_job
from vgkit.records.artifacts import CLIP_LOG_SCHEMA, RunLayout
from vgkit.records.failures import classify

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SHORT_SHOTS = [
    {"subject": f"boat {i}", "action": "sails", "environment": "sea", "camera": "pan", "duration_s": 5.0}
    for i in range(2)
]
FAST = {"width": 32, "height": 32, "steps": 1}  # the smallest run the tiny model makes


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished tiny run (2 clips x 121 frames), a partial copy of it, and two failed run dirs."""
    tmp = tmp_path_factory.mktemp("report")
    spec = write_spec(tmp / "spec.yaml", spec_dict(shots=SHORT_SHOTS, overrides=FAST))
    done = run_job(spec, out=tmp / "t-wan22-tiny", progress=lambda _: None).run_dir
    run_qa(done, reference=DEMO_IMAGE)

    partial = tmp / "t-partial"
    shutil.copytree(done, partial)
    shutil.rmtree(partial / "final")
    for name in ("manifest.json", "qa.json", "clips/clip_001.mp4"):
        (partial / name).unlink()
    (partial / "logs" / "log_001.json").write_text(
        json.dumps(
            {
                "schema": CLIP_LOG_SCHEMA,
                "index": 1,
                "status": "aborted",
                "failure": {"kind": "timeout", "message": "clip deadline passed"},
            }
        )
    )

    failed = tmp / "t-broken"
    (failed).mkdir()
    (failed / "failure.json").write_text(
        json.dumps(
            {
                "schema": "vgkit.failure/2",  # as vgkit.evaluate.sweep writes it: the failure record with its kind
                "model": "broken-model",
                "kind": "layout",
                "phase": "load",
                "error_class": "ModelUnavailableError",
                "message": "model 'broken-model': no model_index.json",
                "exit_code": 3,
                "stage": "load",
                "elapsed_s": 1.5,
                "at": "2026-11-23T08:00:00+00:00",
            }
        )
    )
    empty = tmp / "t-empty"
    empty.mkdir()
    return {"done": done, "partial": partial, "failed": failed, "empty": empty, "spec": spec}


def test_qa_json_of_a_real_run_covers_every_clip_and_seam(runs: dict[str, Path]) -> None:
    record = json.loads((runs["done"] / "qa.json").read_text())
    assert record["schema"] == QA_SCHEMA
    assert [c["index"] for c in record["clips"]] == [0, 1]
    assert [s["index"] for s in record["seams"]] == [1]
    assert all(c["num_frames"] == 121 and c["drift_delta_e"] is not None for c in record["clips"])
    assert record["prompt_match_model"] is None and all(c["prompt_match"] is None for c in record["clips"])
    assert record["reference"]["path"] == str(DEMO_IMAGE)


def test_qa_refuses_a_reference_the_run_did_not_start_from(runs: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.png"
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(other)
    with pytest.raises(SpecError, match="not the image clip 0 started from"):
        run_qa(runs["done"], reference=other)
    with pytest.raises(ArtifactError, match="no finished clip"):
        run_qa(runs["empty"])


def test_qa_command_prints_verdicts_and_writes_qa_json(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = json.loads((runs["done"] / "qa.json").read_text())
    assert main(["qa", str(runs["done"]), "--reference", str(DEMO_IMAGE)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("clip 000: ") and out[1].startswith("clip 001: ")
    assert out[2] == "verdict: " + "; ".join(before["verdicts"])
    assert json.loads((runs["done"] / "qa.json").read_text()) == before  # same frames, same record
    assert main(["qa", str(runs["empty"])]) == 5
    assert "no finished clip" in capsys.readouterr().err


def test_statuses_latency_and_failure_details(runs: dict[str, Path]) -> None:
    done, partial, failed, empty = (summarize_run(runs[k]) for k in ("done", "partial", "failed", "empty"))
    assert (done.status, partial.status, failed.status, empty.status) == ("completed", "partial", "failed", "failed")
    assert done.model == "wan22-tiny" and failed.model == "broken-model" and empty.model == "t-empty"
    logs = [json.loads(p.read_text()) for p in sorted((runs["done"] / "logs").glob("log_*.json"))]
    assert done.latency_s == pytest.approx(logs[0]["load_s"] + sum(g["timings_s"]["total_s"] for g in logs))
    assert [s.label for s in done.segments] == ["model load", "clip 0", "clip 1"]
    assert done.peak_rss_bytes == max(g["memory"]["peak_rss_bytes"] for g in logs)
    assert done.gpu is None and done.prompt_match is None
    assert partial.clips_done == 1 and partial.clip_failures[0].status == "aborted"
    assert partial.verdict.startswith("1 of 2 clips finished; no failure record")
    assert failed.kind == "layout" and failed.verdict == (
        "Checkpoint layout mismatch (missing files or not the diffusers layout) "
        "(ModelUnavailableError: model 'broken-model': no model_index.json)"
    )
    assert failed.latency_s == 1.5 and failed.filmstrips == []
    assert empty.verdict == "no failure record" and empty.latency_s is None
    # clip strips and one seam strip, as PNG
    assert [label for label, _ in done.filmstrips] == ["clip 0", "clip 1", "seam into clip 1"]
    assert all(png.startswith(b"\x89PNG") for _, png in done.filmstrips)


def test_markdown_table_and_billing(runs: dict[str, Path], tmp_path: Path) -> None:
    dirs = [runs[k] for k in ("done", "partial", "failed", "empty")]
    assert main(["report", *map(str, dirs), "--out", str(tmp_path / "r"), "--usd-per-hour", "3.6"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and " | " in line]
    assert rows[0] == "| Model | Status | Latency | Prompt Match | Verdict |"  # the seed report's table
    assert rows[1] == "| --- | --- | ---: | ---: | --- |"
    assert rows[2].startswith("| wan22-tiny (t-wan22-tiny) | completed | ")  # two runs of wan22-tiny
    assert "| broken-model | failed | 1.50s | n/a | Checkpoint layout mismatch" in md
    assert "| t-empty | failed | n/a | n/a | no failure record |" in md
    assert "  - clip 1: aborted [timeout]: clip deadline passed" in md
    # the failed clip's log record is a recommendation's evidence, by its kind
    assert "Give wan22-tiny fewer steps or frames" in md
    assert "wan22-tiny (t-partial) [timeout clip 1]: failure: clip deadline" in md
    # no prompt-match score (no CLIP in the cache): latency alone never names a best model
    assert "- Best completed model: none" in md and "latency alone never chooses" in md
    assert "- **wan22-tiny (t-wan22-tiny)**: preset cpu, peak RSS " in md  # the run's plan names its preset
    assert md.count("\n### wan22-tiny (t-partial)\n") == 3  # its shot board, billing and filmstrips sections
    # at $3.60/hour one second costs $0.001
    # (from the unrounded seconds: the table shows 0.85s for 0.853 s, billed $0.0009)
    clip0 = next(line for line in md.splitlines() if line.startswith("| clip 0 |"))
    seconds = next(s.duration_s for s in summarize_run(runs["done"]).segments if s.label == "clip 0")
    assert clip0.split("|")[3:5] == [f" {seconds:.2f}s ", f" ${seconds / 1000:.4f} "]
    for image in re.findall(r"\]\((img/[^)]+)\)", md):
        assert (tmp_path / "r" / image).is_file()
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [r["status"] for r in report["runs"]] == ["completed", "partial", "failed", "failed"]


def test_html_is_self_contained(runs: dict[str, Path], tmp_path: Path) -> None:
    html = write_report([runs["done"], runs["failed"]], out=tmp_path, usd_per_hour=None)["html"].read_text()
    assert "<script" not in html and "<link" not in html and "http" not in html.replace("http-equiv", "")
    srcs = re.findall(r'src="([^"]+)"', html)
    assert len([s for s in srcs if s.startswith("data:image/png;base64,")]) == 3  # filmstrips
    assert len([s for s in srcs if s.startswith("data:video/mp4;base64,")]) == 2  # one preview per clip
    assert len(srcs) == 5
    assert html.count("<svg") == 1 and "ModelUnavailableError" in html


def _render(page: Path, tmp_path: Path) -> tuple[Path, str]:
    assert CHROMIUM is not None
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1280,1600",
            "--enable-logging=stderr",
            "--v=0",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return shot, done.stderr


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "Uncaught" in line or ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test.sh installs it as root)")
def test_html_report_renders_in_headless_chromium(runs: dict[str, Path], tmp_path: Path) -> None:
    dirs = [runs[k] for k in ("done", "partial", "failed")]
    page = write_report(dirs, out=tmp_path / "r", usd_per_hour=2.0)["html"]
    shot, stderr = _render(page, tmp_path)
    assert shot.is_file(), stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1280)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # text, tables, chart and filmstrips drawn
    assert _console_errors(stderr) == []


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test.sh installs it as root)")
def test_the_console_check_catches_a_script_error(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<html><body><p>x</p><script>undefined_fn();</script></body></html>")
    _, stderr = _render(page, tmp_path)
    assert any("Uncaught ReferenceError" in line for line in _console_errors(stderr))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test.sh installs it as root)")
def test_synced_players_render_without_console_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    html = side_by_side([runs["done"], runs["failed"]], clip_index=1, base=tmp_path)
    assert html.count("<video") == 1 and "data:video" not in html  # linked relative to the page, never embedded
    assert "no video (failure.json)" in html and ">wan22-tiny</figcaption>" in html
    assert side_by_side([runs["done"]]) != side_by_side([runs["done"]])  # each group has its own id
    page = tmp_path / "players.html"
    page.write_text(f"<!DOCTYPE html><html><body>{html}</body></html>")
    shot, stderr = _render(page, tmp_path)
    assert shot.is_file() and _console_errors(stderr) == []


def test_report_refuses_a_missing_run_dir(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not a directory"):
        write_report([tmp_path / "nope"], out=tmp_path / "r")
    assert RunLayout(tmp_path / "nope").manifest.name == "manifest.json"


def test_the_preset_note_says_when_a_run_generated_smaller_and_was_upscaled() -> None:
    from vgkit.evaluate.report.summary import preset_note

    plan = {"preset": {"name": "4090"}, "width": 960, "height": 544, "output_width": 1280, "output_height": 720}
    assert preset_note(plan) == "4090 (960x544 generated, upscaled to 1280x720)"
    assert preset_note({**plan, "output_width": 960, "output_height": 544}) == "4090"
    assert preset_note(None) == "n/a"


def test_gpu_notes_skip_metrics_the_gpu_does_not_report(tmp_path: Path) -> None:
    """vgkit.supervise.telemetry records None for a metric NVML calls unsupported (no temperature sensor on
    some cloud GPUs); the notes keep the metrics that were measured and say n/a for the rest."""
    from vgkit.evaluate.report.summary import summarize_run

    (tmp_path / "logs").mkdir()
    for i, temp in enumerate((None, None)):
        telemetry = {"available": True, "samples": 2, "utilization_pct_mean": 50.0 + i * 10,
                     "temperature_c_max": temp, "memory_used_bytes_max": 2**31}  # fmt: skip
        log = {"schema": CLIP_LOG_SCHEMA, "index": i, "status": "aborted", "gpu_telemetry": telemetry}
        (tmp_path / "logs" / f"log_{i:03d}.json").write_text(json.dumps(log))
    gpu = summarize_run(tmp_path).gpu
    assert gpu == {"samples": 4, "mean_util_pct": 55.0, "peak_temp_c": None, "peak_mem_used_mib": 2048}


def test_a_run_refused_by_the_cost_planner_is_infeasible_in_the_report(tmp_path: Path) -> None:
    """The sweep writes the refusal as the run's failure record; the report names it infeasible."""
    from vgkit.evaluate.report.markdown import render_markdown
    from vgkit.evaluate.report.summary import summarize_run

    message = "plan on hunyuan-i2v (80gb preset) cannot finish on the a100: projected 790 s per clip > 600 s"
    failure = classify(InfeasiblePlanError(message)).to_dict()  # the record vgkit.evaluate.sweep writes for the refusal
    record = {"schema": "vgkit.failure/2", "model": "hunyuan-i2v", **failure, "stage": "plan", "elapsed_s": 1.0}
    (tmp_path / "failure.json").write_text(json.dumps(record))
    run = summarize_run(tmp_path)
    assert run.status == "infeasible" and run.kind == "infeasible"
    assert run.verdict == f"Refused by the cost planner: infeasible on this card (InfeasiblePlanError: {message})"
    md = render_markdown([run], usd_per_hour=None, images={})
    assert "- Failed: 1" in md and "| hunyuan-i2v | infeasible | 1.00s | n/a | Refused by the cost planner" in md
    assert "cannot meet the plan on this card" in md  # its recommendation, with its evidence:
    assert "hunyuan-i2v [infeasible at stage plan]: InfeasiblePlanError" in md


def test_two_runs_of_one_model_are_told_apart_by_their_folders(tmp_path: Path) -> None:
    """`vgkit sweep --seeds 2` makes two runs of each model: each row, column and section of the
    report names the run's folder with the model; a model run once keeps its plain name."""
    message = "plan on wan22 (4090 preset) cannot finish on the 4090: projected 455 s per clip > 300 s"
    failure = classify(InfeasiblePlanError(message)).to_dict()
    folders = {"t-wan22-seed7": "wan22", "t-wan22-seed1007": "wan22", "t-cogvideox15": "cogvideox15"}
    for folder, model in folders.items():
        (tmp_path / folder).mkdir()
        record = {"schema": "vgkit.failure/2", "model": model, **failure, "stage": "plan", "elapsed_s": 1.0}
        (tmp_path / folder / "failure.json").write_text(json.dumps(record))
    written = write_report([tmp_path / f for f in folders], out=tmp_path / "report")
    md, html = written["markdown"].read_text(), written["html"].read_text()
    for text in (md, html):
        assert "wan22 (t-wan22-seed7)" in text and "wan22 (t-wan22-seed1007)" in text
        assert "cogvideox15 (" not in text
    assert "| wan22 (t-wan22-seed7) | infeasible |" in md and "| cogvideox15 | infeasible |" in md
    assert "wan22 (t-wan22-seed1007) [infeasible at stage plan]" in md  # the evidence line
    assert json.loads(written["json"].read_text())["runs"][0]["model"] == "wan22"  # the data keeps the model


def test_markdown_is_diff_friendly_the_same_runs_give_the_same_bytes(runs: dict[str, Path], tmp_path: Path) -> None:
    """No wall-clock time of writing and one fact per line: re-reporting the same runs changes
    nothing, and a changed fact changes only its own lines."""
    dirs = [runs[k] for k in ("done", "failed")]
    first = write_report(dirs, out=tmp_path / "a", usd_per_hour=1.0)["markdown"].read_text()
    again = write_report(dirs, out=tmp_path / "b", usd_per_hour=1.0)["markdown"].read_text()
    assert first == again
    failure = json.loads((runs["failed"] / "failure.json").read_text())
    changed = tmp_path / "t-broken"
    shutil.copytree(runs["failed"], changed)
    (changed / "failure.json").write_text(json.dumps({**failure, "elapsed_s": 2.5}))
    other = write_report([runs["done"], changed], out=tmp_path / "a", usd_per_hour=1.0)["markdown"].read_text()
    differing = [(a, b) for a, b in zip(first.splitlines(), other.splitlines(), strict=True) if a != b]
    assert [b.split(" | ")[:3] for _, b in differing] == [["| broken-model", "failed", "2.50s"]]
