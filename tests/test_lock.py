"""One job per device: a second real process on the same lock refuses at once naming the
holder, or waits with --wait-for-gpu; the lock frees when its holder is SIGKILLed. The lock folder
and file are this user's own: links, others' files and shared folders are refused untouched."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from vgkit.errors import GuardrailError, SpecError
from vgkit.supervise.lock import DeviceBusyError, UnsafeLockError, acquire_device_lock, device_lock_name

HOLD = (
    "import sys; from pathlib import Path; from vgkit.supervise.lock import acquire_device_lock\n"
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


def _unsafe(directory: Path) -> str:
    with pytest.raises(UnsafeLockError) as err:
        acquire_device_lock("cpu", run_dir=Path("mine"), directory=directory)
    message = str(err.value)
    assert "\n" not in message and "fix:" in message
    assert isinstance(err.value, SpecError) and err.value.exit_code == 2
    return message


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    return victim


def test_new_lock_folder_and_file_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "fresh" / "locks"
    with acquire_device_lock("cpu", run_dir=Path("mine"), directory=directory):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE((directory / "cpu.lock").stat().st_mode) == 0o600
    with acquire_device_lock("cpu", run_dir=Path("again"), directory=directory):  # our own file: reused
        assert "again" in (directory / "cpu.lock").read_text()


def test_a_symlinked_lock_file_is_never_followed(tmp_path: Path) -> None:
    """Before: the lock file was opened through the link and truncated: any file could be overwritten."""
    directory = tmp_path / "locks"
    directory.mkdir(mode=0o700)
    victim = _victim(tmp_path)
    (directory / "cpu.lock").symlink_to(victim)
    assert "cpu.lock' is a symbolic link; fix: remove it" in _unsafe(directory)
    assert victim.read_text() == "precious\n"


def test_a_hard_linked_lock_file_is_not_truncated(tmp_path: Path) -> None:
    """Before: truncated and overwritten through the second name."""
    directory = tmp_path / "locks"
    directory.mkdir(mode=0o700)
    victim = _victim(tmp_path)
    os.link(victim, directory / "cpu.lock")
    assert "has 2 hard links" in _unsafe(directory)
    assert victim.read_text() == "precious\n"


def test_a_symlinked_lock_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "locks").symlink_to(elsewhere)
    assert "lock folder" in _unsafe(tmp_path / "locks") and "is a symbolic link" in _unsafe(tmp_path / "locks")
    assert list(elsewhere.iterdir()) == []


def test_a_lock_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "locks"
    directory.mkdir()
    directory.chmod(0o777)
    assert "is writable by other users (mode 777)" in _unsafe(directory)
    assert list(directory.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder another user's needs root")
def test_a_lock_folder_planted_by_another_user_is_refused_even_for_root(tmp_path: Path) -> None:
    """The attack: another user creates the predictable /tmp folder first, with a link to a victim.
    Before: a root run followed the link and overwrote the victim."""
    directory = tmp_path / "locks"
    directory.mkdir(mode=0o700)
    victim = _victim(tmp_path)
    (directory / "cpu.lock").symlink_to(victim)
    os.chown(directory, 65534, 65534)
    assert "belongs to uid 65534, not to this user (uid 0)" in _unsafe(directory)
    assert victim.read_text() == "precious\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's needs root")
def test_a_lock_file_of_another_user_is_not_truncated(tmp_path: Path) -> None:
    directory = tmp_path / "locks"
    directory.mkdir(mode=0o700)
    (directory / "cpu.lock").write_text("theirs\n")
    os.chown(directory / "cpu.lock", 65534, 65534)
    assert "belongs to uid 65534" in _unsafe(directory)
    assert (directory / "cpu.lock").read_text() == "theirs\n"


def test_a_mig_device_id_stays_one_file_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-GPU-1234/1/0")
    assert device_lock_name("cuda") == "cuda-MIG-GPU-1234_1_0"
