"""One job per device: a second real process on the same lock refuses at once naming the
holder, or waits with --wait-for-gpu; the lock frees when its holder is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from vgkit.errors import GuardrailError
from vgkit.lock import DeviceBusyError, acquire_device_lock, device_lock_name

HOLD = (
    "import sys; from pathlib import Path; from vgkit.lock import acquire_device_lock\n"
    "lock = acquire_device_lock(sys.argv[1], run_dir=Path('holder-run'), progress=print)\n"
    "print('held', flush=True); sys.stdin.read()\n"
)


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "locks"
    monkeypatch.setenv("VGKIT_LOCK_DIR", str(path))
    return path


@pytest.fixture
def holder(lock_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A separate process holding the ``cpu`` device lock until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, "cpu"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _vgkit_run(spec: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vgkit", "run", str(spec), "--out", str(out), "--lock", *extra],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_device_lock_names() -> None:
    assert device_lock_name("cpu") == "cpu"
    assert device_lock_name("cuda").startswith("cuda-")


def test_second_run_on_the_same_device_refuses_naming_the_holder(holder: subprocess.Popen[str], tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", spec_dict())
    second = _vgkit_run(spec, tmp_path / "run")
    _out, err = second.communicate(timeout=120)
    assert second.returncode == GuardrailError.exit_code, err
    assert f"device cpu: already running a job: pid {holder.pid} on" in err
    assert "holder-run" in err and "--wait-for-gpu" in err
    assert not (tmp_path / "run").exists()


def test_wait_for_gpu_queues_behind_the_holder(holder: subprocess.Popen[str], tmp_path: Path) -> None:
    data = spec_dict()
    data["shots"] = data["shots"][:1]
    spec = write_spec(tmp_path / "spec.yaml", data)
    second = _vgkit_run(spec, tmp_path / "run", "--wait-for-gpu")
    assert second.stdout is not None
    assert second.stdout.readline().startswith(f"device cpu: busy with pid {holder.pid}")
    assert holder.stdin is not None
    holder.stdin.close()  # the holder finishes; the waiting run takes the device
    _out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert (tmp_path / "run" / "final" / "final_stitched.mp4").is_file()


def test_lock_frees_when_its_holder_is_killed(holder: subprocess.Popen[str], lock_dir: Path) -> None:
    with pytest.raises(DeviceBusyError, match=f"pid {holder.pid}"):
        acquire_device_lock("cpu", run_dir=Path("mine"))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with acquire_device_lock("cpu", run_dir=Path("mine")):
        assert "mine" in (lock_dir / "cpu.lock").read_text()
