"""Presets: named, recorded on the loaded pipeline, applied on CPU where they can be (real pipelines)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.errors import SpecError
from vgkit.generate.runner import plan_job
from vgkit.hub.checkpoints import locate_checkpoint
from vgkit.models import adapter
from vgkit.spec.plan import RunPlan, make_plan
from vgkit.spec.schema import load_spec

PRESET_MODELS = ["wan22", "cogvideox15", "hunyuan-i2v"]


def _cases() -> list[Any]:
    cases = []
    for name in PRESET_MODELS:
        for preset in adapter(name).presets:
            blocker = preset.cpu_blocker()
            # Those run on a stand-in execution device instead, with the real offload hooks (test_offload.py).
            marks = [pytest.mark.skip(reason=f"{blocker}: see tests/test_offload.py")] if blocker else []
            cases.append(pytest.param(f"{name}-tiny", preset.name, marks=marks, id=f"{name}-{preset.name}"))
    return cases


@pytest.mark.parametrize("name", PRESET_MODELS)
def test_each_model_has_the_three_presets_with_a_source(name: str) -> None:
    real, tiny = adapter(name), adapter(f"{name}-tiny")
    assert [p.name for p in real.presets] == ["4090", "80gb", "cpu"]
    assert tiny.presets == real.presets  # the tiny twin is configured exactly like the real model
    assert all(p.source for p in real.presets)
    assert real.default_preset("cpu") == real.preset("cpu")
    assert real.default_preset("cuda", gpu_memory_gib=24.0) == real.preset("4090")
    assert real.default_preset("cuda", gpu_memory_gib=80.0) == real.preset("80gb")


def _native_plan(name: str, preset_name: str, tmp_path: Path) -> RunPlan:
    spec = load_spec(write_spec(tmp_path / "spec.yaml", spec_dict(model=name, overrides={})))
    model = adapter(name)
    return make_plan(spec, model, preset=model.preset(preset_name))


@pytest.mark.parametrize("name", PRESET_MODELS)
@pytest.mark.parametrize("preset_name", ["4090", "80gb"])
def test_every_gpu_preset_yields_a_720p_class_final_video(name: str, preset_name: str, tmp_path: Path) -> None:
    plan = _native_plan(name, preset_name, tmp_path)
    assert min(plan.output_width, plan.output_height) >= 704
    assert plan.upscaled == (adapter(name).preset(preset_name).size_scale < 1)


def test_hunyuan_4090_generates_800x448_at_20_steps_and_upscales_to_720p(tmp_path: Path) -> None:
    plan = _native_plan("hunyuan-i2v", "4090", tmp_path)
    assert (plan.width, plan.height, plan.steps) == (800, 448, 20)
    assert (plan.output_width, plan.output_height) == (1280, 720)
    assert plan.differs_from_baseline == {"width": 800, "height": 448, "steps": 20}
    assert "upscaled to 1280x720" in plan.summary()


def test_an_explicit_steps_override_wins_over_the_preset_steps(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "s.yaml", spec_dict(model="hunyuan-i2v", overrides={"steps": 40})))
    model = adapter("hunyuan-i2v")
    assert make_plan(spec, model, preset=model.preset("4090")).steps == 40


def test_cogvideox_4090_generates_1024x576_at_40_steps_to_stay_inside_the_clip_limit(tmp_path: Path) -> None:
    plan = _native_plan("cogvideox15", "4090", tmp_path)
    assert (plan.width, plan.height, plan.steps) == (1024, 576, 40)
    assert (plan.output_width, plan.output_height) == (1360, 768)


def test_the_spec_preset_reaches_the_plan_and_the_cli_flag_overrides_it(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "s.yaml", spec_dict(model="hunyuan-i2v-tiny", preset="4090"))
    assert plan_job(path)[2].preset["name"] == "4090"
    assert plan_job(path, preset="cpu")[2].preset["name"] == "cpu"
    with pytest.raises(SpecError, match=r"preset = 'h100': hunyuan-i2v-tiny has no such preset"):
        plan_job(path, preset="h100")


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(
        SpecError, match=r"preset = 'h100': cogvideox15 has no such preset; fix: use one of 4090, 80gb, cpu"
    ):
        adapter("cogvideox15").preset("h100")


@pytest.mark.parametrize(("model_name", "preset_name"), _cases())
def test_preset_applies_on_cpu_and_the_pipeline_still_generates(model_name: str, preset_name: str) -> None:
    from PIL import Image

    model = adapter(model_name)
    preset = model.preset(preset_name)
    pipe: Any = model.load(locate_checkpoint(model), device="cpu", preset=preset_name)
    record = pipe.vgkit_preset
    assert (record["name"], record["device"]) == (preset_name, "cpu")
    assert ("vae-tiling" in record["applied"]) == preset.vae_tiling == pipe.vae.use_tiling
    assert ("group-offload-leaf" in record["applied"]) == (preset.offload == "group")
    assert ("fp8-layerwise" in record["applied"]) == preset.fp8_layerwise
    assert str(pipe.transformer.dtype).removeprefix("torch.") in (preset.transformer_dtype, "float8_e4m3fn")
    if preset.fp8_layerwise:
        assert any(p.dtype.is_floating_point and p.dtype.itemsize == 1 for p in pipe.transformer.parameters())
    out = pipe(
        image=Image.new("RGB", (32, 32), (90, 40, 10)),
        prompt="a boat",
        height=32,
        width=32,
        num_frames=9,
        num_inference_steps=1,
        guidance_scale=6.0,
        output_type="np",
    )
    frames = np.asarray(out.frames)
    assert frames.shape == (1, 9, 32, 32, 3)
    assert np.isfinite(frames).all()


@pytest.mark.parametrize("name", ["wan22-tiny", "cogvideox15-tiny"])
def test_a_preset_that_needs_cuda_is_refused_on_cpu_with_the_fix(name: str) -> None:
    model = adapter(name)
    with pytest.raises(SpecError, match=r"enable_model_cpu_offload needs an accelerator .*fix: run on a CUDA GPU"):
        model.load(locate_checkpoint(model), device="cpu", preset="4090")


def test_vgkit_models_lists_each_real_models_presets(capsys: pytest.CaptureFixture[str]) -> None:
    from vgkit.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert (
        "preset 4090  cuda, offload=group, vae-tiling, fp8-layerwise, 0.625x size + upscale, 0.4x steps; "
        "runs 800x448, 20 steps, upscaled to 1280x720"
    ) in out
    assert out.count("preset 80gb") == len(PRESET_MODELS)
    # Every GPU preset shows its projection on the card it is named for, inside the clip limit.
    projected = re.findall(r"projected ~(\d+) s/clip, ~[\d.]+ GiB on (.+?)(?: \(over .*\))?$", out, re.M)
    named = [seconds for seconds, gpu in projected if "4090" in gpu or "H100" in gpu]
    assert len(named) == 2 * len(PRESET_MODELS) and all(int(s) <= 600 for s in named)
    assert "on NVIDIA A100 80 GB (over the 600 s clip limit: infeasible there)" in out  # CogVideoX 80gb
