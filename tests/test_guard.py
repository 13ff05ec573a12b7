"""Guardrails: the watchdog kills a hung worker's whole process group; a clip deadline below one
clip's time aborts it through the cooperative interrupt; decode retries and saved latents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, spec_dict, write_spec
from tests.stand_ins import OutOfMemoryDecoder, children, gone
from tests.tiny_models import clip_request, direct_frames, tiny_generator
from vgkit.errors import GenerationError, GuardrailError
from vgkit.generate.generator import DECODE_ATTEMPTS, decode_with_retries
from vgkit.models import adapter
from vgkit.records.artifacts import RunLayout
from vgkit.supervise.guard import DeadlineExceeded, Deadlines
from vgkit.supervise.telemetry import GpuSampler
from vgkit.supervise.worker import supervise_job


def _one_shot_spec(tmp_path: Path, **overrides: int) -> Path:
    data = spec_dict()
    data["shots"] = data["shots"][:1]
    data["overrides"] = {**data["overrides"], **overrides}
    return write_spec(tmp_path / "spec.yaml", data)


def test_hung_call_is_killed_with_its_whole_process_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the worker child runs ``python -m tests.stand_ins``
    spec = _one_shot_spec(tmp_path)
    run_dir = tmp_path / "run"
    layout = RunLayout(run_dir)
    deadlines = Deadlines.for_run(clip_count=1, clip_timeout_s=1.0, run_timeout_s=300.0)
    child = [sys.executable, "-m", "tests.stand_ins", str(spec), str(run_dir)]
    with pytest.raises(GuardrailError, match=r"watchdog: clip 000 \(denoise\) passed the clip deadline of 1 s"):
        supervise_job(child, layout=layout, deadlines=deadlines, grace_s=1.0)
    pids = json.loads((run_dir / "pids.json").read_text())
    assert gone(pids["worker"], group=True), "a process of the worker's group survived"
    assert gone(pids["grandchild"], group=False), "the worker's grandchild survived"
    log = json.loads(layout.log(0).read_text())
    assert (log["status"], log["killed_by"]) == ("aborted", "watchdog")
    failure = log["failure"]
    assert (failure["kind"], failure["phase"], failure["clip_index"], failure["exit_code"]) == (
        "timeout",
        "denoise",
        0,
        6,
    )


def test_clip_deadline_aborts_the_real_pipeline_with_log_and_exit_code(tmp_path: Path) -> None:
    # 200 steps at 128x128 take several seconds on any machine (40 at 64x64 could finish inside
    # the 1 s deadline on a quiet one, and the deadline then passed during the decode instead).
    spec = _one_shot_spec(tmp_path, steps=200, width=128, height=128)
    run_dir = tmp_path / "run"
    clip_timeout_s, grace_s = 1.0, 30.0
    limits = ["--clip-timeout-s", str(clip_timeout_s), "--run-timeout-s", "300", "--watchdog-grace-s", str(grace_s)]
    done = subprocess.run(
        [sys.executable, "-m", "vgkit", "run", str(spec), "--out", str(run_dir), *limits],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == GuardrailError.exit_code, done.stderr
    assert "vgkit: error: clip 000: the clip deadline of 1 s passed during denoise" in done.stderr
    log = json.loads(RunLayout(run_dir).log(0).read_text())
    failure = log["failure"]
    assert (log["status"], failure["kind"], failure["phase"], failure["clip_index"]) == (
        "aborted",
        "timeout",
        "denoise",
        0,
    )
    assert (failure["error_class"], failure["exit_code"]) == ("DeadlineExceeded", 6)
    assert 1 <= log["effective"]["steps"] < 200
    assert log["timings_s"]["total_s"] <= clip_timeout_s + grace_s
    assert log["requested"]["steps"] == 200
    # Nothing of the aborted clip counts as finished: no clip, no frame, no (partial) latents.
    assert not RunLayout(run_dir).clip(0).exists()
    assert not (run_dir / "latents" / "latents_000.pt").exists()
    assert not list(run_dir.rglob(".*.part*"))


def test_run_deadline_stops_before_the_first_clip(small_spec: Path, tmp_path: Path) -> None:
    from vgkit.generate.runner import run_job

    with pytest.raises(DeadlineExceeded, match=r"run: the run deadline of 0.01 s passed during load") as caught:
        run_job(small_spec, out=tmp_path / "run", run_timeout_s=0.01, progress=lambda line: None)
    assert (caught.value.deadline, caught.value.kind, caught.value.phase) == ("run_deadline", "timeout", "load")
    assert not list((tmp_path / "run" / "logs").glob("log_*.json"))


@pytest.mark.parametrize("failures", [0, 2])
def test_decode_out_of_memory_is_retried_leaner(failures: int) -> None:
    frames = np.zeros((5, 8, 8, 3), dtype=np.uint8)
    stand_in = OutOfMemoryDecoder(adapter("wan22-tiny"), failures=failures, frames=frames)
    got, tried = decode_with_retries(stand_in, latents=None, index=3)
    assert got is frames
    assert tried == list(DECODE_ATTEMPTS[: failures + 1])


def test_decode_out_of_memory_in_every_attempt_keeps_the_latents_message() -> None:
    stand_in = OutOfMemoryDecoder(adapter("wan22-tiny"), failures=99, frames=np.zeros((1, 1, 1, 3), np.uint8))
    with pytest.raises(GenerationError, match=r"clip 003: VAE decode ran out of memory in every attempt"):
        decode_with_retries(stand_in, latents=None, index=3)
    assert stand_in.attempts == list(DECODE_ATTEMPTS)


def test_decode_from_saved_latents_equals_the_direct_pipeline_call(tmp_path: Path) -> None:
    from vgkit.generate.chain import _save_latents, _saved_latents

    gen = tiny_generator("wan22-tiny")
    request = replace(clip_request("wan22-tiny", 9), guidance_scale=5.0, max_sequence_length=32)
    denoised = gen.denoise(request)
    path = tmp_path / "latents" / "latents_000.pt"
    _save_latents(path, denoised.latents, key_sha256="k", steps_done=denoised.steps_done)
    assert _saved_latents(path, key_sha256="other", steps=2) is None
    from_disk = gen.decode(_saved_latents(path, key_sha256="k", steps=2), attempt="as_loaded")
    assert from_disk.shape == (9, 64, 64, 3)
    assert np.array_equal(from_disk, direct_frames(gen, request))


def test_gpu_telemetry_is_absent_on_cpu_without_error() -> None:
    with GpuSampler(interval_s=0.01) as sampler:
        time.sleep(0.05)
    summary = sampler.summary()
    assert summary["available"] is False
    assert summary["reason"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_worker_dies_with_its_supervisor_and_the_lock_frees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vgkit.supervise.lock import DeviceBusyError, acquire_device_lock

    monkeypatch.setenv("VGKIT_LOCK_DIR", str(tmp_path / "locks"))
    spec = _one_shot_spec(tmp_path, steps=200)
    parent = subprocess.Popen(
        [sys.executable, "-m", "vgkit", "run", str(spec), "--out", str(tmp_path / "run"), "--lock"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert parent.stdout is not None
    for line in parent.stdout:  # the worker shares the parent's stdout
        if line.startswith("loaded in "):
            break
    (worker,) = children(parent.pid)
    parent.kill()  # SIGKILL: no cleanup code runs in the supervisor (an SSH drop, an OOM kill)
    parent.wait()
    assert gone(worker, group=True), "the worker outlived its supervisor"
    # The kernel releases a dead process's flock a few ms after it exits (deferred file release),
    # so the next job may need one short poll; it must not need more than a few.
    for _ in range(20):
        try:
            with acquire_device_lock("cpu", run_dir=tmp_path / "next"):
                break
        except DeviceBusyError:
            time.sleep(0.1)
    else:
        pytest.fail("the device lock was still held 2 s after the worker died")


@pytest.mark.parametrize(("name", "num_frames"), [("cogvideox15-tiny", 17), ("hunyuan-i2v-tiny", 9)])
def test_other_families_decode_saved_latents_like_their_pipeline(name: str, num_frames: int) -> None:
    gen = tiny_generator(name)
    request = replace(clip_request(name, num_frames, width=32, height=32), max_sequence_length=64)
    denoised = gen.denoise(request)
    assert denoised.frames_fhwc is None and denoised.latents is not None  # latents come back undecoded
    separate = gen.decode(denoised.latents, attempt="as_loaded")
    assert separate.shape == (num_frames, 32, 32, 3)
    assert np.array_equal(separate, direct_frames(gen, request))
