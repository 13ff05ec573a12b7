"""HunyuanVideo-I2V: the tiny checkpoint through the real loader, the Llama-3 tokenizer fix, a chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import spec_dict, write_spec
from tests.tiny_models import clip_request, tiny_generator
from vgkit.finish.encode import read_frames
from vgkit.generate.generator import ClipRequest, InProcessGenerator
from vgkit.generate.runner import run_job
from vgkit.hub.checkpoints import locate_checkpoint, tiny_commit
from vgkit.models import adapter

MODEL = "hunyuan-i2v-tiny"


@pytest.fixture(scope="module")
def generator() -> InProcessGenerator:
    return tiny_generator(MODEL)


def _request(num_frames: int, *, width: int = 64, height: int = 64) -> ClipRequest:
    return clip_request(MODEL, num_frames, width=width, height=height)


def test_real_and_tiny_share_the_rules() -> None:
    real, tiny = adapter("hunyuan-i2v"), adapter(MODEL)
    assert (real.baseline.width, real.baseline.height, real.baseline.fps) == (1280, 720, 24)
    assert (real.baseline.steps, real.baseline.guidance_scale) == (50, 6.0)
    assert real.frame_rule == tiny.frame_rule
    assert real.frame_rule.is_valid(129)
    assert real.size_multiple == tiny.size_multiple == 16
    real.check_size(1280, 720)
    tiny.check_size(tiny.baseline.width, tiny.baseline.height)


def test_tiny_checkpoint_is_the_real_architecture_in_hub_layout(hub_cache: Path) -> None:
    model = adapter(MODEL)
    snap = locate_checkpoint(model)
    assert snap == hub_cache / "models--vgkit-tiny--HunyuanVideo-I2V-tiny" / "snapshots" / tiny_commit(model)
    index = json.loads((snap / "model_index.json").read_text())
    assert index["_class_name"] == "HunyuanVideoImageToVideoPipeline"
    assert index["text_encoder"] == ["transformers", "LlavaForConditionalGeneration"]
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModel"]
    assert index["tokenizer"] == ["transformers", "LlamaTokenizerFast"]  # as the real repo names it
    transformer = json.loads((snap / "transformer" / "config.json").read_text())
    assert (transformer["image_condition_type"], transformer["in_channels"]) == ("token_replace", 16)
    llava = json.loads((snap / "text_encoder" / "config.json").read_text())
    vision = llava["vision_config"]
    assert (vision["image_size"] // vision["patch_size"]) ** 2 == 576  # the template's image_emb_len
    assert llava["text_config"]["num_hidden_layers"] >= 3  # the pipeline reads hidden_states[-3]
    assert not list(snap.rglob("*.bin")), "weights must be safetensors only"


def test_llama3_tokenizer_pitfall_is_real_and_the_loader_avoids_it(generator: InProcessGenerator) -> None:
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE
    from transformers import LlamaTokenizerFast, PreTrainedTokenizerFast

    text = "<|start_header_id|>system<|end_header_id|>\n\n<image>\nDescribe"
    fixed = generator.pipe.tokenizer
    assert type(fixed) is PreTrainedTokenizerFast  # not the LlamaTokenizerFast model_index.json names
    tokens = fixed.convert_ids_to_tokens(fixed(text).input_ids)
    assert tokens.index("<image>") == DEFAULT_PROMPT_TEMPLATE["image_emb_start"] == 5
    assert tokens[4] == "ĊĊ"  # "\n\n" survives as one byte-level token
    assert fixed.decode(fixed(text).input_ids, skip_special_tokens=False) == "<|begin_of_text|>" + text
    # The class model_index.json names drops the newlines and shifts <image>.
    broken = LlamaTokenizerFast.from_pretrained(str(generator.snapshot / "tokenizer"))
    broken_tokens = broken.convert_ids_to_tokens(broken(text).input_ids)
    assert "ĊĊ" not in broken_tokens
    assert broken_tokens.index("<image>") != 5
    # The template's crop_start (103) is where the user's prompt begins with the fixed tokenizer.
    prefix = str(DEFAULT_PROMPT_TEMPLATE["template"]).split("{}")[0]
    assert len(fixed(prefix).input_ids) == DEFAULT_PROMPT_TEMPLATE["crop_start"]


def test_generates_exactly_the_requested_clip_at_native_size(generator: InProcessGenerator) -> None:
    base = adapter(MODEL).baseline
    result = generator.generate(_request(17, width=base.width, height=base.height))
    assert result.frames_fhwc.shape == (17, base.height, base.width, 3)
    assert result.call_kwargs["guidance_scale"] == 6.0
    assert result.dropped_kwargs == []
    assert generator.pipe.vgkit_preset == {
        "name": "cpu",
        "device": "cpu",
        "applied": [],
        "describe": "cpu, offload=none",
    }


@pytest.mark.parametrize("num_frames", [9, 13])
def test_every_valid_frame_count_comes_back_exactly(generator: InProcessGenerator, num_frames: int) -> None:
    assert adapter(MODEL).frame_rule.is_valid(num_frames)
    assert generator.generate(_request(num_frames)).frames_fhwc.shape[0] == num_frames


def test_the_pipeline_rounds_counts_off_the_rule_so_the_rule_refuses_them(generator: InProcessGenerator) -> None:
    assert generator.generate(_request(11)).frames_fhwc.shape[0] == 9  # silently rounded down
    assert not adapter(MODEL).frame_rule.is_valid(11)


def test_a_chain_under_the_4090_preset_generates_smaller_and_the_stitch_upscales(tmp_path: Path) -> None:
    """HunyuanVideo's 24 GB case at tiny size: group offload, fp8 weights, 0.75x size, 0.6x steps,
    then a pinned Lanczos upscale to the run's size, recorded in the logs and the manifest."""
    data = spec_dict(model=MODEL, preset="4090", overrides={"width": 48, "height": 48}, shots=spec_dict()["shots"][:2])
    lines: list[str] = []
    result = run_job(write_spec(tmp_path / "spec.yaml", data), out=tmp_path / "run", progress=lines.append)
    assert lines[0] == f"vgkit: model {MODEL} on cpu (requested)"
    logs = [json.loads(p.read_text()) for p in sorted((result.run_dir / "logs").glob("log_*.json"))]
    wanted = {"num_frames": 121, "width": 32, "height": 32, "fps": 24, "steps": 2}  # 48 * 0.75 -> 32, 4 * 0.6 -> 2
    assert [{k: log["effective"][k] for k in wanted} for log in logs] == [wanted] * 2
    assert logs[0]["model"]["pipeline_class"] == "HunyuanVideoImageToVideoPipeline"
    assert logs[0]["preset"]["name"] == "4090"
    assert logs[0]["model"]["preset_applied"]["applied"] == ["fp8-layerwise", "group-offload-leaf", "vae-tiling"]
    assert logs[0]["output_size"] == {"width": 48, "height": 48}
    assert read_frames(result.run_dir / logs[0]["artifacts"]["clip"]["path"]).shape[1:3] == (32, 32)
    final = read_frames(result.final_video)
    assert final.shape[0] == result.final_frames == 2 * 121 - 1
    assert final.shape[1:3] == (48, 48)
    upscale = json.loads(result.manifest.read_text())["stitch"]["upscale"]
    assert upscale["from"] == {"width": 32, "height": 32} and upscale["to"] == {"width": 48, "height": 48}
    assert "lanczos" in upscale["filter"]
