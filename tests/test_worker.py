"""One watchdog on every path: ``vgkit run``, the generate notebook under papermill (``vgkit
demo``) and ``vgkit sweep`` run each job in the same supervised worker, with the same exit codes.

The hung pipeline call is the one stand-in (``tests.stand_ins.hanging_generator``, selected with
``VGKIT_GENERATOR_FACTORY``): a hung CUDA call cannot be staged on this CPU-only machine. The
worker process, its process group, the watchdog, papermill, the kernel and the kill are real.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from tests.stand_ins import children, gone
from vgkit.cli import main
from vgkit.errors import GuardrailError, SpecError, WorkerKilledError
from vgkit.records.events import read_events

GRACE_S = "0.5"


def _hang_spec(tmp_path: Path, *, clip_timeout_s: float = 1.0) -> Path:
    data = spec_dict(clip_timeout_s=clip_timeout_s, run_timeout_s=600.0)
    data["shots"] = data["shots"][:1]
    return write_spec(tmp_path / "spec.yaml", data)


@pytest.fixture
def hanging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Worker children (and papermill kernels) run the hanging stand-in; returns its pid record."""
    pid_file = tmp_path / "pids.json"
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("VGKIT_GENERATOR_FACTORY", "tests.stand_ins:hanging_generator")
    monkeypatch.setenv("STAND_IN_PID_FILE", str(pid_file))
    return pid_file


def _assert_nothing_left(pid_file: Path) -> None:
    pids = json.loads(pid_file.read_text())
    assert gone(pids["worker"], group=True), "a process of the worker's group survived"
    assert gone(pids["grandchild"], group=False), "the worker's grandchild survived"


@pytest.mark.slow
def test_hung_call_under_papermill_is_killed_and_the_kernel_reports_it(tmp_path: Path, hanging: Path) -> None:
    spec, run_dir, executed = _hang_spec(tmp_path), tmp_path / "run", tmp_path / "executed.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "vgkit", "demo", "--spec", str(spec), "--model", "wan22-tiny", "--out", str(run_dir),
         "--executed", str(executed), "--watchdog-grace-s", GRACE_S],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == GuardrailError.exit_code, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("vgkit: error: watchdog: clip 000 (denoise) passed the clip deadline of 1 s + 0.5 s grace")
    _assert_nothing_left(hanging)
    # The cell raised the watchdog's error: the kernel was alive to run it (no DeadKernelError).
    errors = [o for c in json.loads(executed.read_text())["cells"] for o in c.get("outputs", [])
              if o["output_type"] == "error"]  # fmt: skip
    assert [e["ename"] for e in errors] == ["GuardrailError"]
    log = json.loads((run_dir / "logs" / "log_000.json").read_text())
    assert (log["status"], log["failure"]["kind"], log["killed_by"]) == ("aborted", "timeout", "watchdog")


def test_hung_call_under_sweep_is_killed_and_recorded(tmp_path: Path, hanging: Path) -> None:
    spec = _hang_spec(tmp_path)
    assert main(["sweep", str(spec), "--models", "wan22-tiny", "--out", str(tmp_path / "sw"),
                 "--watchdog-grace-s", GRACE_S]) == 0  # fmt: skip
    _assert_nothing_left(hanging)
    run_dir = tmp_path / "sw" / "t-wan22-tiny"
    failure = json.loads((run_dir / "failure.json").read_text())
    assert (failure["error_class"], failure["exit_code"], failure["stage"]) == ("GuardrailError", 6, "generate")
    assert (failure["kind"], failure["phase"], failure["clip_index"]) == ("timeout", "denoise", 0)
    # the clip log, failure.json and the run's last event name the same failure
    log = json.loads((run_dir / "logs" / "log_000.json").read_text())
    assert {k: log["failure"][k] for k in ("kind", "phase", "clip_index", "exit_code")} == {
        k: failure[k] for k in ("kind", "phase", "clip_index", "exit_code")
    }
    failed = [e for e in read_events(run_dir) if e.stage == "failed"]
    assert [(e.figures["kind"], e.figures["phase"], e.clip_index) for e in failed] == [("timeout", "denoise", 0)]
    assert failure["message"].startswith("watchdog: clip 000 (denoise) passed the clip deadline of 1 s + 0.5 s grace")
    assert json.loads((run_dir / "logs" / "log_000.json").read_text())["killed_by"] == "watchdog"
    assert "| wan22-tiny | failed |" in (tmp_path / "sw" / "report" / "report.md").read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_worker_killed_by_a_signal_is_named_with_its_own_exit_code(tmp_path: Path, hanging: Path) -> None:
    """A real SIGKILL of the worker, as the kernel's OOM killer sends it (old code: exit 247, silent)."""
    spec = _hang_spec(tmp_path, clip_timeout_s=600.0)
    parent = subprocess.Popen(
        [sys.executable, "-m", "vgkit", "run", str(spec), "--out", str(tmp_path / "run")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    for _ in range(1200):  # the stand-in writes its pids once it is inside the pipeline call
        if hanging.exists() and hanging.read_text():
            break
        time.sleep(0.1)
    worker = json.loads(hanging.read_text())["worker"]
    assert children(parent.pid) == [worker]
    os.kill(worker, signal.SIGKILL)
    _, stderr = parent.communicate(timeout=60)
    assert parent.returncode == WorkerKilledError.exit_code, stderr
    assert stderr.splitlines()[-1] == (
        f"vgkit: error: the worker (pid {worker}) was killed by SIGKILL during clip 000 (denoise): likely the "
        "kernel's OOM killer; check dmesg / lower the preset (or size, frames, steps); finished clips are kept; "
        "re-run the same command to resume"
    )
    log = json.loads((tmp_path / "run" / "logs" / "log_000.json").read_text())  # the clip it was on says so
    assert (log["status"], log["failure"]["kind"], log["killed_by"]) == ("aborted", "out-of-memory", "SIGKILL")
    assert (log["failure"]["error_class"], log["failure"]["exit_code"]) == ("WorkerKilledError", 9)
    _assert_nothing_left(hanging)


@pytest.mark.parametrize("command", ["run", "sweep", "demo"])
def test_negative_watchdog_grace_is_refused_in_one_line(
    command: str, small_spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"run": [str(small_spec)], "sweep": [str(small_spec), "--models", "wan22-tiny"],
            "demo": ["--spec", str(small_spec)]}[command]  # fmt: skip
    assert main([command, *args, "--out", str(tmp_path / "out"), "--watchdog-grace-s", "-1000"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "vgkit: error: --watchdog-grace-s = -1000: must be a number of seconds >= 0; fix: e.g. 60 (the default)\n"
    )
    assert not (tmp_path / "out").exists()


def test_notebook_generate_refuses_a_bad_grace_before_planning(small_spec: Path) -> None:
    from vgkit.lab.notebook import generate

    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(SpecError, match=r"--watchdog-grace-s = "):
            generate(spec=str(small_spec), model="wan22-tiny", out="/nonexistent/x", watchdog_grace_s=bad)
