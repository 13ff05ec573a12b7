"""Transformer step time and peak memory per model and preset, at each model's native token count.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_models.py            # tiny sizes on CPU
    PYTHONPATH=. .venv/bin/python benchmarks/bench_models.py --size full # full size, needs a GPU

Full size builds each transformer from its real config with random weights (no download) and
runs denoising steps on the real model's native latent grid (Wan 2.2 TI2V-5B: 1280x704, 121
frames, 27,280 tokens, CFG batch of 2; CogVideoX1.5: 1360x768, 81 frames, CFG batch of 2;
HunyuanVideo-I2V: 1280x720, 129 frames, embedded guidance, batch of 1), at the size and steps each
preset generates (HunyuanVideo ``4090``: 960x544). The
``4090`` preset runs under a 24 GiB cap (``torch.cuda.set_per_process_memory_fraction``) to
stand in for the card; ``80gb`` runs uncapped. Tiny size uses the tiny checkpoints' transformer
configs at their baseline size on CPU and applies every preset that can run there. Step time is
the median of ``--steps`` timed steps after one warm-up; peak memory is CUDA's max allocated, or
the process's max RSS on CPU. Prints a table; measures only the transformer, not the VAE decode.
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import time
from typing import Any

from vgkit.models import adapter
from vgkit.models.base import Preset

MODELS = ("wan22", "cogvideox15", "hunyuan-i2v")
CAP_GIB = {"4090": 24.0}

# The real transformers' configs (config.json of each repo's transformer/), trimmed to what differs
# from the diffusers defaults.
FULL_CONFIGS: dict[str, dict[str, Any]] = {
    "wan22": {
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
    "cogvideox15": {
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
    "hunyuan-i2v": {
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
}
NATIVE_FRAMES = {"wan22": 121, "cogvideox15": 81, "hunyuan-i2v": 129}
TEXT_TOKENS = {"wan22": 512, "cogvideox15": 226, "hunyuan-i2v": 256 + 144}  # Hunyuan: prompt + 576/4 image tokens
VAE_SPATIAL = {"wan22": 16, "cogvideox15": 8, "hunyuan-i2v": 8}


def _transformer(name: str, *, full: bool) -> Any:
    import diffusers

    from vgkit.checkpoints import locate_checkpoint

    model = adapter(name if full else f"{name}-tiny")
    tiny = adapter(f"{name}-tiny")
    cls = getattr(diffusers, tiny._component_classes(locate_checkpoint(tiny))["transformer"])
    if full:
        return cls(**FULL_CONFIGS[name])
    return cls.from_pretrained(str(locate_checkpoint(model)), subfolder="transformer")


def _inputs(name: str, transformer: Any, *, width: int, height: int, device: str, dtype: Any) -> dict[str, Any]:
    import torch

    cfg = transformer.config
    latent_frames = (NATIVE_FRAMES[name] - 1) // 4 + 1
    lh, lw = height // VAE_SPATIAL[name], width // VAE_SPATIAL[name]
    if name == "wan22":  # expand_timesteps: one timestep per latent token; CFG as a batch of 2
        p_t, p_h, p_w = cfg.patch_size
        seq = (latent_frames // p_t) * (lh // p_h) * (lw // p_w)
        return {
            "hidden_states": torch.randn(2, cfg.in_channels, latent_frames, lh, lw, device=device, dtype=dtype),
            "timestep": torch.full((2, seq), 500, device=device),
            "encoder_hidden_states": torch.randn(2, TEXT_TOKENS[name], cfg.text_dim, device=device, dtype=dtype),
        }
    if name == "cogvideox15":
        from diffusers import CogVideoXImageToVideoPipeline

        latent_frames += latent_frames % cfg.patch_size_t
        shell: Any = CogVideoXImageToVideoPipeline(None, None, None, transformer, None)
        rope = shell._prepare_rotary_positional_embeddings(height, width, latent_frames, torch.device(device))
        return {
            "hidden_states": torch.randn(2, latent_frames, cfg.in_channels, lh, lw, device=device, dtype=dtype),
            "encoder_hidden_states": torch.randn(2, TEXT_TOKENS[name], cfg.text_embed_dim, device=device, dtype=dtype),
            "timestep": torch.tensor([500, 500], device=device),
            "ofs": torch.full((2,), 2.0, device=device, dtype=dtype),
            "image_rotary_emb": rope,
        }
    text = TEXT_TOKENS[name]
    return {
        "hidden_states": torch.randn(1, cfg.in_channels, latent_frames, lh, lw, device=device, dtype=dtype),
        "timestep": torch.tensor([500], device=device),
        "encoder_hidden_states": torch.randn(1, text, cfg.text_embed_dim, device=device, dtype=dtype),
        "encoder_attention_mask": torch.ones(1, text, device=device, dtype=torch.bool),
        "pooled_projections": torch.randn(1, cfg.pooled_projection_dim, device=device, dtype=dtype),
        "guidance": torch.tensor([6000.0], device=device, dtype=dtype),
    }


def _place(transformer: Any, preset: Preset, *, device: str) -> Any:
    import torch

    dtype = getattr(torch, preset.transformer_dtype)
    transformer.to(dtype)
    if preset.fp8_layerwise:
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    if preset.offload == "group":
        transformer.enable_group_offload(
            onload_device=torch.device(device), offload_device=torch.device("cpu"), offload_type="leaf_level"
        )
    else:  # model offload moves the whole transformer onto the device for its step
        transformer.to(device)
    return dtype


def bench(name: str, preset: Preset, *, full: bool, steps: int) -> dict[str, Any]:
    import torch

    device = "cuda" if full else "cpu"
    model = adapter(name if full else f"{name}-tiny")
    width, height = model.baseline.width, model.baseline.height
    if full:
        width, height = preset.generation_size(width, height, multiple=model.size_multiple)
    if full:
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        torch.cuda.set_per_process_memory_fraction(min(1.0, CAP_GIB.get(preset.name, total) / total))
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    transformer = _transformer(name, full=full).eval()
    dtype = _place(transformer, preset, device=device)
    inputs = _inputs(name, transformer, width=width, height=height, device=device, dtype=dtype)
    patch = transformer.config.patch_size
    tokens = inputs["hidden_states"].numel() // inputs["hidden_states"].shape[0] // transformer.config.in_channels
    tokens //= (
        math.prod(patch)
        if isinstance(patch, (list, tuple))
        else patch * patch * (getattr(transformer.config, "patch_size_t", None) or 1)
    )
    times: list[float] = []
    status = "ok"
    try:
        with torch.no_grad():
            for i in range(steps + 1):
                started = time.perf_counter()
                transformer(**inputs, return_dict=False)
                if full:
                    torch.cuda.synchronize()
                if i:
                    times.append(time.perf_counter() - started)
    except torch.OutOfMemoryError:
        status = "OOM"
    peak_gib = (
        torch.cuda.max_memory_allocated() / 2**30
        if full
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    )
    del transformer, inputs
    return {
        "model": name,
        "size": f"{width}x{height}x{NATIVE_FRAMES[name]}f" + ("" if full else " (tiny)"),
        "preset": preset.name,
        "tokens": tokens,
        "step_s": statistics.median(times) if times else float("nan"),
        "peak_gib": peak_gib,
        "status": status,
    }


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--size", choices=("tiny", "full"), default="full" if torch.cuda.is_available() else "tiny")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    full = args.size == "full"
    if full and not torch.cuda.is_available():
        raise SystemExit("bench_models: --size full needs a CUDA GPU; use --size tiny on CPU")
    rows = []
    for name in args.models:
        for preset in adapter(name).presets:
            if not full and preset.cpu_blocker():
                print(f"skip {name}/{preset.name}: {preset.cpu_blocker()}")
                continue
            if full and preset.device == "cpu":
                continue
            rows.append(bench(name, preset, full=full, steps=args.steps))
    where = torch.cuda.get_device_name(0) if full else f"CPU, {torch.get_num_threads()} threads"
    print(f"\ntransformer step (median of {args.steps}) on {where}; torch {torch.__version__}")
    print(f"{'model':<13} {'size':<22} {'preset':<6} {'tokens':>7} {'step s':>8} {'peak GiB':>9}  status")
    for r in rows:
        print(
            f"{r['model']:<13} {r['size']:<22} {r['preset']:<6} {r['tokens']:>7} {r['step_s']:>8.3f} "
            f"{r['peak_gib']:>9.2f}  {r['status']}"
        )


if __name__ == "__main__":
    main()
