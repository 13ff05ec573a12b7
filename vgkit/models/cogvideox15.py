"""CogVideoX1.5-5B-I2V: everything that is specific to this model family.

- Repo ``THUDM/CogVideoX1.5-5B-I2V``, loaded with ``CogVideoXImageToVideoPipeline``.
- Native 1360x768 (short side 768, long side <= 1360), sizes in multiples of 16 (VAE 8x times
  patch 2). 81 (5 s) or 161 (10 s) frames at 16 fps: the pipeline pads odd latent counts to the
  temporal patch (2) and trims after decode, so only 8k+1 frames come back exactly as asked.
- 50 steps, guidance 6.0 with ``use_dynamic_cfg=True``; everything in bf16 (FACTS.md).
- Height and width are always passed (the pipeline's defaults come from the transformer config,
  2400 px for the real one); the RoPE grid is bounded by ``sample_height/width``, so the tiny
  config keeps those large enough for its sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vgkit.models.base import CPU_PRESET, FrameRule, ModelAdapter, Preset

__all__ = ["COGVIDEOX15", "COGVIDEOX15_TINY", "CogVideoX15Adapter"]


@dataclass(frozen=True)
class CogVideoX15Adapter(ModelAdapter):
    def build_tiny(self, dest: Path) -> None:
        import torch
        from diffusers import (
            AutoencoderKLCogVideoX,
            CogVideoXDPMScheduler,
            CogVideoXImageToVideoPipeline,
            CogVideoXTransformer3DModel,
        )

        from vgkit.models.base import quiet_hf_libraries
        from vgkit.models.tiny import t5_text_encoder, t5_tokenizer

        quiet_hf_libraries()
        tokenizer = t5_tokenizer()
        text_encoder = t5_text_encoder(tokenizer, umt5=False)
        torch.manual_seed(0)
        transformer = CogVideoXTransformer3DModel(
            num_attention_heads=2,
            attention_head_dim=16,
            in_channels=8,  # 4 noise + 4 image latent channels, as the real 16 + 16
            out_channels=4,
            time_embed_dim=2,
            ofs_embed_dim=2,
            text_embed_dim=32,
            num_layers=2,
            sample_width=64,  # RoPE grid bound: 64 latents * 8 = 512 px
            sample_height=64,
            sample_frames=81,
            patch_size=2,
            patch_size_t=2,  # the 1.5 temporal patch: odd latent counts are padded
            temporal_compression_ratio=4,
            max_text_seq_length=_TINY_TEXT_LEN,
            use_rotary_positional_embeddings=True,
            use_learned_positional_embeddings=False,
        )
        torch.manual_seed(0)
        vae = AutoencoderKLCogVideoX(
            in_channels=3,
            out_channels=3,
            down_block_types=("CogVideoXDownBlock3D",) * 4,
            up_block_types=("CogVideoXUpBlock3D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            latent_channels=4,
            layers_per_block=1,
            norm_num_groups=2,
            temporal_compression_ratio=4,
            scaling_factor=0.7,
            invert_scale_latents=True,
        )
        scheduler = CogVideoXDPMScheduler(
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            clip_sample=False,
            prediction_type="v_prediction",
            rescale_betas_zero_snr=True,
            set_alpha_to_one=True,
            snr_shift_scale=1.0,
            timestep_spacing="trailing",
        )
        pipe: Any = CogVideoXImageToVideoPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
        )
        pipe.save_pretrained(str(dest), safe_serialization=True)


_FRAMES = FrameRule(modulus=8, remainder=1)
# The tiny tokenizer is character-level: 4x the real 226-token budget fits the same prompts
# (T5 averages about 4 characters per token on English prose).
_TINY_TEXT_LEN = 904
_SOURCE = (
    "projected by vgkit.cost (the real transformer and VAE counted on the meta device, efficiency fitted to the "
    "CogVideoX1.5-5B-I2V model card's ~550 s on an H100 and a reported 1040 s on an RTX 4090, both at 50 steps)"
)
_PRESETS = (
    Preset(
        name="4090",
        device="cuda",
        offload="model",
        vae_tiling=True,
        size_scale=0.75,  # 1360x768 -> 1024x576, upscaled back in the stitch
        steps_scale=0.8,  # 50 -> 40
        source=_SOURCE + "; native size at 50 steps projects ~1230 s and at 25 steps ~630 s, both past the "
        "10-minute clip limit: 1024x576 at 40 steps (~400 s) costs detail (Lanczos upscale) and some prompt "
        "adherence (fewer steps)",
    ),
    Preset(
        name="80gb",
        device="cuda",
        steps_scale=0.8,  # 50 -> 40
        source=_SOURCE + "; 50 steps project ~505 s on an H100, too close to the 600 s limit for the projection's "
        "+-35 % error: 40 steps (~405 s) cost some prompt adherence",
    ),
    CPU_PRESET,
)

COGVIDEOX15 = CogVideoX15Adapter(
    name="cogvideox15",
    title="CogVideoX1.5-5B-I2V",
    repo_id="THUDM/CogVideoX1.5-5B-I2V",
    revision="main",
    pipeline_class="CogVideoXImageToVideoPipeline",
    frame_rule=_FRAMES,
    size_multiple=16,
    needs_gpu=True,
    download_gb=31.0,
    call_defaults={"use_dynamic_cfg": True},
    presets=_PRESETS,
)

COGVIDEOX15_TINY: CogVideoX15Adapter = COGVIDEOX15.tiny_twin(repo_id="vgkit-tiny/CogVideoX1.5-5B-I2V-tiny")
