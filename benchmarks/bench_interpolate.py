"""RIFE speed at 1280x720 and seam quality of cut, crossfade, minterpolate and RIFE on a synthetic pan.

Speed: RIFE midpoint frames per second at 1280x720 on the CPU (``RIFE_CPU_THREADS`` threads, as
vgkit runs it), and on CUDA when torch sees a GPU; one warm-up frame first.

Quality: a smooth synthetic texture pans ``--step-px`` pixels a frame. At each seam two real
frames ``2 * SEAM_WINDOW_FRAMES + 1`` steps apart stand for the clips either side of a cut; the
``2 * SEAM_WINDOW_FRAMES`` true frames between them are held out and each method re-makes them:
cut (each held-out frame shows the nearer real frame), crossfade (a linear blend), minterpolate
(vgkit.finish.stitch's own seam filter over two real context frames each side) and RIFE
(vgkit.finish.interpolate at the same timesteps). PSNR (dB) and SSIM (grey, 7x7 box windows) against
the held-out truth, averaged over the frames of ``--seams`` seams, 8 px border excluded.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_interpolate.py [--width 640 --height 360] [--speed-frames 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from vgkit.finish.encode import run_ffmpeg_raw
from vgkit.finish.interpolate import RIFE_CPU_THREADS, Rife, interpolator_record
from vgkit.finish.stitch import SEAM_CONTEXT_FRAMES, SEAM_WINDOW_FRAMES, _bridge_filter

FPS = 24


def pan(count: int, *, width: int, height: int, step_px: int) -> np.ndarray:
    """``count`` frames of a smooth texture moving ``step_px`` pixels a frame to the left."""
    y, x = np.mgrid[0:height, 0 : width + step_px * count].astype(np.float32)
    channels = [
        128 + 60 * np.sin(x / 23.0) * np.cos(y / 31.0) + 40 * np.sin((x + 2 * y) / 47.0),
        128 + 70 * np.cos(x / 29.0 + y / 37.0) + 20 * np.sin(x / 7.0),
        128 + 50 * np.sin(x / 17.0) + 40 * np.cos(y / 19.0),
    ]
    texture = np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    return np.stack([texture[:, i * step_px : i * step_px + width] for i in range(count)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * float(np.log10(255**2 / mse))


def _box(img: np.ndarray, k: int = 7) -> np.ndarray:
    c = np.cumsum(np.cumsum(np.pad(img, ((1, 0), (1, 0))), axis=0), axis=1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the grey images over 7x7 box windows (Wang et al. 2004 constants)."""
    grey = np.array([0.299, 0.587, 0.114])
    x, y = a.astype(np.float64) @ grey, b.astype(np.float64) @ grey
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _box(x), _box(y)
    vx, vy, cxy = _box(x * x) - mx * mx, _box(y * y) - my * my, _box(x * y) - mx * my
    return float(np.mean(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))))


def bridges(frames: np.ndarray, start: int, rife: Rife) -> dict[str, np.ndarray]:
    """The held-out frames ``start+1 .. start+2w`` re-made by each method from the frames around them."""
    w, gap = SEAM_WINDOW_FRAMES, 2 * SEAM_WINDOW_FRAMES + 1
    before, after = frames[start], frames[start + gap]
    ts = [j / gap for j in range(1, gap)]
    cut = np.stack([before if t < 0.5 else after for t in ts])
    fade = np.stack([np.round((1 - t) * before + t * after).astype(np.uint8) for t in ts])
    context = np.concatenate(
        [frames[start - SEAM_CONTEXT_FRAMES + 1 : start + 1], frames[start + gap : start + gap + SEAM_CONTEXT_FRAMES]]
    )
    _, height, width, _ = frames.shape
    raw = run_ffmpeg_raw(context, fps=FPS, graph=_bridge_filter(FPS), width=width, height=height)
    mint = np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)[: 2 * w]
    return {"cut": cut, "crossfade": fade, "minterpolate": mint, "rife": rife.between(before, after, ts)}


def speed(device: str, *, frames: int) -> float:
    rife = Rife.load(device)
    a, b = pan(2, width=1280, height=720, step_px=8)
    rife.between(a, b, [0.5])  # warm-up
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    t0 = time.perf_counter()
    rife.between(a, b, [0.5] * frames)
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    return frames / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--step-px", type=int, default=6, help="pan speed in pixels per frame")
    parser.add_argument("--seams", type=int, default=2)
    parser.add_argument("--speed-frames", type=int, default=2, help="timed RIFE frames at 1280x720 per device")
    args = parser.parse_args()

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    record = interpolator_record("rife")
    sha = record["weights_sha256"][:16]
    print(f"RIFE: {record['package']}, weights sha256 {sha}..., CPU threads {RIFE_CPU_THREADS}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print("\n| device | RIFE frames/s at 1280x720 |\n|---|---|")
    for device in devices:
        label = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({RIFE_CPU_THREADS} threads)"
        print(f"| {label} | {speed(device, frames=args.speed_frames):.3g} |", flush=True)

    gap = 2 * SEAM_WINDOW_FRAMES + 1
    total = SEAM_CONTEXT_FRAMES + args.seams * (gap + 2) + SEAM_CONTEXT_FRAMES
    frames = pan(total, width=args.width, height=args.height, step_px=args.step_px)
    rife = Rife.load(devices[-1])
    scores: dict[str, list[tuple[float, float]]] = {}
    inner = (slice(8, -8), slice(8, -8))
    for seam in range(args.seams):
        start = SEAM_CONTEXT_FRAMES + seam * (gap + 2)
        truth = frames[start + 1 : start + gap]
        for name, made in bridges(frames, start, rife).items():
            for got, want in zip(made, truth, strict=True):
                scores.setdefault(name, []).append((psnr(got[inner], want[inner]), ssim(got[inner], want[inner])))
    print(
        f"\nseam quality: {args.width}x{args.height} pan at {args.step_px} px/frame, {args.seams} seams x "
        f"{2 * SEAM_WINDOW_FRAMES} held-out frames, RIFE on {devices[-1]}"
    )
    print("| method | PSNR dB | SSIM |\n|---|---|---|")
    for name, values in scores.items():
        p, s = np.mean([v[0] for v in values]), np.mean([v[1] for v in values])
        print(f"| {name} | {p:.1f} | {s:.3f} |")


if __name__ == "__main__":
    main()
