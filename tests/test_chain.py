"""The chained run on the real tiny Wan pipeline: handoff hashes, logs, resume."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.finish.encode import count_frames
from vgkit.generate.runner import JobResult, run_job
from vgkit.records.artifacts import RunLayout, sha256_file
from vgkit.records.events import Event, read_events
from vgkit.spec.images import load_rgb


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[JobResult, list[Event]]:
    tmp = tmp_path_factory.mktemp("chain")
    spec = write_spec(tmp / "spec.yaml", spec_dict())
    lines: list[Event] = []
    result = run_job(spec, out=tmp / "run", progress=lines.append)
    return result, lines


def _logs(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((run_dir / "logs").glob("log_*.json"))]


def test_every_clip_has_its_artifacts(finished_run: tuple[JobResult, list[Event]]) -> None:
    result, lines = finished_run
    layout = RunLayout(result.run_dir)
    assert (lines[0].stage, lines[0].detail) == ("note", "vgkit: model wan22-tiny on cpu (requested)")
    for i in range(3):
        assert count_frames(layout.clip(i)) == 121
        assert load_rgb(layout.last_frame(i)).shape == (64, 64, 3)
        assert layout.log(i).is_file()


def test_events_jsonl_holds_every_event_of_the_run(
    finished_run: tuple[JobResult, list[Event]],
) -> None:
    result, lines = finished_run
    recorded = read_events(result.run_dir)[: len(lines)]  # later tests run it again
    assert [e.__dict__ for e in recorded] == [e.__dict__ for e in lines]  # every event of the run, from the first
    stages = [e.stage for e in recorded]
    assert [e.clip_index for e in recorded if e.stage == "clip-done"] == [0, 1, 2]
    assert stages.index("load") < stages.index("loaded") < stages.index("clip-start") < stages.index("stitch")
    assert stages[-1] == "run-done"
    steps = [(e.clip_index, e.step, e.total) for e in recorded if e.stage == "denoise"]
    assert (0, 2, 2) in steps and all(e.eta_s is not None for e in recorded if e.stage == "denoise")


def test_handoff_hashes_chain_clip_to_clip(finished_run: tuple[JobResult, list[Event]]) -> None:
    result, _ = finished_run
    logs = _logs(result.run_dir)
    assert logs[0]["input"]["source"] == "reference_image"
    for prev, nxt in pairwise(logs):
        assert nxt["input"]["source"] == prev["artifacts"]["last_frame"]["path"]
        assert nxt["input"]["sha256"] == prev["artifacts"]["last_frame"]["sha256"]
        assert nxt["request"]["input_sha256"] == nxt["input"]["sha256"]


def test_log_records_prompt_seed_params_and_provenance(finished_run: tuple[JobResult, list[Event]]) -> None:
    result, _ = finished_run
    log = _logs(result.run_dir)[1]
    assert log["schema"] == "vgkit.clip-log/3"
    assert log["request"]["seed"] == 8
    assert log["call_kwargs"]["prompt"].startswith("Boat 1, sails. Sea. Camera: slow smooth horizontal pan.")
    assert log["call_kwargs"]["num_inference_steps"] == 2
    assert log["effective"] == {
        "num_frames": 121,
        "width": 64,
        "height": 64,
        "fps": 24,
        "steps": 2,
        "decode_attempt": "as_loaded",
    }
    assert log["model"]["pipeline_class"] == "WanImageToVideoPipeline"
    assert log["model"]["scheduler_class"] == "UniPCMultistepScheduler"
    assert log["packages"]["diffusers"] == "0.42.1"
    assert log["artifacts"]["clip"]["sha256"] == sha256_file(result.run_dir / "clips" / "clip_001.mp4")
    assert {"load_s", "denoise_s", "decode_s", "encode_s", "total_s"} <= set(log["timings_s"])
    assert (log["status"], log["failure"]) == ("ok", None)
    assert log["requested"] == {"num_frames": 121, "width": 64, "height": 64, "fps": 24, "steps": 2}
    assert log["requested_duration_s"] == 5
    assert log["request"]["negative_prompt"] == log["call_kwargs"]["negative_prompt"] == "blur"
    assert log["model"]["scheduler_config"]["num_train_timesteps"] > 0
    assert log["code_commit"] and log["vgkit_version"]
    assert log["memory"]["peak_rss_bytes"] > 0
    assert log["gpu_telemetry"]["available"] is False  # CPU: absent, without error
    latents = result.run_dir / log["artifacts"]["latents"]["path"]
    assert latents.name == "latents_001.pt"
    assert log["artifacts"]["latents"]["sha256"] == sha256_file(latents)


def test_last_frame_png_is_the_generated_frame_not_the_mp4(finished_run: tuple[JobResult, list[Event]]) -> None:
    from vgkit.finish.encode import read_frames

    result, _ = finished_run
    layout = RunLayout(result.run_dir)
    png = load_rgb(layout.last_frame(0)).astype(int)
    decoded = read_frames(layout.clip(0))[-1].astype(int)
    # The mp4 is lossy: its last frame differs from the lossless PNG the next clip started from.
    assert np.abs(png - decoded).mean() > 0


def test_rerun_reuses_verified_clips(finished_run: tuple[JobResult, list[Event]]) -> None:
    result, _ = finished_run
    before = {p: p.stat().st_mtime_ns for p in (result.run_dir / "clips").iterdir()}
    final_hash = sha256_file(result.final_video)
    lines: list[Event] = []
    again = run_job(result.run_dir.parent / "spec.yaml", out=result.run_dir, progress=lines.append)
    assert [e.clip_index for e in lines if e.stage == "clip-reused"] == [0, 1, 2]
    assert not any(e.stage == "clip-start" for e in lines)
    assert {p: p.stat().st_mtime_ns for p in (result.run_dir / "clips").iterdir()} == before
    assert sha256_file(again.final_video) == final_hash


def test_changed_clip_is_regenerated_with_same_pixels(finished_run: tuple[JobResult, list[Event]]) -> None:
    result, _ = finished_run
    layout = RunLayout(result.run_dir)
    want = sha256_file(layout.last_frame(2))
    layout.clip(2).write_bytes(b"torn")
    lines: list[Event] = []
    run_job(result.run_dir.parent / "spec.yaml", out=result.run_dir, progress=lines.append)
    # The denoised latents were kept on disk: the clip is decoded again, not re-denoised.
    decodes = [(e.clip_index, e.figures.get("saved_latents")) for e in lines if e.stage == "decode"]
    assert decodes == [(2, "latents_002.pt")]
    assert not any(e.stage == "clip-start" for e in lines)
    assert sha256_file(layout.last_frame(2)) == want


def test_keyframe_shot_starts_from_its_image_and_keeps_its_first_frame(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (96, 96), (240, 20, 20)).save(tmp_path / "key.png")
    data = spec_dict()
    data["shots"] = data["shots"][:2]
    data["shots"][1]["source_image"] = "key.png"
    result = run_job(write_spec(tmp_path / "spec.yaml", data), out=tmp_path / "run", progress=lambda _: None)
    log = json.loads((result.run_dir / "logs" / "log_001.json").read_text())
    assert log["input"]["source"] == "shots[1].source_image"
    assert result.final_frames == 2 * 121  # a new scene: no duplicated first frame to drop
    assert count_frames(result.final_video) == 2 * 121


def test_on_clip_is_called_as_each_new_clip_lands(tmp_path: Path) -> None:
    data = spec_dict()
    data["shots"] = data["shots"][:2]
    landed: list[tuple[int, bool]] = []
    run_job(
        write_spec(tmp_path / "spec.yaml", data),
        out=tmp_path / "run",
        progress=lambda _: None,
        on_clip=lambda index, clip: landed.append((index, clip.is_file())),
    )
    assert landed == [(0, True), (1, True)]
