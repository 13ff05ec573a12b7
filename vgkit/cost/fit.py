"""Fit the per-architecture efficiency factors to the published figures, and state the residuals.

For each published figure, the *floor* is the projection at efficiency 1.0 (all FLOPs at the card's
dense bf16 peak, plus the offload transfers). Its efficiency is floor / published. A card class's
factor is the geometric mean of its figures' efficiencies; the residual of a figure is
projected / published - 1 with that factor. ``EFFICIENCY`` in projection.py holds the result
(rounded); ``python -m vgkit.cost.fit`` prints the table that produced it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vgkit.cost.gpus import card
from vgkit.cost.projection import PUBLISHED, Published, project

__all__ = ["Fitted", "fit_efficiency", "native_projection"]


@dataclass(frozen=True)
class Fitted:
    published: Published
    floor_s: float
    efficiency: float  # this figure alone
    projected_s: float  # with its class's fitted factor
    residual: float  # projected / published - 1
    projected_peak_gib: float
    peak_residual: float | None


def native_projection(figure: Published, *, efficiency: float | None) -> tuple[float, float]:
    """(seconds, peak GiB) of ``figure``'s model at its native settings on its card and placement."""
    from vgkit.cost.architectures import ARCHITECTURES
    from vgkit.models import adapter
    from vgkit.models.presets import Preset

    base = adapter(figure.model).baseline
    tiled = figure.model == "hunyuan-i2v"  # HunyuanVideo's reference code always decodes tiled
    dtypes = {"wan22": ("bfloat16", "float32"), "cogvideox15": ("bfloat16", "bfloat16")}
    other, vae = dtypes.get(figure.model, ("float16", "float16"))
    placement = Preset(name="", offload=figure.offload, vae_tiling=tiled, other_dtype=other, vae_dtype=vae)
    result = project(
        figure.model,
        preset=placement,
        card=card(figure.card),
        width=base.width,
        height=base.height,
        num_frames=ARCHITECTURES[figure.model].native_frames,
        steps=base.steps,
        efficiency=efficiency,
    )
    return result.seconds_per_clip, result.peak_gib


def fit_efficiency() -> tuple[dict[str, float], list[Fitted]]:
    """The fitted factor per card class, and every published figure's residual under it."""
    floors = {figure: native_projection(figure, efficiency=1.0) for figure in PUBLISHED}
    by_class: dict[str, list[float]] = {}
    for figure, (floor_s, _) in floors.items():
        by_class.setdefault(card(figure.card).card_class, []).append(floor_s / figure.seconds_per_clip)
    factors = {cls: math.exp(sum(map(math.log, effs)) / len(effs)) for cls, effs in by_class.items()}
    rows = []
    for figure, (floor_s, peak) in floors.items():
        factor = factors[card(figure.card).card_class]
        projected = floor_s / factor
        rows.append(
            Fitted(
                published=figure,
                floor_s=floor_s,
                efficiency=floor_s / figure.seconds_per_clip,
                projected_s=projected,
                residual=projected / figure.seconds_per_clip - 1.0,
                projected_peak_gib=peak,
                peak_residual=None if figure.peak_gib is None else peak / figure.peak_gib - 1.0,
            )
        )
    return factors, rows


def write_packaged_counts() -> int:
    """Count afresh every published figure's clip, every GPU preset's native clip (at the preset's
    size and at the model's full size) and the fixes a refusal of that clip projects
    (vgkit.cost.planner.fix_candidates), and write them to
    ``count.PACKAGED``; returns the number of counts written."""
    import json
    import os
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from vgkit.cost import count
    from vgkit.cost.architectures import ARCHITECTURES
    from vgkit.cost.planner import fix_candidates, project_native, project_preset
    from vgkit.models import adapter

    with tempfile.TemporaryDirectory() as tmp:
        previous = os.environ.get("VGKIT_COST_CACHE")
        os.environ["VGKIT_COST_CACHE"] = tmp
        count._MEMO.clear()
        count._packaged.cache_clear()
        saved, count.PACKAGED = count.PACKAGED, Path(tmp) / "none.json"
        try:
            fit_efficiency()
            for name in ARCHITECTURES:
                model = adapter(name)
                gpu_presets = [preset for preset in model.presets if preset.device != "cpu"]
                # and each at the model's full size (a plan asking for 1280x720 under a preset that scales)
                full_size = [replace(preset, size_scale=1.0) for preset in gpu_presets if preset.size_scale != 1.0]
                for preset in gpu_presets + full_size:
                    gpu = card("4090" if preset.name == "4090" else "h100")
                    native = project_native(model, preset, gpu=gpu)
                    base = (model.baseline.width, model.baseline.height)
                    generated = (native.width, native.height)
                    for option, width, height in fix_candidates(model, preset, output=base, generated=generated):
                        size = {"width": width, "height": height, "num_frames": native.num_frames}
                        project_preset(model, option, gpu=gpu, steps=native.steps, **size)
        finally:
            count.PACKAGED = saved
            if previous is None:
                del os.environ["VGKIT_COST_CACHE"]
            else:
                os.environ["VGKIT_COST_CACHE"] = previous
        counts = {p.stem: json.loads(p.read_text()) for p in sorted(Path(tmp).glob("*.json"))}
    count.PACKAGED.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n")
    count._packaged.cache_clear()
    return len(counts)


def main() -> None:
    import sys

    if "--write-counts" in sys.argv[1:]:
        print(f"wrote {write_packaged_counts()} counts to vgkit/cost/counts.json")
        return
    factors, rows = fit_efficiency()
    print("factors: " + ", ".join(f"{cls} {value:.3f}" for cls, value in sorted(factors.items())))
    print(f"{'model':<12} {'card':<5} {'published s':>11} {'floor s':>8} {'projected s':>11} {'residual':>8}  peak")
    for r in rows:
        peak = "" if r.peak_residual is None else f"{r.projected_peak_gib:.1f} GiB ({r.peak_residual:+.0%})"
        print(
            f"{r.published.model:<12} {r.published.card:<5} {r.published.seconds_per_clip:>11.0f} {r.floor_s:>8.0f} "
            f"{r.projected_s:>11.0f} {r.residual:>+8.0%}  {peak}"
        )


if __name__ == "__main__":
    main()
