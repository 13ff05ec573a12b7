"""Resume under SIGKILL: a tiny job killed at random points and resumed ends with the same clips,
frames, latents and log hashes as an uninterrupted run, with no torn or orphaned temp files."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import REPO, spec_dict, write_spec
from vgkit.generate.runner import run_job
from vgkit.records.artifacts import sha256_file
from vgkit.records.events import read_events

KILL_POINTS = 2  # each round is a fresh process: ~5 s of imports and a load before its kill


def _start(spec: Path, run_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vgkit", "run", str(spec), "--out", str(run_dir), "--in-process"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_until_loaded(proc: subprocess.Popen[str]) -> float:
    """Read progress lines until the pipeline is loaded; return that moment (monotonic)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("loaded in "):
            break
    return time.monotonic()


def _files(run_dir: Path) -> dict[str, str]:
    return {p.relative_to(run_dir).as_posix(): sha256_file(p) for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _log_hashes(run_dir: Path) -> list[dict[str, Any]]:
    logs = [json.loads(p.read_text()) for p in sorted((run_dir / "logs").glob("log_*.json"))]
    keys = ("status", "input", "request", "artifacts")
    return [{k: log[k] for k in keys} for log in logs]


def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    data = spec_dict()
    data["shots"] = data["shots"][:2]
    spec = write_spec(tmp_path / "spec.yaml", data)

    # The uninterrupted run in this process, as the Ray tests make theirs (one interpreter fewer to start)
    reference_dir = tmp_path / "reference"
    loaded_at: list[float] = []

    def note_load(line: str) -> None:
        if line.startswith("loaded in "):
            loaded_at.append(time.monotonic())

    run_job(spec, out=reference_dir, progress=note_load)
    generate_s = time.monotonic() - loaded_at[0]

    rng = random.Random(int(os.environ.get("VGKIT_TEST_SEED", "20261123")))
    resumed_dir = tmp_path / "resumed"
    kills: list[float] = []
    for _ in range(KILL_POINTS):
        proc = _start(spec, resumed_dir)
        _wait_until_loaded(proc)
        # Each round resumes where the last left off, so short delays keep every round killable.
        delay_s = rng.uniform(0.05, 0.3) * generate_s
        time.sleep(delay_s)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills.append(round(delay_s, 2))
        proc.wait()
    proc = _start(spec, resumed_dir)
    assert proc.stdout is not None
    output = proc.stdout.read()
    assert proc.wait(timeout=600) == 0, output
    print(f"killed after load at {kills} s of ~{generate_s:.1f} s of generation")
    assert kills, "no round was still running at its kill point"

    reference, resumed = _files(reference_dir), _files(resumed_dir)
    assert not [name for name in resumed if ".part" in name], "orphaned temp files"
    assert sorted(resumed) == sorted(reference)
    # the run lock file names its last holder (pid, time) and events.jsonl records when each step happened
    # (every attempt's, appended); everything else but logs and manifest is bytes-equal
    timed = ("manifest.json", ".vgkit-run.lock", "events.jsonl")
    same_bytes = [n for n in reference if not n.startswith("logs/") and n not in timed]
    assert {n: resumed[n] for n in same_bytes} == {n: reference[n] for n in same_bytes}
    events = read_events(resumed_dir)  # killed attempts' events too, never a torn line
    assert len(events) == len((resumed_dir / "events.jsonl").read_text().splitlines())
    assert events[-1].stage == "run-done" and [e.stage for e in events].count("plan") >= 1
    assert _log_hashes(resumed_dir) == _log_hashes(reference_dir)
