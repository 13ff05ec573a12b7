"""Wall time of the test loops as scripts/test.sh runs them: the inner loop and the whole suite.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_test_suite.py [fast] [full] [--workers 2] [--slowest 15]

``fast`` is ``bash scripts/test.sh --fast`` (the inner loop); ``full`` is the pytest part of
``bash scripts/test.sh`` (every test on the xdist workers; set-up, ruff and mypy not timed).
One row per loop: wall seconds, pytest's summary line and the load average before and after
(other work on the machine lengthens every figure), then the slowest tests of each loop.
Results with their machine and load: benchmarks/test_suite_times.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def loop_command(loop: str, *, workers: int, junit: Path) -> list[str]:
    if loop == "fast":
        return ["bash", "scripts/test.sh", "--fast", "-q", f"--junitxml={junit}"]
    python = str(REPO / ".venv" / "bin" / "python")
    return [python, "-m", "pytest", "-n", str(workers), "-q", f"--junitxml={junit}"]


def slowest_tests(junit: Path, count: int) -> list[tuple[float, str]]:
    """The ``count`` longest test cases of a JUnit XML report (setup, call and teardown together)."""
    if not junit.is_file():
        return []
    cases = ET.parse(junit).getroot().iter("testcase")
    timed = [(float(c.get("time", 0)), f"{c.get('classname')}::{c.get('name')}") for c in cases]
    return sorted(timed, reverse=True)[:count]


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("loops", nargs="*", choices=["fast", "full"], default=["fast"])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("VGKIT_TEST_WORKERS", "2")))
    parser.add_argument("--slowest", type=int, default=15)
    args = parser.parse_args()

    rows, slow = [], {}
    with tempfile.TemporaryDirectory(prefix="vgkit-bench-tests-") as tmp:
        for loop in args.loops:
            junit = Path(tmp) / f"{loop}.xml"
            command = loop_command(loop, workers=args.workers, junit=junit)
            before = load_average()
            started = time.monotonic()
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ})
            wall_s = time.monotonic() - started
            summary = next((line for line in reversed(done.stdout.splitlines()) if " in " in line), "?")
            rows.append((loop, wall_s, summary.strip("= "), before, load_average(), " ".join(command)))
            slow[loop] = slowest_tests(junit, args.slowest)

    print(f"{os.cpu_count()} CPUs here; workers {args.workers}")
    print(f"{'loop':<5} {'wall s':>7}  {'load before':<15} {'load after':<15} pytest")
    for loop, wall_s, summary, before, after, _ in rows:
        print(f"{loop:<5} {wall_s:7.1f}  {before:<15} {after:<15} {summary}")
    for loop, *_, command in rows:
        print(f"\n{loop}: {command}")
        for seconds, name in slow[loop]:
            print(f"  {seconds:7.1f} s  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
