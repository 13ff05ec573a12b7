"""Project a clip's time and GPU memory on a card, from the counted real architectures.

    seconds per clip = (steps x FLOPs per step + text encoders + VAE decode) / (card peak x efficiency)
                       + weights moved over the host link (offload presets)

FLOPs and activation bytes come from ``count.py`` (the real classes on ``meta``); the card's peak
from ``gpus.py``; ``efficiency`` is one factor per card class, fitted once to the published
figures in ``PUBLISHED`` (``fit.py`` refits them; a test holds every figure within +-35 %).

Peak memory = the weights resident at the worst moment + that moment's activations + a fixed
runtime allowance (CUDA context, cuBLAS workspace, allocator slack):

- ``offload="none"``: every component's weights + the larger of the transformer's and the VAE
  decode's activations;
- ``"model"`` (model CPU offload): one component on the GPU at a time, the largest of (its
  weights + its activations);
- ``"group"``/``"sequential"``: one transformer block's weights + the activations.
fp8 layerwise stores the transformer's weights in one byte each (norms and embeddings, under 1 %
of the parameters, are counted at one byte too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vgkit.cost.architectures import ARCHITECTURES, latent_grid, transformer_inputs
from vgkit.cost.count import cached_record, count_call
from vgkit.cost.gpus import GpuCard

if TYPE_CHECKING:
    from vgkit.models.presets import Preset

__all__ = ["EFFICIENCY", "PUBLISHED", "RUNTIME_OVERHEAD_GIB", "Projection", "Published", "project", "transformer_count"]

RUNTIME_OVERHEAD_GIB = 1.0
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float8_e4m3fn": 1}


@dataclass(frozen=True)
class Published:
    """A published time (and peak) for one model on one card, at the model's native settings."""

    model: str
    card: str
    seconds_per_clip: float
    peak_gib: float | None
    offload: str
    source: str


PUBLISHED: tuple[Published, ...] = (
    Published(
        "wan22", "4090", 524.8, 22.8 * 10**9 / 2**30, "model", "Wan2.2 README: TI2V-5B 720p I2V, one RTX 4090, offload"
    ),
    Published(
        "cogvideox15",
        "4090",
        1040.0,
        None,
        "model",
        "reported for diffusers on an RTX 4090 next to SageAttention2's speed-up (1040 s, 577 s with it)",
    ),
    Published(
        "cogvideox15", "h100", 550.0, None, "none", "CogVideoX1.5-5B-I2V model card: ~550 s per 5 s video, one H100"
    ),
    Published("cogvideox15", "a100", 1000.0, None, "none", "CogVideoX1.5-5B-I2V model card: ~1000 s, one A100"),
    Published(
        "hunyuan-i2v",
        "h100",
        1900.0,
        60.0 * 10**9 / 2**30,
        "none",
        "HunyuanVideo README: 720p, 129 frames, 50 steps, ~60 GB peak, ~1900 s on one H100",
    ),
)

# Fraction of the card's dense bf16 peak reached end to end, per card class; fitted by
# ``vgkit.cost.fit.fit_efficiency`` to PUBLISHED (geometric mean of published/floor per class).
EFFICIENCY: dict[str, float] = {"ada": 0.738, "ampere": 0.479, "hopper": 0.299}


@dataclass(frozen=True)
class Projection:
    model: str
    preset: str
    card: str
    width: int
    height: int
    num_frames: int
    steps: int
    tokens: int
    step_tflop: float
    efficiency: float
    compute_s: float
    transfer_s: float
    seconds_per_clip: float
    peak_gib: float
    card_memory_gib: float

    @property
    def fits_memory(self) -> bool:
        return self.peak_gib <= self.card_memory_gib

    def describe(self) -> str:
        return f"~{self.seconds_per_clip:.0f} s/clip, ~{self.peak_gib:.1f} GiB peak on {self.card}"


def _spatial(vae: Any) -> int:
    """Pixels per latent pixel of a VAE (Wan 2.2 states it; the others halve per down block)."""
    return int(vae.config.get("scale_factor_spatial") or 2 ** (len(vae.config.get("block_out_channels", [0] * 4)) - 1))


def _stride(vae: Any, side: str) -> int:
    """A tiled decode's step in pixels (CogVideoX states an overlap factor instead of a stride)."""
    if hasattr(vae, f"tile_sample_stride_{side}"):
        return int(getattr(vae, f"tile_sample_stride_{side}"))
    tile = int(getattr(vae, f"tile_sample_min_{side}"))
    return int(tile * (1 - getattr(vae, f"tile_overlap_factor_{side}")))


TILING_KEYS = ("tile_h", "tile_w", "stride_h", "stride_w")


def _vae_tiling(name: str) -> dict[str, int]:
    """A tiled decode's tile and step in latent pixels (``TILING_KEYS``), read from the VAE class with
    tiling enabled; cached and packaged as the counts are (no diffusers import when found)."""
    arch = ARCHITECTURES[name]
    key = {"model": name, "component": "vae-tiling", "class": arch.vae_class, "config": arch.vae_config}
    tiling: dict[str, int] = cached_record(key, lambda: _measure_tiling(name), keys=TILING_KEYS)
    return tiling


def _measure_tiling(name: str) -> dict[str, int]:
    import torch

    arch = ARCHITECTURES[name]
    with torch.device("meta"):
        vae = _diffusers_class(arch.vae_class)(**arch.vae_config)
    vae.enable_tiling()
    spatial = _spatial(vae)
    tiling = {}
    for side in ("height", "width"):
        tiling[f"tile_{side[0]}"] = max(1, getattr(vae, f"tile_sample_min_{side}") // spatial)
        tiling[f"stride_{side[0]}"] = max(1, _stride(vae, side) // spatial)
    return tiling


def _tile_overlap(tiling: dict[str, int], latent_h: int, latent_w: int) -> float:
    """How many times a tiled decode covers each latent pixel, on average (tiles overlap)."""

    def cover(size: int, tile: int, stride: int) -> float:
        if size <= tile:
            return 1.0
        return sum(min(tile, size - start) for start in range(0, size, stride)) / size

    return cover(latent_h, tiling["tile_h"], tiling["stride_h"]) * cover(latent_w, tiling["tile_w"], tiling["stride_w"])


def _counts(name: str, *, width: int, height: int, num_frames: int, transformer_dtype: str, vae_dtype: str) -> Any:
    """The transformer's and the VAE's counts (packaged or cached ones without importing diffusers)."""
    size = {"width": width, "height": height, "num_frames": num_frames}
    return transformer_count(name, **size, dtype=transformer_dtype), _vae_count(name, **size, dtype=vae_dtype)


def transformer_count(name: str, *, width: int, height: int, num_frames: int, dtype: str) -> Any:
    """One transformer call's count at this clip size (packaged, cached or counted on ``meta``)."""
    arch = ARCHITECTURES[name]
    size = {"model": name, "width": width, "height": height, "num_frames": num_frames}
    return count_call(
        {**size, "component": "transformer", "class": arch.transformer_class, "config": arch.transformer_config},
        lambda: _diffusers_class(arch.transformer_class)(**arch.transformer_config),
        lambda m: transformer_inputs(name, m, width=width, height=height, num_frames=num_frames),
        lambda m, inputs: m(**inputs, return_dict=False),
        dtype=dtype,
    )


def _vae_count(name: str, *, width: int, height: int, num_frames: int, dtype: str) -> Any:
    """The VAE decode's count of this clip's latents (packaged, cached or counted on ``meta``)."""
    arch = ARCHITECTURES[name]
    size = {"model": name, "width": width, "height": height, "num_frames": num_frames}
    frames, lh, lw = latent_grid(arch, width=width, height=height, num_frames=num_frames)

    def latents(m: Any) -> dict[str, Any]:
        import torch

        return {"z": torch.randn(1, arch.latent_channels, frames, lh, lw)}

    return count_call(
        {**size, "component": "vae", "class": arch.vae_class, "config": arch.vae_config},
        lambda: _diffusers_class(arch.vae_class)(**arch.vae_config),
        latents,
        lambda m, inputs: m.decode(inputs["z"], return_dict=False),
        dtype=dtype,
    )


def _diffusers_class(name: str) -> Any:
    import diffusers

    return getattr(diffusers, name)


def _build_text_encoder(cls_name: str, config_name: str, config: dict[str, Any]) -> Any:
    import transformers

    return getattr(transformers, cls_name)(getattr(transformers, config_name)(**config))


def _token_ids(tokens: int, module: Any) -> dict[str, Any]:
    import torch

    return {"input_ids": torch.zeros(1, tokens, dtype=torch.long)}


def _text_counts(name: str, *, dtype: str) -> list[Any]:
    """One forward of each text encoder over the tokens it encodes per clip, counted on ``meta``."""
    from functools import partial

    return [
        count_call(
            {"model": name, "component": "text_encoder", "class": cls_name, "config": config, "tokens": tokens},
            partial(_build_text_encoder, cls_name, config_name, config),
            partial(_token_ids, tokens),
            lambda m, inputs: m(**inputs),
            dtype=dtype,
        )
        for cls_name, config_name, config, tokens in ARCHITECTURES[name].text_encoders
    ]


def _blocks(name: str) -> int:
    config = ARCHITECTURES[name].transformer_config
    return int(config.get("num_layers", 1)) + int(config.get("num_single_layers", 0))


def project(
    name: str,
    *,
    preset: Preset,
    card: GpuCard,
    width: int,
    height: int,
    num_frames: int,
    steps: int,
    efficiency: float | None = None,
) -> Projection:
    """The projection for model ``name`` (``wan22``, ``cogvideox15``, ``hunyuan-i2v``) generating
    ``num_frames`` at ``width`` x ``height`` with ``steps`` steps on ``card``, placed as ``preset`` says
    (its offload, VAE tiling, fp8 storage and dtypes)."""
    arch = ARCHITECTURES[name]
    other_dtype, offload = preset.other_dtype, preset.offload
    vae_dtype = preset.vae_dtype or other_dtype
    transformer, vae = _counts(
        name,
        width=width,
        height=height,
        num_frames=num_frames,
        transformer_dtype=preset.transformer_dtype,
        vae_dtype=vae_dtype,
    )
    frames, lh, lw = latent_grid(arch, width=width, height=height, num_frames=num_frames)
    tiling = _vae_tiling(name) if preset.vae_tiling else None
    overlap = _tile_overlap(tiling, lh, lw) if tiling is not None else 1.0
    texts = _text_counts(name, dtype=other_dtype)

    step_flops = transformer.flops * arch.passes_per_step
    text_flops = sum(text.flops for text in texts)
    vae_flops = vae.flops * overlap
    clip_flops = steps * step_flops + text_flops + vae_flops
    eff = efficiency if efficiency is not None else EFFICIENCY[card.card_class]
    compute_s = clip_flops / (card.bf16_dense_tflops * 1e12 * eff)

    gib = 2**30
    t_bytes = 1 if preset.fp8_layerwise else _BYTES[preset.transformer_dtype]
    weights = {
        "transformer": transformer.params * t_bytes / gib,
        "text_encoders": sum(text.params for text in texts) * _BYTES[other_dtype] / gib,
        "vae": vae.params * _BYTES[vae_dtype] / gib,
    }
    t_act = (transformer.activation_peak_bytes + transformer.input_bytes) / gib
    # A tiled decode holds one tile's activations (plus the decoded video it assembles).
    tile_share = 1.0 if tiling is None else min(1.0, overlap * _tile_fraction(tiling, lh, lw))
    video = 3 * num_frames * height * width * _BYTES[vae_dtype] / gib
    v_act = max(vae.activation_peak_bytes / gib * tile_share, video)
    if offload == "none":
        resident = sum(weights.values()) + max(t_act, v_act)
        moved_gib = 0.0
    elif offload == "model":
        resident = max(weights["text_encoders"], weights["transformer"] + t_act, weights["vae"] + v_act)
        moved_gib = sum(weights.values())
    elif offload in ("group", "sequential"):
        block = weights["transformer"] / _blocks(name)
        resident = max(block + t_act, weights["vae"] + v_act)
        moved_gib = weights["transformer"] * arch.passes_per_step * steps + weights["text_encoders"] + weights["vae"]
    else:
        raise ValueError(f"offload = {offload!r}: not one of none, model, group, sequential")
    transfer_s = moved_gib * gib / (card.host_link_gb_s * 1e9)
    tokens = _tokens(name, frames=frames, latent_h=lh, latent_w=lw)
    return Projection(
        model=name,
        preset=preset.name,
        card=card.name,
        width=width,
        height=height,
        num_frames=num_frames,
        steps=steps,
        tokens=tokens,
        step_tflop=step_flops / 1e12,
        efficiency=eff,
        compute_s=compute_s,
        transfer_s=transfer_s,
        seconds_per_clip=compute_s + transfer_s,
        peak_gib=resident + RUNTIME_OVERHEAD_GIB,
        card_memory_gib=card.memory_gib,
    )


def _tile_fraction(tiling: dict[str, int], latent_h: int, latent_w: int) -> float:
    """One tile's share of the latent area (1.0 when the clip fits one tile)."""
    tile_h = min(latent_h, tiling["tile_h"])
    tile_w = min(latent_w, tiling["tile_w"])
    return (tile_h * tile_w) / (latent_h * latent_w)


def _tokens(name: str, *, frames: int, latent_h: int, latent_w: int) -> int:
    """Video tokens the transformer attends over (latent grid / patch)."""
    config = ARCHITECTURES[name].transformer_config
    patch = config["patch_size"]
    if isinstance(patch, (tuple, list)):
        p_t, p_h, p_w = patch
    else:
        p_t, p_h, p_w = int(config.get("patch_size_t") or 1), patch, patch
    if name == "cogvideox15":
        frames += frames % p_t
    return math.ceil(frames / p_t) * (latent_h // p_h) * (latent_w // p_w)
