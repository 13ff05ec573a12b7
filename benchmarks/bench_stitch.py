"""Time vgkit's stitcher against one hand-written ffmpeg xfade filtergraph doing the same job.

Both stitch the same synthetic 1280x720 clips (made with vgkit.finish.encode) with a crossfade of the
same length, the same encoder recipe and thread count, alternating run by run. vgkit's time also
covers what the bare command does not do: hashing the inputs against their logs, checking the
output's frame count (a full decode) and hashing the result. Target: vgkit / hand-written <= 1.15.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_stitch.py [--clips 4] [--seconds 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vgkit.finish.encode import count_frames, encoder_args, run_ffmpeg
from vgkit.finish.stitch import StitchSettings, planned_final_frames, stitch_run
from vgkit.records.artifacts import RunLayout, sha256_file

FPS = 24
WIDTH, HEIGHT = 1280, 720


def make_clips(root: Path, *, clips: int, frames: int) -> RunLayout:
    """Moving-gradient 720p clips in a run directory shaped like a real run (plan, clips, last
    frames, logs), written by the tests' own synthetic-run helper."""
    from tests.test_stitch import make_run

    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    videos = []
    for i in range(clips):
        video = np.empty((frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
        for t in range(frames):
            video[t, ..., 0] = (x + 4 * t + 40 * i) % 256
            video[t, ..., 1] = (y + 2 * t) % 256
            video[t, ..., 2] = (x // 5 + y // 5 + 60 * i) % 256
        videos.append(video)
    return make_run(root, clips=videos)


def hand_written(layout: RunLayout, *, clips: int, frames: int, overlap: int, dest: Path) -> None:
    """The graph one would write by hand: drop the repeated first frame, chain xfade in seconds."""
    fade_s = overlap / FPS
    parts = ["[0:v]setpts=PTS-STARTPTS[v0]"]
    parts += [f"[{i}:v]trim=start_frame=1,setpts=PTS-STARTPTS[v{i}]" for i in range(1, clips)]
    prev, length_s = "v0", frames / FPS
    for i in range(1, clips):
        name = "out" if i == clips - 1 else f"x{i}"
        parts.append(
            f"[{prev}][v{i}]xfade=transition=fade:duration={fade_s:.6f}:offset={length_s - fade_s:.6f}[{name}]"
        )
        prev, length_s = name, length_s + (frames - 1) / FPS - fade_s
    args: list[str] = []
    for i in range(clips):
        args += ["-i", str(layout.clip(i))]
    run_ffmpeg([*args, "-filter_complex", ";".join(parts), "-map", "[out]", "-r", str(FPS), *encoder_args(), str(dest)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each synthetic clip")
    parser.add_argument("--overlap-frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    frames = round(args.seconds * FPS) + 1
    settings = StitchSettings(transition="crossfade", overlap_frames=args.overlap_frames)
    with tempfile.TemporaryDirectory(prefix="vgkit-bench-") as tmp:
        layout = make_clips(Path(tmp) / "run", clips=args.clips, frames=frames)
        plan = planned_final_frames([frames] + [frames - 1] * (args.clips - 1), overlap_frames=args.overlap_frames)
        times: dict[str, list[float]] = {"vgkit stitch_run": [], "hand-written xfade": []}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            stitch_run(layout.root, settings)
            times["vgkit stitch_run"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hand_written(layout, clips=args.clips, frames=frames, overlap=args.overlap_frames, dest=Path(tmp) / "h.mp4")
            times["hand-written xfade"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        count_frames(layout.final)
        sha256_file(layout.final)
        check_s = time.perf_counter() - t0
        counts = {
            "vgkit stitch_run": count_frames(layout.final),
            "hand-written xfade": count_frames(Path(tmp) / "h.mp4"),
        }
    print(
        f"{args.clips} clips x {frames} frames, {WIDTH}x{HEIGHT} @ {FPS} fps, crossfade {args.overlap_frames} frames, "
        f"threads {encoder_args()[-1]}, {args.repeats} runs each (alternating); plan: {plan} frames"
    )
    print(f"{'stitcher':<20} {'median s':>9} {'min s':>8} {'frames':>7}")
    for name, values in times.items():
        print(f"{name:<20} {statistics.median(values):>9.2f} {min(values):>8.2f} {counts[name]:>7}")
    print(f"of vgkit's time, its checks (frame-count decode + sha256 of the final) took {check_s:.2f} s once")
    ratio = statistics.median(times["vgkit stitch_run"]) / statistics.median(times["hand-written xfade"])
    best = min(times["vgkit stitch_run"]) / min(times["hand-written xfade"])
    print(f"ratio vgkit / hand-written: median {ratio:.3f}x, best-of-{args.repeats} {best:.3f}x (target <= 1.15x)")


if __name__ == "__main__":
    main()
