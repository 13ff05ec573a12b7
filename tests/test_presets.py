"""Presets: named, recorded on the loaded pipeline, applied on CPU where they can be (real pipelines)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vgkit.checkpoints import locate_checkpoint
from vgkit.errors import SpecError
from vgkit.models import adapter

PRESET_MODELS = ["cogvideox15", "hunyuan-i2v"]


def _cases() -> list[Any]:
    cases = []
    for name in PRESET_MODELS:
        for preset in adapter(name).presets:
            blocker = preset.cpu_blocker()
            marks = [pytest.mark.skip(reason=blocker)] if blocker else []
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


def test_hunyuan_4090_is_reduced_and_720p_class_after_upscale() -> None:
    preset = adapter("hunyuan-i2v").preset("4090")
    assert (preset.max_width, preset.max_height, preset.steps) == (960, 544, 30)
    assert preset.expected_peak_gib is not None and preset.expected_peak_gib <= 24


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


def test_a_preset_that_needs_cuda_is_refused_on_cpu_with_the_fix() -> None:
    model = adapter("cogvideox15-tiny")
    with pytest.raises(SpecError, match=r"enable_model_cpu_offload needs an accelerator .*fix: run on a CUDA GPU"):
        model.load(locate_checkpoint(model), device="cpu", preset="4090")


def test_vgkit_models_lists_each_real_models_presets(capsys: pytest.CaptureFixture[str]) -> None:
    from vgkit.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "preset 4090  cuda, offload=group, vae-tiling, fp8-layerwise, max 960x544, 30 steps, ~24 GiB" in out
    assert out.count("preset 80gb") == len(PRESET_MODELS)
