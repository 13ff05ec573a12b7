"""Per clip of a tiny run: time vgkit spends outside the pipeline call vs ffmpeg alone.

"Pipeline" is the denoising call plus the VAE decode (what one ``pipe(...)`` call does). Outside
it, vgkit saves the latents, encodes the mp4 (ffmpeg) with its frame-count check, writes the
last-frame PNG, hashes every artifact and writes the log. The reference column is the same
ffmpeg command on the same frames, run alone (best of ``--repeat``).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_overhead.py [--clips 3] [--steps 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
WIDTHS = (4, 8, 10, 9, 17, 14)


class TimedGenerator:
    """Delegates to a real generator, timing its calls and keeping each clip's decoded frames."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model, self.device, self.load_s = inner.model, inner.device, inner.load_s
        self.pipeline_s: list[float] = []
        self.frames: list[np.ndarray] = []

    def pipeline_info(self) -> dict[str, Any]:
        info: dict[str, Any] = self.inner.pipeline_info()
        return info

    def denoise(self, request: Any, *, on_step: Any = None) -> Any:
        started = time.perf_counter()
        out = self.inner.denoise(request, on_step=on_step)
        self.pipeline_s.append(time.perf_counter() - started)
        return out

    def decode(self, latents: Any, *, attempt: str) -> np.ndarray:
        started = time.perf_counter()
        frames: np.ndarray = self.inner.decode(latents, attempt=attempt)
        self.pipeline_s[-1] += time.perf_counter() - started
        self.frames.append(frames)
        return frames


def ffmpeg_alone_s(frames: np.ndarray, *, fps: int, dest: Path, repeat: int) -> float:
    from vgkit.finish.encode import encoder_args, run_ffmpeg

    _, height, width, _ = frames.shape
    raw = np.ascontiguousarray(frames).tobytes()
    args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0"]
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run_ffmpeg([*args, *encoder_args(), str(dest)], stdin=raw)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="ffmpeg-alone repetitions (best is shown)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vgkit-bench-") as tmp_name:
        tmp = Path(tmp_name)
        os.environ.setdefault("HF_HUB_CACHE", str(tmp / "hub"))
        os.environ.setdefault("VGKIT_FORCE_CPU", "1")
        from vgkit.generate.generator import InProcessGenerator
        from vgkit.generate.runner import run_job
        from vgkit.records.schema import read_logs

        spec = {
            "name": "bench",
            "model": "wan22-tiny",
            "reference_image": str(REPO / "params" / "images" / "lighthouse.png"),
            "globals": {k: "x" for k in ("style", "era_location", "lighting", "lens", "aspect")},
            "shots": [
                {"subject": f"boat {i}", "action": "sails", "environment": "sea", "duration_s": 5}
                for i in range(args.clips)
            ],
            "overrides": {"width": 64, "height": 64, "steps": args.steps},
            "allow_any_length": True,
        }
        spec_path = tmp / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec))
        timed: list[TimedGenerator] = []

        def factory(model: Any, snapshot: Path, device: str) -> TimedGenerator:
            timed.append(TimedGenerator(InProcessGenerator(model, snapshot, device=device)))
            return timed[0]

        result = run_job(spec_path, out=tmp / "run", progress=lambda line: None, make_generator=factory)
        logs = read_logs(result.run_dir)
        gen = timed[0]
        print(f"tiny run: {args.clips} clips x 121 frames at 64x64, {args.steps} steps, CPU ({os.cpu_count()} cores)")
        header = ("clip", "total s", "pipeline s", "outside s", "of which encode s", "ffmpeg alone s")
        print(" ".join(f"{h:>{w}}" for h, w in zip(header, WIDTHS, strict=True)))
        for i, log in enumerate(logs):
            total_s = log.timings_s.total_s or 0.0
            outside_s = total_s - gen.pipeline_s[i]
            alone_s = ffmpeg_alone_s(gen.frames[i], fps=24, dest=tmp / f"alone_{i}.mp4", repeat=args.repeat)
            row = (total_s, gen.pipeline_s[i], outside_s, log.timings_s.encode_s or 0.0, alone_s)
            print(f"{i:>{WIDTHS[0]}} " + " ".join(f"{v:>{w}.3f}" for v, w in zip(row, WIDTHS[1:], strict=True)))


if __name__ == "__main__":
    main()
