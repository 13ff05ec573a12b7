"""Remote side of ``vgkit remote``: sent as text to ``<remote python> - COMMAND RUN_DIR`` over SSH.

Sent as text, never imported; it runs in the pushed code's directory, whose ``vgkit.records``
reads the clip logs (the rest is standard library). It prints one JSON object. A job is every
process that is in the job's process group (the ``pgid`` file), in the session of its ``setsid``
leader (``leader.pid``), or that carries the job's marker ``VGKIT_REMOTE_JOB=<id>`` in its
environment (which survives a later ``setsid``).

    status RUN_DIR   pgid, live pids, exit code, clip progress from ``logs/log_NNN.json``
    kill RUN_DIR     TERM then KILL every process of the job, GPU ones included; lists what is left
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONTROL = ".remote"
KILL_WAIT_S = 10.0


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _proc_ids(pid: int) -> tuple[int, int] | None:
    """(pgid, sid) of a live, non-zombie process, or None."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[2]), int(fields[3])


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def job_pids(run_dir: Path) -> list[int]:
    """Every live process of the job (see the module docstring), this agent excluded."""
    control = run_dir / CONTROL
    pgid = int(_read(control / "pgid") or 0)
    leader = int(_read(control / "leader.pid") or 0)
    job_id = _read(control / "job_id")
    marker = f"VGKIT_REMOTE_JOB={job_id}".encode() if job_id else None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        ids = _proc_ids(pid)
        if ids is None:
            continue
        in_group = pgid > 0 and ids[0] == pgid
        in_session = leader > 0 and ids[1] == leader
        if in_group or in_session or (marker is not None and _has_marker(pid, marker)):
            found.append(pid)
    return sorted(found)


def gpu_pids() -> list[int]:
    """PIDs of GPU compute processes from ``nvidia-smi`` (empty where there is none)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-compute-apps=pid", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [int(line) for line in out.split() if line.strip().isdigit()]


def _clips(run_dir: Path) -> dict[str, Any]:
    from vgkit.errors import ArtifactError
    from vgkit.records.schema import read_logs, read_plan

    planned = None
    with contextlib.suppress(OSError, ArtifactError):  # no plan yet, or one being written
        planned = read_plan(run_dir).clip_count
    done = [
        {"index": log.index, "status": log.status, "total_s": log.timings_s.total_s}
        for log in read_logs(run_dir, lenient=True)
    ]
    return {"planned": planned, "done": done}


def status(run_dir: Path) -> dict[str, Any]:
    control = run_dir / CONTROL
    code = _read(control / "exit_code")
    pids = job_pids(run_dir)
    log = _read(control / "job.log") or ""
    bundle = run_dir.parent / f"{run_dir.name}.tar.gz"
    return {
        "run_dir": str(run_dir),
        "started": (control / "leader.pid").exists(),
        "pgid": int(_read(control / "pgid") or 0) or None,
        "pids": pids,
        "running": bool(pids),
        "exit_code": int(code) if code not in (None, "") else None,
        "clips": _clips(run_dir),
        "bundle": bundle.name if bundle.is_file() else None,
        "log_tail": log.splitlines()[-5:],
    }


def _signal_all(pids: list[int], sig: signal.Signals, pgid: int | None) -> None:
    if pgid:
        with contextlib.suppress(OSError):
            os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def kill(run_dir: Path) -> dict[str, Any]:
    pgid = int(_read(run_dir / CONTROL / "pgid") or 0) or None
    leader = int(_read(run_dir / CONTROL / "leader.pid") or 0)
    before = job_pids(run_dir)
    gpu_before = [pid for pid in gpu_pids() if pid in before]
    # the session leader is spared the TERM: it records the exit code once its child is gone
    left = [pid for pid in before if pid != leader]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal_all(left, sig, pgid)
        deadline = time.monotonic() + KILL_WAIT_S
        while job_pids(run_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = job_pids(run_dir)
        if not left:
            break
    gpu_left = [pid for pid in gpu_pids() if pid in before]
    return {"pgid": pgid, "killed": before, "gpu_killed": gpu_before, "left": left, "gpu_left": gpu_left}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("status", "kill"):
        print(json.dumps({"error": "usage: agent status|kill RUN_DIR"}))
        return 2
    run_dir = Path(argv[1]).expanduser()
    result = status(run_dir) if argv[0] == "status" else kill(run_dir)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
