"""Wan 2.2 TI2V-5B: everything that is specific to this model family.

- Repo ``Wan-AI/Wan2.2-TI2V-5B-Diffusers``; its model_index names ``WanPipeline`` (text only), so
  vgkit loads it with ``WanImageToVideoPipeline`` explicitly (diffusers #13258).
- Native 1280x704 (or 704x1280), sizes in multiples of 32, 121 frames (4k+1) at 24 fps, 50 steps,
  guidance 5.0, flow shift 5. VAE in fp32, the rest in bf16 (FACTS.md).
- The tiny twin keeps the real classes (UMT5 text encoder, 48-channel residual VAE with 16x
  spatial compression, ``expand_timesteps`` transformer) at toy widths. Its tokenizer is
  character-level, so its token budget is 4x the real one (umT5 averages about 4 characters
  per token on English prose): the same prompts fit both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgkit.models.base import FrameRule, ModelAdapter

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

__all__ = ["WAN22", "WAN22_TINY", "Wan22Adapter"]

# Below this much GPU memory the whole pipeline does not stay resident: offload + VAE tiling.
_RESIDENT_MIN_GIB = 40


@dataclass(frozen=True)
class Wan22Adapter(ModelAdapter):
    def _load(self, snapshot: Path, *, device: str) -> DiffusionPipeline:
        if self.tiny or device == "cpu":
            return super()._load(snapshot, device=device)
        import torch
        from diffusers import AutoencoderKLWan

        vae = AutoencoderKLWan.from_pretrained(str(snapshot), subfolder="vae", dtype=torch.float32)
        pipe = self.pipeline_type().from_pretrained(str(snapshot), vae=vae, dtype=torch.bfloat16)
        pipe.set_progress_bar_config(disable=True)
        total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        if total_gib >= _RESIDENT_MIN_GIB:
            return pipe.to(device)
        pipe.enable_model_cpu_offload()
        pipe.vae.enable_tiling()
        return pipe

    def build_tiny(self, dest: Path) -> None:
        from vgkit.models.base import quiet_hf_libraries

        quiet_hf_libraries()  # before the diffusers imports below, which warn at import time
        import torch
        from diffusers import (
            AutoencoderKLWan,
            UniPCMultistepScheduler,
            WanImageToVideoPipeline,
            WanTransformer3DModel,
        )

        from vgkit.models.tiny import t5_text_encoder, t5_tokenizer

        tokenizer = t5_tokenizer()
        text_encoder = t5_text_encoder(tokenizer, umt5=True)
        torch.manual_seed(0)
        vae = AutoencoderKLWan(
            base_dim=3,
            z_dim=48,
            in_channels=12,
            out_channels=12,
            is_residual=True,
            patch_size=2,
            latents_mean=[0.0] * 48,
            latents_std=[1.0] * 48,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
            temperal_downsample=[False, True, True],
        )
        torch.manual_seed(0)
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=48,
            out_channels=48,
            text_dim=32,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=1024,
        )
        scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
        pipe: Any = WanImageToVideoPipeline(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            scheduler=scheduler,
            transformer=transformer,
            transformer_2=None,
            image_encoder=None,
            image_processor=None,
            boundary_ratio=None,
            expand_timesteps=True,
        )
        pipe.save_pretrained(str(dest), safe_serialization=True)


_FRAMES = FrameRule(modulus=4, remainder=1)

WAN22 = Wan22Adapter(
    name="wan22",
    title="Wan 2.2 TI2V-5B",
    repo_id="Wan-AI/Wan2.2-TI2V-5B-Diffusers",
    revision="main",
    pipeline_class="WanImageToVideoPipeline",
    frame_rule=_FRAMES,
    size_multiple=32,
    needs_gpu=True,
    download_gb=34.0,
)

WAN22_TINY = Wan22Adapter(
    name="wan22-tiny",
    title="Wan 2.2 TI2V-5B (tiny random weights)",
    repo_id="vgkit-tiny/Wan2.2-TI2V-5B-Diffusers-tiny",
    revision="main",
    pipeline_class="WanImageToVideoPipeline",
    frame_rule=_FRAMES,
    size_multiple=32,
    needs_gpu=False,
    tiny=True,
)
