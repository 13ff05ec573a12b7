"""HunyuanVideo-I2V (16-channel, ``token_replace``): everything specific to this model family.

- Repo ``hunyuanvideo-community/HunyuanVideo-I2V``, loaded with
  ``HunyuanVideoImageToVideoPipeline``. The first latent frame is the encoded image (token
  replace); the LLaVA-Llama-3 text encoder also sees the image (576 CLIP patches).
- Native 1280x720, sizes in multiples of 16 (VAE 8x times patch 2), 129 frames max, 4k+1
  (the VAE's 4x temporal compression), 24 fps; ``ClipLimits`` 129 native and most. 50 steps,
  ``guidance_scale=6.0`` embedded (one pass per step). Transformer in bf16, the rest in fp16, VAE tiling on (FACTS.md).
- The Llama-3 tokenizer is loaded as ``PreTrainedTokenizerFast`` whatever model_index.json says:
  under transformers 5 the ``LlamaTokenizerFast`` it names swaps in a SentencePiece
  pre-tokenizer that drops newlines and shifts ``<image>`` (FACTS.md).
- The tiny twin carries the real repo's metadata (``vgkit/models/reference/hunyuan-i2v``: every
  class, LLaVA with a 336 px / patch 14 CLIP vision tower, CLIP text encoder with its legacy
  token ids, 16-channel causal VAE, token-replace transformer, the file names and weight
  shards) at toy widths (3 Llama layers), and names ``LlamaTokenizerFast`` in its
  model_index.json as the real repo does.
- Quirks: the transformer passes the text padding mask to attention on every call
  (``masked_attention``: the backends that refuse a mask are refused). vgkit decodes the
  token-replace latents itself (``decode_latents``); a 33-channel ``latent_concat`` checkpoint
  trims decoded frames, not latents, so its pipeline decodes inside its own call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vgkit.models.tiny as tiny
from vgkit.models.base import CPU_PRESET, ClipLimits, FrameRule, ModelAdapter, Preset, execution_device

__all__ = ["HUNYUAN_I2V", "HUNYUAN_I2V_TINY", "HunyuanI2VAdapter", "tiny_tokenizer_corpus"]

_SAMPLE_TEXT = (
    "A lighthouse on a rocky coast at dawn, waves crash on the rocks and a boat sails on the sea. "
    "Camera: slow smooth horizontal pan, photoreal, bright day, 35mm lens, modern coast."
)


def tiny_tokenizer_corpus() -> list[str]:
    """The text the tiny Llama-3 tokenizer is trained on: the prompt template plus sample prose."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import DEFAULT_PROMPT_TEMPLATE

    return [str(DEFAULT_PROMPT_TEMPLATE["template"])] * 4 + [_SAMPLE_TEXT]


@dataclass(frozen=True)
class HunyuanI2VAdapter(ModelAdapter):
    def load_tokenizer(self, snapshot: Path) -> Any:
        """Llama-3's byte-level BPE as ``PreTrainedTokenizerFast``: the ``LlamaTokenizerFast`` that
        model_index.json names would mis-tokenize it under transformers 5 (FACTS.md)."""
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(str(snapshot / "tokenizer"))

    def _components(self, snapshot: Path, *, preset: Preset) -> dict[str, Any]:
        """The preset's transformer (and VAE), plus the tokenizer loaded as the pitfall needs."""
        return {**super()._components(snapshot, preset=preset), "tokenizer": self.load_tokenizer(snapshot)}

    def decodes_separately(self, pipe: Any) -> bool:
        """True for token replace; the 33-channel ``latent_concat`` variant decodes in its own call."""
        return bool(pipe.transformer.config.get("image_condition_type") != "latent_concat")

    def decode_latents(self, pipe: Any, latents: Any) -> Any:
        """The decode tail of ``HunyuanVideoImageToVideoPipeline.__call__`` (0.42.1), token_replace."""
        import torch

        latents = latents.to(device=execution_device(pipe), dtype=pipe.vae.dtype) / pipe.vae_scaling_factor
        with torch.no_grad():
            video = pipe.vae.decode(latents, return_dict=False)[0]
        return pipe.video_processor.postprocess_video(video, output_type="np")

    def build_tiny(self, dest: Path) -> None:
        import torch
        from diffusers import (
            AutoencoderKLHunyuanVideo,
            FlowMatchEulerDiscreteScheduler,
            HunyuanVideoImageToVideoPipeline,
            HunyuanVideoTransformer3DModel,
        )
        from transformers import (
            CLIPImageProcessor,
            CLIPTextConfig,
            CLIPTextModel,
            LlavaConfig,
            LlavaForConditionalGeneration,
        )

        from vgkit.models.base import quiet_hf_libraries

        quiet_hf_libraries()
        tokenizer = tiny.llama3_tokenizer(tiny_tokenizer_corpus())
        tokenizer_2 = tiny.clip_tokenizer()
        pad_id = tokenizer.pad_token_id
        # The real configs at toy sizes; 3 Llama layers, as the pipeline reads hidden_states[-3].
        real = tiny.reference_config("hunyuan-i2v", "text_encoder")
        clip_sizes = {"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2, "num_hidden_layers": 2}
        llama_sizes = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2}
        text_config = {
            **real["text_config"],
            **llama_sizes,
            "num_hidden_layers": 3,
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": pad_id,
        }
        torch.manual_seed(0)
        text_encoder = LlavaForConditionalGeneration(
            LlavaConfig.from_dict(
                {
                    **real,
                    "vision_config": {**real["vision_config"], **clip_sizes},
                    "text_config": text_config,
                    "image_token_index": tokenizer.convert_tokens_to_ids("<image>"),
                    "pad_token_id": pad_id,
                }
            )
        ).eval()
        # The real config's legacy ids stay: eos_token_id == 2 selects CLIP's argmax pooling
        # (the highest id, <|endoftext|>, in the real and the tiny vocabulary alike).
        clip_config = {
            **tiny.reference_config("hunyuan-i2v", "text_encoder_2"),
            **clip_sizes,
            "vocab_size": len(tokenizer_2),
        }
        torch.manual_seed(0)
        text_encoder_2 = CLIPTextModel(CLIPTextConfig.from_dict(clip_config)).eval()
        image_processor = CLIPImageProcessor.from_pretrained(str(tiny.reference_dir("hunyuan-i2v") / "image_processor"))
        transformer = tiny.seeded_from_reference(
            HunyuanVideoTransformer3DModel,
            "hunyuan-i2v",
            "transformer",
            num_attention_heads=2,
            attention_head_dim=10,
            num_layers=2,
            num_single_layers=1,
            num_refiner_layers=1,
            text_embed_dim=16,
            pooled_projection_dim=8,
            rope_axes_dim=(2, 4, 4),
        )
        vae = tiny.seeded_from_reference(
            AutoencoderKLHunyuanVideo,
            "hunyuan-i2v",
            "vae",
            block_out_channels=(8, 8, 8, 8),
            layers_per_block=1,
            norm_num_groups=4,
        )
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(
            str(tiny.reference_dir("hunyuan-i2v")), subfolder="scheduler"
        )
        pipe: Any = HunyuanVideoImageToVideoPipeline(
            transformer=transformer,
            vae=vae,
            scheduler=scheduler,
            text_encoder=text_encoder,
            text_encoder_2=text_encoder_2,
            tokenizer=tokenizer,
            tokenizer_2=tokenizer_2,
            image_processor=image_processor,
        )
        pipe.save_pretrained(str(dest), safe_serialization=True)
        # The classes the real repo names (transformers 5 saves CLIPImageProcessorPil without
        # torchvision, and the Llama-3 tokenizer as PreTrainedTokenizerFast), so the loader's
        # tokenizer fix and the image processor's resolution run as for the real repo.
        tiny.edit_json(
            dest / "model_index.json",
            {
                "tokenizer": ["transformers", "LlamaTokenizerFast"],
                "image_processor": ["transformers", "CLIPImageProcessor"],
            },
        )
        tiny.edit_json(
            dest / "image_processor" / "preprocessor_config.json", {"image_processor_type": "CLIPImageProcessor"}
        )
        special = {name: getattr(tokenizer, name) for name in ("bos_token", "eos_token", "pad_token")}
        tiny.edit_json(dest / "tokenizer" / "special_tokens_map.json", special)
        tiny.write_clip_vocab(dest / "tokenizer_2")
        tiny.shard_like_reference(dest, "hunyuan-i2v")


_LIMITS = ClipLimits(native_frames=129, max_frames=129, fps=24, frame_rule=FrameRule(modulus=4, remainder=1))
_SOURCE = (
    "projected by vgkit.cost (the real transformer and VAE counted on the meta device, efficiency fitted to the "
    "HunyuanVideo README's ~1900 s and 60 GB for 720p, 129 frames, 50 steps on one H100)"
)
_PRESETS = (
    Preset(
        name="4090",
        offload="group",
        vae_tiling=True,
        fp8_layerwise=True,
        other_dtype="float16",
        size_scale=0.625,  # 1280x720 -> 800x448, upscaled back in the stitch
        steps_scale=0.4,  # 50 -> 20
        source=_SOURCE + "; 960x544 at 30 steps projects ~1100 s on an RTX 4090: 800x448 at 20 steps (~395 s) "
        "is what fits the 10-minute clip limit, at a cost in detail (1.6x Lanczos upscale) and prompt adherence",
    ),
    Preset(
        name="80gb",
        vae_tiling=True,
        other_dtype="float16",
        size_scale=0.75,  # 1280x720 -> 960x544, upscaled back in the stitch
        steps_scale=0.6,  # 50 -> 30
        source=_SOURCE + "; 1280x720 at 50 steps projects ~2060 s on an H100 (about 12 PFLOP a step at 119,200 "
        "tokens), so it cannot fit 600 s: 960x544 at 30 steps (~445 s) costs detail (upscale) and adherence",
    ),
    CPU_PRESET,
)

HUNYUAN_I2V = HunyuanI2VAdapter(
    name="hunyuan-i2v",
    title="HunyuanVideo-I2V",
    repo_id="hunyuanvideo-community/HunyuanVideo-I2V",
    pipeline_class="HunyuanVideoImageToVideoPipeline",
    repo_pipeline_class="HunyuanVideoImageToVideoPipeline",
    clip_limits=_LIMITS,
    size_multiple=16,
    needs_gpu=True,
    download_gb=60.0,
    presets=_PRESETS,
    masked_attention=True,
)

HUNYUAN_I2V_TINY: HunyuanI2VAdapter = HUNYUAN_I2V.tiny_twin(repo_id="vgkit-tiny/HunyuanVideo-I2V-tiny")
