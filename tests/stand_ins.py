"""Stand-in clip generators: real ``ClipGenerator`` implementations that misbehave on purpose.

They replace the pipeline, not diffusers internals: the chain, guard, watchdog and logs they run
under are the real ones. ``python -m tests.stand_ins SPEC RUN_DIR --worker-state-file PATH``
runs a job whose generator hangs, as a watchdog test's worker child; ``VGKIT_GENERATOR_FACTORY=
tests.stand_ins:hanging_generator`` makes vgkit's own worker child (``vgkit run``, the notebooks,
the sweep) use it, with the pid record at ``$STAND_IN_PID_FILE``.

A hung CUDA call cannot be staged on a CPU-only machine otherwise: this is the one stub, at the
library boundary (the pipeline call), and the tests that use it say so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from vgkit.generate.generator import ClipRequest, Denoised, StepHook
from vgkit.models import ModelAdapter


class HangingGenerator:
    """Denoising never returns; it first starts a grandchild (``sleep``) in the same process group
    and records both pids in ``pids.json`` so a test can check that nothing survives."""

    def __init__(self, model: ModelAdapter, *, pid_file: Path) -> None:
        self.model = model
        self.device = "cpu"
        self.load_s = 0.0
        self.pid_file = pid_file

    def pipeline_info(self) -> dict[str, Any]:
        return {"pipeline_class": type(self).__name__}

    def denoise(self, request: ClipRequest, *, on_step: StepHook | None = None) -> Denoised:
        grandchild = subprocess.Popen(["sleep", "600"])
        self.pid_file.write_text(json.dumps({"worker": os.getpid(), "grandchild": grandchild.pid}))
        while True:  # a hung CUDA call: never returns, never calls on_step
            time.sleep(3600)

    def decode(self, latents: Any, *, attempt: str) -> np.ndarray:
        raise AssertionError("unreachable")


class OutOfMemoryDecoder:
    """Decoding raises ``torch.OutOfMemoryError`` for the first ``failures`` attempts."""

    def __init__(self, model: ModelAdapter, *, failures: int, frames: np.ndarray) -> None:
        self.model = model
        self.device = "cpu"
        self.load_s = 0.0
        self.failures = failures
        self.frames = frames
        self.attempts: list[str] = []

    def pipeline_info(self) -> dict[str, Any]:
        return {"pipeline_class": type(self).__name__}

    def denoise(self, request: ClipRequest, *, on_step: StepHook | None = None) -> Denoised:
        raise AssertionError("unreachable")

    def decode(self, latents: Any, *, attempt: str) -> np.ndarray:
        import torch

        self.attempts.append(attempt)
        if len(self.attempts) <= self.failures:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 26.00 GiB")
        return self.frames


def stand_in_gpu(tmp_path: Path, script: str) -> Path:
    """Put an executable ``nvidia-smi`` whose body is ``script`` (a shell script standing in for the
    driver's tool on this GPU-less machine) in ``tmp_path/bin``; return that folder for ``PATH``."""
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir(parents=True, exist_ok=True)
    smi.write_text(script)
    smi.chmod(0o755)
    return smi.parent


def hanging_generator(model: ModelAdapter, snapshot: Path, device: str) -> HangingGenerator:
    """``VGKIT_GENERATOR_FACTORY`` target: a ``HangingGenerator`` recording pids at ``$STAND_IN_PID_FILE``."""
    return HangingGenerator(model, pid_file=Path(os.environ["STAND_IN_PID_FILE"]))


def _proc_stats() -> dict[int, list[str]]:
    """pid -> the fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...)."""
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            stats[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
    return stats


def children(pid: int) -> list[int]:
    """Live child pids of ``pid``."""
    return [p for p, fields in _proc_stats().items() if fields[1] == str(pid) and fields[0] != "Z"]


def gone(pid: int, *, group: bool) -> bool:
    """True once no live process has this pid (or, with ``group``, this process group id).

    ``os.kill``/``os.killpg`` with signal 0 say so directly; a zombie still counts for them until
    its new parent reaps it, so /proc decides among zombies (state ``Z`` runs nothing).
    """
    for _ in range(50):
        try:
            (os.killpg if group else os.kill)(pid, 0)
        except ProcessLookupError:
            return True
        live = [p for p, f in _proc_stats().items() if f[0] != "Z" and (f[2] == str(pid) if group else p == pid)]
        if not live:
            return True
        time.sleep(0.1)
    return False


def main() -> None:
    from vgkit.generate.runner import run_job

    parser = argparse.ArgumentParser()
    parser.add_argument("spec", type=Path)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--worker-state-file", type=Path, required=True)
    args = parser.parse_args()
    pid_file = args.run_dir / "pids.json"
    run_job(
        args.spec,
        out=args.run_dir,
        state_file=args.worker_state_file,
        make_generator=lambda model, snapshot, device: HangingGenerator(model, pid_file=pid_file),
    )


if __name__ == "__main__":
    main()
