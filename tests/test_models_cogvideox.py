"""CogVideoX1.5-5B-I2V: the tiny checkpoint through the real loader, its frame rule, a 3-clip chain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import spec_dict, write_spec
from tests.tiny_models import clip_request, tiny_generator
from vgkit.finish.encode import count_frames
from vgkit.generate.generator import ClipRequest, InProcessGenerator
from vgkit.generate.runner import run_job
from vgkit.hub.checkpoints import locate_checkpoint, tiny_commit
from vgkit.models import adapter

MODEL = "cogvideox15-tiny"


@pytest.fixture(scope="module")
def generator() -> InProcessGenerator:
    return tiny_generator(MODEL)


def _request(num_frames: int, *, width: int = 64, height: int = 64) -> ClipRequest:
    return clip_request(MODEL, num_frames, width=width, height=height)


def test_real_and_tiny_share_the_rules() -> None:
    real, tiny = adapter("cogvideox15"), adapter(MODEL)
    assert (real.baseline.width, real.baseline.height, real.baseline.fps) == (1360, 768, 16)
    assert (real.baseline.steps, real.baseline.guidance_scale) == (50, 6.0)
    assert real.call_defaults == tiny.call_defaults == {"use_dynamic_cfg": True}
    assert real.frame_rule == tiny.frame_rule
    assert real.size_multiple == tiny.size_multiple == 16
    assert [real.frame_rule.nearest(5 * 16 + 1), real.frame_rule.nearest(10 * 16 + 1)] == [81, 161]
    real.check_size(real.baseline.width, real.baseline.height)
    tiny.check_size(tiny.baseline.width, tiny.baseline.height)


def test_tiny_checkpoint_is_the_real_architecture_in_hub_layout(hub_cache: Path) -> None:
    model = adapter(MODEL)
    snap = locate_checkpoint(model)
    assert snap == hub_cache / "models--vgkit-tiny--CogVideoX1.5-5B-I2V-tiny" / "snapshots" / tiny_commit(model)
    index = json.loads((snap / "model_index.json").read_text())
    assert index["_class_name"] == "CogVideoXImageToVideoPipeline"
    assert index["transformer"] == ["diffusers", "CogVideoXTransformer3DModel"]
    assert index["scheduler"] == ["diffusers", "CogVideoXDDIMScheduler"]  # as the real repo names it
    transformer = json.loads((snap / "transformer" / "config.json").read_text())
    assert transformer["patch_size_t"] == 2  # the 1.5 temporal patch that forces 8k+1 frames
    assert transformer["in_channels"] == 2 * transformer["out_channels"]  # image latents concatenated
    assert not list(snap.rglob("*.bin")), "weights must be safetensors only"


def test_generates_exactly_the_requested_clip_at_native_size(generator: InProcessGenerator) -> None:
    base = adapter(MODEL).baseline
    result = generator.generate(_request(17, width=base.width, height=base.height))
    assert result.frames_fhwc.shape == (17, base.height, base.width, 3)
    assert result.frames_fhwc.dtype == np.uint8
    assert result.call_kwargs["use_dynamic_cfg"] is True
    assert (result.call_kwargs["height"], result.call_kwargs["width"]) == (base.height, base.width)
    assert result.dropped_kwargs == []
    assert generator.pipe.vgkit_preset["name"] == "cpu"


@pytest.mark.parametrize("num_frames", [9, 25])
def test_every_valid_frame_count_comes_back_exactly(generator: InProcessGenerator, num_frames: int) -> None:
    assert adapter(MODEL).frame_rule.is_valid(num_frames)
    assert generator.generate(_request(num_frames)).frames_fhwc.shape[0] == num_frames


def test_the_pipeline_rounds_counts_off_the_rule_so_the_rule_refuses_them(generator: InProcessGenerator) -> None:
    frames = generator.generate(_request(13)).frames_fhwc.shape[0]
    assert frames != 13  # diffusers pads the latents silently: vgkit must never ask for 13
    assert not adapter(MODEL).frame_rule.is_valid(13)
    assert adapter(MODEL).frame_rule.nearest(13) in (9, 17)


def test_three_clip_chain_runs(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(model=MODEL, overrides={"width": 32, "height": 32, "steps": 2}))
    lines: list[str] = []
    result = run_job(spec, out=tmp_path / "run", progress=lines.append)
    assert lines[0] == f"vgkit: model {MODEL} on cpu (requested)"
    logs = [json.loads(p.read_text()) for p in sorted((result.run_dir / "logs").glob("log_*.json"))]
    wanted = {"num_frames": 81, "width": 32, "height": 32, "fps": 16}
    assert [{k: log["effective"][k] for k in wanted} for log in logs] == [wanted] * 3
    assert all(log["call_kwargs"]["use_dynamic_cfg"] is True for log in logs)
    assert logs[0]["model"]["pipeline_class"] == "CogVideoXImageToVideoPipeline"
    assert count_frames(result.final_video) == result.final_frames == 3 * 81 - 2
