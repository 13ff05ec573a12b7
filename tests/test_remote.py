"""vgkit remote against a real OpenSSH server on 127.0.0.1; the "remote" is a tmp dir here.

The remote side reuses this checkout's venv python (``--python``) instead of running setup.sh,
and gets the test HF cache via ``--env``; everything else is the real ssh/rsync/setsid/timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from tests.sshd import LoopbackSshd, processes_in_group, sshd_unavailable
from vgkit.errors import SpecError
from vgkit.remote.fetch import fetch_bundle, remote_sha256
from vgkit.remote.jobs import follow, job_script, job_status, kill_job, prefetch, push, start_run
from vgkit.remote.ssh import RemoteConnectionError, SshTarget, run_ssh, target_from

pytestmark = pytest.mark.skipif(sshd_unavailable() is not None, reason=str(sshd_unavailable()))

PYTHON = sys.executable


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def remote_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("remote-host")


@pytest.fixture(scope="module")
def target(sshd: LoopbackSshd, remote_dir: Path) -> SshTarget:
    target = sshd.target(remote_dir, python=PYTHON)
    push(target)
    return target


@pytest.fixture(scope="module")
def job_env(hub_cache: Path) -> dict[str, str]:
    return {"HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1", "VGKIT_FORCE_CPU": "1"}


def _long_spec(tmp_path: Path) -> Path:
    """A spec that takes far longer than the tests wait: it is always killed or timed out."""
    data = spec_dict(overrides={"width": 64, "height": 64, "steps": 60})
    data["shots"] = data["shots"] * 4
    return write_spec(tmp_path / "long.yaml", data)


def _wait_for(predicate: Any, *, limit_s: float = 120.0) -> None:
    give_up_at = time.monotonic() + limit_s
    while not predicate():
        assert time.monotonic() < give_up_at, "condition not reached"
        time.sleep(0.3)


def _cli(sshd: LoopbackSshd, remote_dir: Path, *args: str) -> list[str]:
    command, rest = args[0], args[1:]
    return [PYTHON, "-m", "vgkit", "remote", command, *sshd.cli_args(remote_dir, python=PYTHON), *rest]


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_push_puts_the_commit_and_params_on_the_host(target: SshTarget, remote_dir: Path) -> None:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    code = remote_dir / "code"
    assert (code / ".vgkit-commit").read_text().strip() == head.strip()
    assert (code / "setup.sh").is_file() and (code / "params" / "images" / "lighthouse.png").is_file()
    (code / "stale.txt").write_text("from an older push")
    push(target)
    assert not (code / "stale.txt").exists()


@pytest.mark.slow
def test_push_prefetch_run_fetch_gives_a_verified_bundle(
    sshd: LoopbackSshd, target: SshTarget, job_env: dict[str, str], tmp_path: Path, remote_dir: Path
) -> None:
    assert prefetch(target, "wan22-tiny", env=job_env) == 0
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(name="ok"))
    name = start_run(target, spec, model="wan22-tiny", env=job_env)
    lines: list[str] = []
    assert follow(target, name, poll_s=0.5, say=lines.append) == 0, (lines, job_status(target, name)["log_tail"])
    assert "clips 3/3 done" in lines[-1]
    # the job ran from the uploaded copy: its images were rewritten to inputs/ in the run dir
    assert (remote_dir / "code" / "runs" / name / ".remote" / "inputs" / "00_lighthouse.png").is_file()
    logs = subprocess.run(_cli(sshd, remote_dir, "logs", "--name", name), env=_cli_env(), capture_output=True)
    assert name == "ok-wan22-tiny" and logs.returncode == 0
    assert f"{name}: ended with exit 0; clips 3/3 done; bundle {name}.tar.gz" in logs.stdout.decode()
    assert f"bundle: runs/{name}.tar.gz" in logs.stdout.decode()

    result = fetch_bundle(target, name, tmp_path / "local")
    assert result.attempts == 1 and result.artifacts_verified >= 10
    assert result.sha256 == remote_sha256(target, f"{target.code_dir}/runs/{name}.tar.gz")
    assert (result.run_dir / "final" / "final_stitched.mp4").is_file()

    # a corrupted local copy (same size, so rsync's quick check would skip it) is re-fetched
    data = bytearray(result.bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    result.bundle.write_bytes(bytes(data))
    again = fetch_bundle(target, name, tmp_path / "local")
    assert again.attempts == 2 and again.sha256 == result.sha256

    # a broken transfer (half the file) resumes in the first attempt
    result.bundle.write_bytes(bytes(data[: len(data) // 2]))
    assert fetch_bundle(target, name, tmp_path / "local").attempts == 1


def test_killed_client_leaves_the_job_and_kill_ends_its_whole_group(
    sshd: LoopbackSshd, target: SshTarget, remote_dir: Path, job_env: dict[str, str], tmp_path: Path
) -> None:
    env_args = [arg for name, value in job_env.items() for arg in ("--env", f"{name}={value}")]
    spec = _long_spec(tmp_path)
    argv = _cli(sshd, remote_dir, "run", str(spec), "--name", "orphan", "--follow", "--poll-s", "0.5", *env_args)
    client = subprocess.Popen(argv, env=_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_for(lambda: job_status(target, "orphan")["pgid"] is not None)
    pgid = job_status(target, "orphan")["pgid"]
    _wait_for(lambda: len(processes_in_group(pgid)) >= 2)  # timeout + python at least
    client.kill()  # SIGKILL: the client cannot clean up; the job must live on
    client.wait()
    time.sleep(1.0)
    assert job_status(target, "orphan")["running"] and processes_in_group(pgid)

    done = subprocess.run(_cli(sshd, remote_dir, "kill", "--name", "orphan"), env=_cli_env(), capture_output=True)
    assert done.returncode == 0, done.stderr
    assert processes_in_group(pgid) == []
    status = job_status(target, "orphan")
    assert status["pids"] == [] and status["exit_code"] is not None


def test_ctrl_c_on_follow_kills_the_remote_job(
    sshd: LoopbackSshd, target: SshTarget, remote_dir: Path, job_env: dict[str, str], tmp_path: Path
) -> None:
    env_args = [arg for name, value in job_env.items() for arg in ("--env", f"{name}={value}")]
    argv = _cli(sshd, remote_dir, "run", str(_long_spec(tmp_path)), "--name", "ctrlc", "--follow", *env_args)
    client = subprocess.Popen(argv, env=_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_for(lambda: job_status(target, "ctrlc")["pgid"] is not None)
    pgid = job_status(target, "ctrlc")["pgid"]
    _wait_for(lambda: len(processes_in_group(pgid)) >= 2)
    client.send_signal(signal.SIGINT)
    out, _ = client.communicate(timeout=60)
    assert client.returncode == 130, out
    assert b"none left" in out
    assert processes_in_group(pgid) == [] and not job_status(target, "ctrlc")["running"]


def test_connection_lost_past_the_limit_kills_the_job(
    sshd: LoopbackSshd, target: SshTarget, job_env: dict[str, str], tmp_path: Path
) -> None:
    name = start_run(target, _long_spec(tmp_path), name="dropped", env=job_env)
    pgid = job_status(target, name)["pgid"]
    lines: list[str] = []
    codes: list[int] = []
    watcher = threading.Thread(
        target=lambda: codes.append(follow(target, name, poll_s=0.3, max_disconnect_s=1.5, say=lines.append))
    )
    watcher.start()
    _wait_for(lambda: bool(lines))
    sshd.stop()
    try:
        time.sleep(4.0)  # past max_disconnect_s: follow gives up watching and retries the kill
        assert processes_in_group(pgid), "the job must not die from the lost connection itself"
    finally:
        sshd.start()
    watcher.join(timeout=90)
    assert codes == [RemoteConnectionError.exit_code], lines
    assert any("connection lost" in line for line in lines)
    assert processes_in_group(pgid) == []


def test_remote_timeout_ends_a_run_by_itself(target: SshTarget, job_env: dict[str, str], tmp_path: Path) -> None:
    name = start_run(target, _long_spec(tmp_path), name="late", deadline_s=3, grace_s=1, env=job_env)
    pgid = job_status(target, name)["pgid"]
    _wait_for(lambda: job_status(target, name)["exit_code"] is not None, limit_s=60)
    status = job_status(target, name)
    assert status["exit_code"] == 124 and status["pids"] == []
    assert processes_in_group(pgid) == []


def test_kill_of_a_finished_job_finds_nothing_and_start_refuses_a_live_one(
    target: SshTarget, job_env: dict[str, str], tmp_path: Path
) -> None:
    spec = _long_spec(tmp_path)
    name = start_run(target, spec, name="twice", env=job_env)
    with pytest.raises(SpecError, match="already running"):
        start_run(target, spec, name="twice", env=job_env)
    assert kill_job(target, name)["killed"]
    assert kill_job(target, name)["killed"] == []


def test_secrets_are_refused_and_the_job_script_has_the_timeout(target: SshTarget) -> None:
    with pytest.raises(SpecError, match="HF_TOKEN"):
        job_script(target, "x", model="m", job_id="x-1", timeout_s=10, env={"HF_TOKEN": "hf_abc"})
    script = job_script(target, "x", model="m", job_id="x-1", timeout_s=310, env={"HF_HUB_OFFLINE": "1"})
    assert "timeout --kill-after=30 310 " in script and "export HF_HUB_OFFLINE=1" in script
    done = subprocess.run(["sh", "-n"], input=script.encode(), capture_output=True)
    assert done.returncode == 0, done.stderr


def test_unreachable_host_is_a_connection_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VGKIT_REMOTE_HOST", "nobody@127.0.0.1")
    monkeypatch.setenv("VGKIT_REMOTE_PORT", "1")
    target = target_from(None, ssh_options=("StrictHostKeyChecking=no",))
    assert (target.host, target.port) == ("nobody@127.0.0.1", 1)
    with pytest.raises(RemoteConnectionError, match=r"127\.0\.0\.1:1"):
        run_ssh(target, "true", retry_s=0.5)
    monkeypatch.delenv("VGKIT_REMOTE_HOST")
    with pytest.raises(SpecError, match="VGKIT_REMOTE_HOST"):
        target_from(None)
