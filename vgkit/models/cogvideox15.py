"""CogVideoX1.5-5B-I2V: everything that is specific to this model family.

- Repo ``THUDM/CogVideoX1.5-5B-I2V``, loaded with ``CogVideoXImageToVideoPipeline``.
- Native 1360x768 (short side 768, long side <= 1360), sizes in multiples of 16 (VAE 8x times
  patch 2). 81 (5 s) or 161 (10 s) frames at 16 fps: the pipeline pads odd latent counts to the
  temporal patch (2) and trims after decode, so only 8k+1 frames come back exactly as asked.
  ``ClipLimits``: 81 native, 161 at most (a 10 s shot is generated only when the spec asks).
- 50 steps, guidance 6.0 with ``use_dynamic_cfg=True``; everything in bf16 (FACTS.md).
- Height and width are always passed (the pipeline's defaults come from the transformer config,
  2400 px for the real one); the RoPE grid is bounded by ``sample_height/width``, which the tiny
  twin keeps at the real 300 latents.
- The real repo's scheduler is ``CogVideoXDDIMScheduler`` (its model_index and
  scheduler_config.json); the tiny twin carries that and the rest of the real metadata
  (``vgkit/models/reference/cogvideox15``) at toy widths.
- Decode: vgkit decodes the denoised latents itself (``decode_latents``), trimming the one
  padding latent frame the temporal patch added.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vgkit.models.tiny as tiny
from vgkit.models.base import CPU_PRESET, ClipLimits, FrameRule, ModelAdapter, Preset, execution_device

__all__ = ["COGVIDEOX15", "COGVIDEOX15_TINY", "CogVideoX15Adapter"]


@dataclass(frozen=True)
class CogVideoX15Adapter(ModelAdapter):
    def decodes_separately(self, pipe: Any) -> bool:
        return True

    def decode_latents(self, pipe: Any, latents: Any) -> Any:
        """The decode tail of ``CogVideoXImageToVideoPipeline.__call__`` (diffusers 0.42.1).

        With a temporal patch (1.5: ``patch_size_t=2``) the pipeline pads an odd latent frame count by
        one frame at the front and trims it before decoding; ``output_type="latent"`` returns the
        padded latents. The 8k+1 frame rule always gives an odd count, so exactly one padding frame
        is trimmed here.
        """
        import torch

        patch_t = pipe.transformer.config.patch_size_t
        if patch_t and latents.shape[1] % patch_t == 0:
            latents = latents[:, patch_t - 1 :]
        with torch.no_grad():
            video = pipe.decode_latents(latents.to(device=execution_device(pipe), dtype=pipe.vae.dtype))
        return pipe.video_processor.postprocess_video(video=video, output_type="np")

    def build_tiny(self, dest: Path) -> None:
        """The real repo's layout at toy sizes (``vgkit/models/reference/cogvideox15``): the real
        DDIM scheduler config, transformer flags (no patch bias, ofs embedding, 300-latent RoPE
        bound), VAE scaling, T5 v1.1 encoder, slow-tokenizer files and weight shards."""
        from diffusers import (
            AutoencoderKLCogVideoX,
            CogVideoXDDIMScheduler,
            CogVideoXImageToVideoPipeline,
            CogVideoXTransformer3DModel,
        )

        from vgkit.models.base import quiet_hf_libraries

        quiet_hf_libraries()
        tokenizer = tiny.t5_tokenizer()
        text_encoder = tiny.t5_text_encoder(tokenizer, umt5=False)
        transformer = tiny.seeded_from_reference(
            CogVideoXTransformer3DModel,
            "cogvideox15",
            "transformer",
            num_attention_heads=2,
            attention_head_dim=16,
            time_embed_dim=2,
            ofs_embed_dim=2,
            text_embed_dim=32,
            num_layers=2,
            max_text_seq_length=_TINY_TEXT_LEN,
        )
        vae = tiny.seeded_from_reference(
            AutoencoderKLCogVideoX,
            "cogvideox15",
            "vae",
            block_out_channels=(8, 8, 8, 8),
            layers_per_block=1,
            norm_num_groups=2,
        )
        scheduler = CogVideoXDDIMScheduler.from_pretrained(
            str(tiny.reference_dir("cogvideox15")), subfolder="scheduler"
        )
        pipe: Any = CogVideoXImageToVideoPipeline(
            tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer, scheduler=scheduler
        )
        pipe.save_pretrained(str(dest), safe_serialization=True)
        # The slow T5Tokenizer's files and 226-token limit, and no tokenizer.json, as in the real
        # repo: transformers 5 converts spiece.model on load (with protobuf, pinned for this).
        tiny.edit_json(dest / "tokenizer" / "tokenizer_config.json", {"model_max_length": 226})
        tiny.write_t5_tokenizer_files(dest / "tokenizer", slow_files=True)
        (dest / "tokenizer" / "tokenizer.json").unlink()
        tiny.shard_like_reference(dest, "cogvideox15")


_LIMITS = ClipLimits(native_frames=81, max_frames=161, fps=16, frame_rule=FrameRule(modulus=8, remainder=1))
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
    pipeline_class="CogVideoXImageToVideoPipeline",
    repo_pipeline_class="CogVideoXImageToVideoPipeline",
    clip_limits=_LIMITS,
    size_multiple=16,
    needs_gpu=True,
    download_gb=31.0,
    call_defaults={"use_dynamic_cfg": True},
    presets=_PRESETS,
)

COGVIDEOX15_TINY: CogVideoX15Adapter = COGVIDEOX15.tiny_twin(repo_id="vgkit-tiny/CogVideoX1.5-5B-I2V-tiny")
