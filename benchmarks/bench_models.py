"""Transformer step time and peak memory per model and preset, at each model's native token count.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_models.py            # tiny sizes on CPU
    PYTHONPATH=. .venv/bin/python benchmarks/bench_models.py --size full # full size, needs a GPU

Full size builds each transformer from its real config (``vgkit.cost.architectures``) with random
weights (no download) and times one transformer call as its pipeline makes it, on the native frame
count at the size each preset generates (Wan 2.2 TI2V-5B: 1280x704, 121 frames, 27,280 tokens,
one of the two CFG passes; CogVideoX1.5: 81 frames, CFG batch of 2; HunyuanVideo-I2V:
129 frames, embedded guidance, batch of 1), next to what ``vgkit.cost`` projects for that call on
the card (``proj s``). The
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

from vgkit.cost.architectures import ARCHITECTURES, transformer_inputs
from vgkit.models import adapter
from vgkit.models.base import Preset

MODELS = ("wan22", "cogvideox15", "hunyuan-i2v")
CAP_GIB = {"4090": 24.0}


def _transformer(name: str, *, full: bool) -> Any:
    import diffusers

    from vgkit.hub.checkpoints import locate_checkpoint

    if full:
        arch = ARCHITECTURES[name]
        return getattr(diffusers, arch.transformer_class)(**arch.transformer_config)
    tiny = adapter(f"{name}-tiny")
    cls = getattr(diffusers, tiny._component_classes(locate_checkpoint(tiny))["transformer"])
    return cls.from_pretrained(str(locate_checkpoint(tiny)), subfolder="transformer")


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


def _projected_pass_s(model: Any, preset: Preset, *, width: int, height: int, frames: int) -> float | None:
    """What vgkit.cost projects for one transformer call on this GPU (None: a card it has no figures for)."""
    import torch

    from vgkit.cost.planner import card_for_this_machine, project_preset

    memory = torch.cuda.get_device_properties(0).total_memory / 2**30
    gpu = card_for_this_machine(torch.cuda.get_device_name(0), memory)
    if gpu is None:
        return None
    arch = ARCHITECTURES[model.name]
    one = project_preset(model, preset, gpu=gpu, width=width, height=height, num_frames=frames, steps=1)
    return one.step_tflop / arch.passes_per_step * 1e12 / (gpu.bf16_dense_tflops * 1e12 * one.efficiency)


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
    frames = ARCHITECTURES[name].native_frames
    inputs = transformer_inputs(
        name, transformer, width=width, height=height, num_frames=frames, device=device, dtype=dtype
    )
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
    projected = _projected_pass_s(model, preset, width=width, height=height, frames=frames) if full else None
    return {
        "model": name,
        "size": f"{width}x{height}x{frames}f" + ("" if full else " (tiny)"),
        "preset": preset.name,
        "tokens": tokens,
        "step_s": statistics.median(times) if times else float("nan"),
        "projected_s": projected,
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
    print(f"{'model':<13} {'size':<22} {'preset':<6} {'tokens':>7} {'step s':>8} {'proj s':>7} {'peak GiB':>9}  status")
    for r in rows:
        projected = "-" if r["projected_s"] is None else f"{r['projected_s']:.3f}"
        print(
            f"{r['model']:<13} {r['size']:<22} {r['preset']:<6} {r['tokens']:>7} {r['step_s']:>8.3f} "
            f"{projected:>7} {r['peak_gib']:>9.2f}  {r['status']}"
        )


if __name__ == "__main__":
    main()
