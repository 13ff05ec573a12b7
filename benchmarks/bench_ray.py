"""Scale-out on Ray: a tiny sweep on N logical GPUs vs the same runs one after another, and Ray's start-up.

Cells: the three tiny models x ``--seeds`` (default 2: six runs), one ``--shots``-shot spec at
64x64, 2 steps. Columns:

- ``ray start`` : ``ray.init`` of a local cluster (``--cpus`` CPUs, ``--gpus`` logical GPUs)
- ``sequential``: every run in this process, one after another (``run_job``, each loads its model)
- ``ray``       : ``vgkit.scale.scheduler.run_cells`` over the same runs, one worker per logical GPU,
  excluding ``ray start`` (workers start, import torch and load their models inside it)

then each logical GPU's busy share of the Ray sweep, from the runs' placements as the report
reads them (vgkit.evaluate.report.placements).

On CPU the logical GPUs share the same cores, so ``ray`` measures the overhead of the worker
path (actor start, clips home, stitching on the driver) more than any speed-up; on a machine
with N real GPUs the generation part divides by about N.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_ray.py [--gpus 2] [--cpus 2] [--seeds 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TINY_MODELS = ("wan22-tiny", "cogvideox15-tiny", "hunyuan-i2v-tiny")


def write_spec(folder: Path, shots: int) -> Path:
    shot = {"subject": "a boat", "action": "sails", "environment": "sea", "camera": "pan", "duration_s": 5}
    spec = {
        "name": "bench",
        "model": "wan22-tiny",
        "reference_image": str(REPO / "params" / "images" / "lighthouse.png"),
        "seed": 7,
        "globals": {"style": "photoreal", "era_location": "coast", "lighting": "day", "lens": "35mm", "aspect": "16:9"},
        "shots": [shot] * shots,
        "overrides": {"width": 64, "height": 64, "steps": 2},
        "allow_any_length": True,
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpus", type=int, default=2, help="logical GPUs (one worker each)")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--shots", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vgkit-bench-ray-") as tmp:
        root = Path(tmp)
        for name, value in (("HF_HUB_CACHE", root / "hub"), ("VGKIT_LOCK_DIR", root / "locks")):
            os.environ[name] = str(value)
        os.environ.update(VGKIT_FORCE_CPU="1", VGKIT_RAY_SCRATCH=str(root / "scratch"))
        import ray

        from vgkit.evaluate.report.placements import gpu_timelines, read_placements
        from vgkit.generate.runner import run_job
        from vgkit.hub.checkpoints import locate_checkpoint
        from vgkit.models import adapter
        from vgkit.scale import make_cells
        from vgkit.scale.scheduler import run_cells

        for name in TINY_MODELS:  # built once, outside every timing
            locate_checkpoint(adapter(name))
        spec = write_spec(root, args.shots)
        seq_cells = make_cells([spec], models=list(TINY_MODELS), seeds=args.seeds, root=root / "seq")
        t0 = time.perf_counter()
        for cell in seq_cells:
            seeded = cell.spec_path
            if cell.seed is not None:
                data = yaml.safe_load(spec.read_text()) | {"seed": cell.seed}
                seeded = root / f"{cell.name}.yaml"
                seeded.write_text(yaml.safe_dump(data))
            run_job(seeded, model=cell.model, out=cell.run_dir, progress=lambda line: None)
        sequential_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=args.cpus, num_gpus=args.gpus, include_dashboard=False, log_to_driver=False)
        start_s = time.perf_counter() - t0
        try:
            ray_cells = make_cells([spec], models=list(TINY_MODELS), seeds=args.seeds, root=root / "ray")
            t0 = time.perf_counter()
            outcomes = run_cells(ray_cells, progress=lambda line: None, qa=False)
            ray_s = time.perf_counter() - t0
        finally:
            ray.shutdown()
        assert all(o.status == "completed" for o in outcomes), [o.detail for o in outcomes]
        placements = [
            p for o in outcomes for p in read_placements(o.cell.name, o.cell.model, {"placements": o.placements})
        ]

    runs = len(seq_cells)
    print(f"{runs} tiny runs ({args.shots} shot(s) each), {args.gpus} logical GPUs, {os.cpu_count()} CPUs here")
    print(f"{'what':<28} {'wall s':>8} {'s per run':>10}")
    print(f"{'ray start (ray.init)':<28} {start_s:>8.1f} {'':>10}")
    print(f"{'sequential (run_job)':<28} {sequential_s:>8.1f} {sequential_s / runs:>10.1f}")
    print(f"{'ray (run_cells)':<28} {ray_s:>8.1f} {ray_s / runs:>10.1f}")
    print(f"\n{'GPU (ray)':<28} {'runs':>8} {'busy s':>10} {'billed s':>10} {'busy':>6}")
    for timeline in gpu_timelines(placements):
        count = sum(1 for s in timeline.segments if s.busy)
        share = timeline.busy_s / timeline.billed_s if timeline.billed_s else 0.0
        print(f"{timeline.where:<28} {count:>8} {timeline.busy_s:>10.1f} {timeline.billed_s:>10.1f} {share:>6.0%}")


if __name__ == "__main__":
    main()
