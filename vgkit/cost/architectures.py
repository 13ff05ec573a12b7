"""The real models' component configs and the inputs each component sees, at any generated size.

Transformer and VAE configs are the real repos' ``config.json`` values that shape the compute
(widths, depths, patching, channels); the text encoders are given by their public configs. They
are built with the real diffusers/transformers classes on the ``meta`` device (``count.py``): no
weights, no memory, a second or two each.

How each pipeline calls its transformer (diffusers 0.42.1, the pipelines' ``__call__``):
Wan 2.2 TI2V runs classifier-free guidance as two forward passes of batch 1 per step, with one
timestep per latent token (``expand_timesteps``); CogVideoX runs one pass of batch 2 (the
unconditional and conditional halves concatenated); HunyuanVideo-I2V uses embedded guidance: one
pass of batch 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ARCHITECTURES", "Architecture", "latent_grid", "transformer_inputs"]


@dataclass(frozen=True)
class Architecture:
    """What one model is made of, for counting."""

    transformer_class: str
    transformer_config: dict[str, Any]
    vae_class: str
    vae_config: dict[str, Any]
    vae_spatial: int  # pixels per latent pixel
    vae_temporal: int  # frames per latent frame (after the first)
    latent_channels: int
    # (transformers class, its config class, config kwargs, tokens it encodes per clip)
    text_encoders: tuple[tuple[str, str, dict[str, Any], int], ...]
    text_tokens: int  # tokens the transformer attends to (prompt, plus image tokens for Hunyuan)
    passes_per_step: int  # transformer forward calls per denoise step
    batch_per_pass: int  # batch size of each call
    native_frames: int  # frames per clip at which the published figures were made


_T5_XXL: dict[str, Any] = {
    "d_model": 4096,
    "d_ff": 10240,
    "d_kv": 64,
    "num_heads": 64,
    "num_layers": 24,
    "feed_forward_proj": "gated-gelu",
    "relative_attention_num_buckets": 32,
}

ARCHITECTURES: dict[str, Architecture] = {
    "wan22": Architecture(
        transformer_class="WanTransformer3DModel",
        transformer_config={
            "patch_size": (1, 2, 2),
            "num_attention_heads": 24,
            "attention_head_dim": 128,
            "in_channels": 48,
            "out_channels": 48,
            "text_dim": 4096,
            "freq_dim": 256,
            "ffn_dim": 14336,
            "num_layers": 30,
            "cross_attn_norm": True,
            "qk_norm": "rms_norm_across_heads",
            "eps": 1e-6,
            "rope_max_seq_len": 1024,
        },
        vae_class="AutoencoderKLWan",
        vae_config={
            "base_dim": 160,
            "decoder_base_dim": 256,
            "z_dim": 48,
            "dim_mult": [1, 2, 4, 4],
            "num_res_blocks": 2,
            "attn_scales": [],
            "temperal_downsample": [False, True, True],
            "is_residual": True,
            "in_channels": 12,
            "out_channels": 12,
            "patch_size": 2,
            "scale_factor_temporal": 4,
            "scale_factor_spatial": 16,
            "latents_mean": [0.0] * 48,
            "latents_std": [1.0] * 48,
        },
        vae_spatial=16,
        vae_temporal=4,
        latent_channels=48,
        text_encoders=(("UMT5EncoderModel", "UMT5Config", {**_T5_XXL, "vocab_size": 256384}, 512),),
        text_tokens=512,
        passes_per_step=2,
        batch_per_pass=1,
        native_frames=121,
    ),
    "cogvideox15": Architecture(
        transformer_class="CogVideoXTransformer3DModel",
        transformer_config={
            "num_attention_heads": 48,
            "attention_head_dim": 64,
            "in_channels": 32,
            "out_channels": 16,
            "time_embed_dim": 512,
            "ofs_embed_dim": 512,
            "text_embed_dim": 4096,
            "num_layers": 42,
            "sample_width": 300,
            "sample_height": 300,
            "sample_frames": 81,
            "patch_size": 2,
            "patch_size_t": 2,
            "max_text_seq_length": 226,
            "use_rotary_positional_embeddings": True,
            "use_learned_positional_embeddings": False,
        },
        vae_class="AutoencoderKLCogVideoX",
        vae_config={},
        vae_spatial=8,
        vae_temporal=4,
        latent_channels=16,
        text_encoders=(("T5EncoderModel", "T5Config", {**_T5_XXL, "vocab_size": 32128}, 226),),
        text_tokens=226,
        passes_per_step=1,
        batch_per_pass=2,
        native_frames=81,
    ),
    "hunyuan-i2v": Architecture(
        transformer_class="HunyuanVideoTransformer3DModel",
        transformer_config={
            "in_channels": 16,
            "out_channels": 16,
            "num_attention_heads": 24,
            "attention_head_dim": 128,
            "num_layers": 20,
            "num_single_layers": 40,
            "num_refiner_layers": 2,
            "patch_size": 2,
            "patch_size_t": 1,
            "guidance_embeds": True,
            "text_embed_dim": 4096,
            "pooled_projection_dim": 768,
            "rope_axes_dim": (16, 56, 56),
            "image_condition_type": "token_replace",
        },
        vae_class="AutoencoderKLHunyuanVideo",
        vae_config={},
        vae_spatial=8,
        vae_temporal=4,
        latent_channels=16,
        text_encoders=(
            (
                "LlamaModel",  # LLaVA-Llama-3-8B's language model; its CLIP vision tower runs once on one image
                "LlamaConfig",
                {
                    "hidden_size": 4096,
                    "intermediate_size": 14336,
                    "num_hidden_layers": 32,
                    "num_attention_heads": 32,
                    "num_key_value_heads": 8,
                    "vocab_size": 128320,
                },
                256 + 576,
            ),
            (
                "CLIPTextModel",
                "CLIPTextConfig",
                {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
                77,
            ),
        ),
        text_tokens=256 + 144,  # prompt + 576 image tokens pooled by 4 (FACTS.md)
        passes_per_step=1,
        batch_per_pass=1,
        native_frames=129,
    ),
}


def latent_grid(arch: Architecture, *, width: int, height: int, num_frames: int) -> tuple[int, int, int]:
    """(latent frames, latent height, latent width) of a clip of ``num_frames`` at ``width`` x ``height``."""
    return (num_frames - 1) // arch.vae_temporal + 1, height // arch.vae_spatial, width // arch.vae_spatial


def transformer_inputs(
    name: str,
    transformer: Any,
    *,
    width: int,
    height: int,
    num_frames: int,
    device: Any = None,
    dtype: Any = None,
) -> dict[str, Any]:
    """One transformer call's inputs, as the pipeline makes them, on ``device`` in ``dtype``
    (default: where the transformer's first parameter is, and its dtype)."""
    import torch

    arch = ARCHITECTURES[name]
    cfg = transformer.config
    param = next(transformer.parameters())
    device = param.device if device is None else torch.device(device)
    dtype = param.dtype if dtype is None else dtype
    frames, lh, lw = latent_grid(arch, width=width, height=height, num_frames=num_frames)
    batch = arch.batch_per_pass
    text_width = cfg.get("text_dim") or cfg.get("text_embed_dim")
    text = torch.randn(batch, arch.text_tokens, text_width, device=device, dtype=dtype)
    if name == "wan22":
        p_t, p_h, p_w = cfg.patch_size
        seq = (frames // p_t) * (lh // p_h) * (lw // p_w)
        return {
            "hidden_states": torch.randn(batch, cfg.in_channels, frames, lh, lw, device=device, dtype=dtype),
            "timestep": torch.full((batch, seq), 500, device=device),
            "encoder_hidden_states": text,
        }
    if name == "cogvideox15":
        from diffusers import CogVideoXImageToVideoPipeline

        frames += frames % cfg.patch_size_t  # the pipeline pads an odd latent frame count
        shell: Any = CogVideoXImageToVideoPipeline(None, None, None, transformer, None)
        rope = shell._prepare_rotary_positional_embeddings(height, width, frames, device)
        return {
            "hidden_states": torch.randn(batch, frames, cfg.in_channels, lh, lw, device=device, dtype=dtype),
            "encoder_hidden_states": text,
            "timestep": torch.full((batch,), 500, device=device),
            "ofs": torch.full((batch,), 2.0, device=device, dtype=dtype),
            "image_rotary_emb": rope,
        }
    return {
        "hidden_states": torch.randn(batch, cfg.in_channels, frames, lh, lw, device=device, dtype=dtype),
        "timestep": torch.full((batch,), 500, device=device),
        "encoder_hidden_states": text,
        "encoder_attention_mask": torch.ones(batch, arch.text_tokens, device=device, dtype=torch.bool),
        "pooled_projections": torch.randn(batch, cfg.pooled_projection_dim, device=device, dtype=dtype),
        "guidance": torch.full((batch,), 6000.0, device=device, dtype=dtype),
    }
