"""Wan 2.2 TI2V-5B: everything that is specific to this model family.

- Repo ``Wan-AI/Wan2.2-TI2V-5B-Diffusers``; its model_index names ``WanPipeline`` (text only), so
  vgkit loads it with ``WanImageToVideoPipeline`` explicitly (diffusers #13258).
- Native 1280x704 (or 704x1280), sizes in multiples of 32, 121 frames (4k+1) at 24 fps (its native
  clip and its most: ``ClipLimits``; longer shots are interpolated, vgkit.spec.plan), 50 steps,
  guidance 5.0, flow shift 5. VAE in fp32, the rest in bf16 (FACTS.md).
- The tiny twin carries the real repo's metadata (``vgkit/models/reference/wan22``: a ``WanPipeline``
  model_index, UMT5 text encoder, 48-channel residual VAE with 16x spatial compression and the
  real latent statistics, ``expand_timesteps`` transformer, sharded weights) at toy widths. Its tokenizer is
  character-level, so its token budget is 4x the real one (umT5 averages about 4 characters
  per token on English prose): the same prompts fit both.
- Decode: vgkit decodes the denoised latents itself (``decode_latents``, the pipeline's own tail:
  un-normalize with the VAE's latent mean and std, then decode).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vgkit.models.tiny as tiny
from vgkit.models.base import CPU_PRESET, ClipLimits, FrameRule, ModelAdapter, Preset, execution_device

__all__ = ["WAN22", "WAN22_TINY", "Wan22Adapter"]


@dataclass(frozen=True)
class Wan22Adapter(ModelAdapter):
    def decodes_separately(self, pipe: Any) -> bool:
        return True

    def decode_latents(self, pipe: Any, latents: Any) -> Any:
        """The decode tail of ``WanImageToVideoPipeline.__call__`` (diffusers 0.42.1), as np frames."""
        import torch

        vae = pipe.vae
        latents = latents.to(device=execution_device(pipe), dtype=vae.dtype)
        z_dim = vae.config.z_dim
        mean = torch.tensor(vae.config.latents_mean).view(1, z_dim, 1, 1, 1).to(latents.device, latents.dtype)
        inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z_dim, 1, 1, 1).to(latents.device, latents.dtype)
        with torch.no_grad():
            video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
        return pipe.video_processor.postprocess_video(video, output_type="np")

    def build_tiny(self, dest: Path) -> None:
        """The real repo's layout at toy sizes: saved by ``WanPipeline`` (as the real repo was, so
        model_index.json names it), the real VAE, scheduler and tokenizer configs, weights in the
        real shards (``vgkit/models/reference/wan22``)."""
        from vgkit.models.base import quiet_hf_libraries

        quiet_hf_libraries()  # before the diffusers imports below, which warn at import time
        from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

        tokenizer = tiny.t5_tokenizer()
        text_encoder = tiny.t5_text_encoder(tokenizer, umt5=True)
        vae = tiny.seeded_from_reference(
            AutoencoderKLWan, "wan22", "vae", base_dim=3, decoder_base_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1
        )
        transformer = tiny.seeded_from_reference(
            WanTransformer3DModel,
            "wan22",
            "transformer",
            num_attention_heads=2,
            attention_head_dim=12,
            text_dim=32,
            ffn_dim=32,
            num_layers=2,
        )
        scheduler = UniPCMultistepScheduler.from_pretrained(str(tiny.reference_dir("wan22")), subfolder="scheduler")
        pipe: Any = WanPipeline(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            scheduler=scheduler,
            transformer=transformer,
            expand_timesteps=True,
        )
        pipe.save_pretrained(str(dest), safe_serialization=True)
        # What the 2025 conversion wrote and diffusers since dropped (ignored with a warning on load).
        tiny.edit_json(
            dest / "vae" / "config.json", {"clip_output": tiny.reference_config("wan22", "vae")["clip_output"]}
        )
        tiny.edit_json(dest / "model_index.json", {"tokenizer": ["transformers", "T5TokenizerFast"]})
        tiny.write_t5_tokenizer_files(dest / "tokenizer", slow_files=False)
        tiny.shard_like_reference(dest, "wan22")


_LIMITS = ClipLimits(native_frames=121, max_frames=121, fps=24, frame_rule=FrameRule(modulus=4, remainder=1))
_PRESETS = (
    Preset(
        name="4090",
        offload="model",
        vae_tiling=True,
        vae_dtype="float32",
        source="the Wan2.2 README's RTX 4090 setting (TI2V-5B 720p I2V with offload: 524.8 s, 22.8 GB); "
        "vgkit.cost projects ~455 s and ~15 GiB for this preset",
    ),
    Preset(
        name="80gb",
        vae_dtype="float32",
        source="everything on the GPU; vgkit.cost projects ~183 s and ~43 GiB per clip on an H100 (the untiled "
        "float32 VAE decode is the peak)",
    ),
    CPU_PRESET,
)

WAN22 = Wan22Adapter(
    name="wan22",
    title="Wan 2.2 TI2V-5B",
    repo_id="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
    pipeline_class="WanImageToVideoPipeline",
    repo_pipeline_class="WanPipeline",
    clip_limits=_LIMITS,
    size_multiple=32,
    needs_gpu=True,
    download_gb=34.0,
    presets=_PRESETS,
)

WAN22_TINY: Wan22Adapter = WAN22.tiny_twin(repo_id="vgkit-tiny/Wan2.2-TI2V-5B-Diffusers-tiny")
