"""vgkit remote against a real OpenSSH server on 127.0.0.1; the "host" is a directory here.

Everything is real: ssh/rsync/setsid/timeout, and ``vgkit remote setup`` runs the pushed
setup.sh on the host, which makes ``<code>/.venv`` with the pins of requirements.txt (pip finds
them where this machine's pip config points); every job then runs with that ``.venv/bin/python``.
Jobs get the session's test HF cache through ``--env``.

Pre-seeded, to keep the suite fast: the host's base directory is kept between sessions in
pytest's cache (``.pytest_cache/d/remote-host``). Nothing is copied or linked into it: its
``.venv`` is the one a real setup.sh made there over SSH in an earlier session, and setup.sh's own
stamp (sha256 of requirements.txt + pyproject.toml) decides whether it still fits the pushed
code; if not, setup.sh installs again. The first session on a checkout, or one after
``pytest --cache-clear``, runs the full install (measured on 2 cores beside the rest of the
suite: 44-71 s with ``pip --no-compile`` and the bytecode step, 87 s before); an up-to-date host
takes about 1 s. Runs of earlier sessions are deleted
first, so nothing is resumed. Two sessions of one checkout at once would share it.

``push`` sends the committed HEAD (``git archive``): a change to setup.sh or the pins is tested on
the host only once it is committed.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from tests.sshd import LoopbackSshd, processes_in_group, sshd_unavailable
from vgkit.errors import GuardrailError, SpecError
from vgkit.remote.fetch import fetch_bundle, remote_sha256
from vgkit.remote.host import push
from vgkit.remote.jobs import follow, job_script, job_status, kill_job, plan_remote_job, prefetch, start_run
from vgkit.remote.ssh import DEFAULT_REMOTE_PYTHON, RemoteConnectionError, SshTarget, run_ssh, target_from

pytestmark = pytest.mark.skipif(sshd_unavailable() is not None, reason=str(sshd_unavailable()))

PYTHON = sys.executable  # runs the local `vgkit` CLI; the host's jobs use its own .venv/bin/python
SETUP_LIMIT_S = 900


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def remote_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host's base directory, kept in pytest's cache between sessions (module docstring)."""
    cache = getattr(request.config, "cache", None)
    base = cache.mkdir("remote-host") if cache is not None else tmp_path_factory.mktemp("remote-host")
    shutil.rmtree(base / "code" / "runs", ignore_errors=True)
    return Path(base)


@dataclass(frozen=True)
class SetupRun:
    output: str
    seconds: float


@pytest.fixture(scope="module")
def first_setup(sshd: LoopbackSshd, remote_dir: Path) -> SetupRun:
    """``push``, then a real ``vgkit remote setup``: the pushed setup.sh runs on the host."""
    push(sshd.target(remote_dir))
    started = time.monotonic()
    done = subprocess.run(
        _cli(sshd, remote_dir, "setup"), env=_cli_env(), capture_output=True, text=True, timeout=SETUP_LIMIT_S
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"remote setup took {seconds:.1f} s:\n{done.stdout}")
    return SetupRun(done.stdout, seconds)


@pytest.fixture(scope="module")
def target(sshd: LoopbackSshd, remote_dir: Path, first_setup: SetupRun) -> SshTarget:
    """The pushed and set-up host; jobs run with its ``.venv/bin/python``."""
    return sshd.target(remote_dir)


@pytest.fixture(scope="module")
def job_env(hub_cache: Path) -> dict[str, str]:
    """The host's jobs run in sshd's sessions, outside this worker's environment: one torch thread each,
    as every other process of the suite (tests/conftest.py)."""
    env = {"HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1", "VGKIT_FORCE_CPU": "1"}
    return env | ({"OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]} if "OMP_NUM_THREADS" in os.environ else {})


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


def _cli(sshd: LoopbackSshd, remote_dir: Path, *args: str, python: str = DEFAULT_REMOTE_PYTHON) -> list[str]:
    command, rest = args[0], args[1:]
    return [PYTHON, "-m", "vgkit", "remote", command, *sshd.cli_args(remote_dir, python=python), *rest]


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


def _one_line_error(done: subprocess.CompletedProcess[str], exit_code: int, *needles: str) -> str:
    """The CLI failed with ``exit_code`` and ended on one ``vgkit: error:`` line holding ``needles``."""
    assert done.returncode == exit_code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("vgkit: error: "), done.stderr
    for needle in needles:
        assert needle in last
    return last


def test_setup_made_the_host_venv_and_a_second_setup_installs_nothing(
    sshd: LoopbackSshd, target: SshTarget, remote_dir: Path, first_setup: SetupRun
) -> None:
    cold = "setup: installing exact pins from requirements.txt" in first_setup.output
    assert cold or "pins unchanged, nothing installed" in first_setup.output, first_setup.output
    if cold:  # the kernel went into the host's .venv (--sys-prefix), nothing into any home
        assert (remote_dir / "code/.venv/share/jupyter/kernels/vgkit/kernel.json").is_file()
        assert not (sshd.home / ".local/share/jupyter/kernels/vgkit").exists()
    # every pin of requirements.txt is installed in the host's .venv, and vgkit is the pushed code
    probe = (
        "import json, re, vgkit\nfrom importlib.metadata import version\n"
        "pins = re.findall(r'^([A-Za-z0-9_.-]+)==(\\S+)', open('requirements.txt').read(), re.M)\n"
        "print(json.dumps({'vgkit': vgkit.__file__, 'pins': {n: [v, version(n)] for n, v in pins}}))\n"
    )
    done = run_ssh(target, target.in_code(".venv/bin/python -"), stdin=probe.encode())
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["vgkit"] == str(remote_dir / "code" / "vgkit" / "__init__.py")
    assert len(found["pins"]) >= 20
    assert {name: pin for name, (pin, got) in found["pins"].items() if got.split("+")[0] != pin} == {}
    # from this machine's package sources (tests/sshd.py host_pip_env), e.g. its local CPU torch wheel
    assert found["pins"]["torch"][1] == importlib.metadata.version("torch")

    venv = remote_dir / "code" / ".venv"
    site = next((venv / "lib").glob("python3*/site-packages"))
    before = [path.stat().st_mtime_ns for path in (venv / ".vgkit-setup-stamp", site)]
    again = subprocess.run(_cli(sshd, remote_dir, "setup"), env=_cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("setup: environment up to date (.venv, Python 3.")
    assert "pins unchanged, nothing installed" in again.stdout and "installing" not in again.stdout
    assert [path.stat().st_mtime_ns for path in (venv / ".vgkit-setup-stamp", site)] == before


def test_a_host_that_is_not_ready_gets_a_one_line_error_naming_the_fix(sshd: LoopbackSshd, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh-host"

    def cli(*args: str, python: str = DEFAULT_REMOTE_PYTHON) -> subprocess.CompletedProcess[str]:
        argv = _cli(sshd, fresh, *args, python=python)
        return subprocess.run(argv, env=_cli_env(), capture_output=True, text=True, timeout=120)

    _one_line_error(cli("setup"), 8, "no pushed code", "fix: `vgkit remote push`, then `vgkit remote setup`")
    push(sshd.target(fresh))
    spec = str(write_spec(tmp_path / "spec.yaml", spec_dict(name="early")))
    early = cli("run", spec, "--model", "wan22-tiny")
    _one_line_error(early, 8, f"{fresh}/code/.venv/bin/python is not set up", "fix: run `vgkit remote setup`")
    assert early.stderr.count("\n") == 1 and early.stdout == ""
    _one_line_error(cli("prefetch", "--model", "wan22-tiny"), 8, "fix: run `vgkit remote setup`")
    _one_line_error(cli("status", "--name", "early-wan22-tiny"), 8, "fix: run `vgkit remote setup`")
    assert not (fresh / "code" / "runs").exists()  # nothing was started or uploaded
    _one_line_error(cli("run", spec, python="/nonexistent/python"), 8, "--python = '/nonexistent/python': not found")

    # setup.sh itself fails on the host: its own lines, then one line with its exit code
    (fresh / "code" / "setup.sh").write_text('echo "setup: error: disk full (test stand-in)" >&2\nexit 3\n')
    failed = cli("setup")
    _one_line_error(failed, 8, f"setup.sh in {fresh}/code exited 3", "re-run `vgkit remote setup`")
    assert failed.stderr.splitlines()[0] == "setup: error: disk full (test stand-in)"


def test_a_bad_spec_fails_here_like_vgkit_run_before_any_ssh(tmp_path: Path) -> None:
    bad = str(write_spec(tmp_path / "bad.yaml", spec_dict(seed=-1)))
    local = subprocess.run([PYTHON, "-m", "vgkit", "run", bad], env=_cli_env(), capture_output=True, text=True)
    unreachable = ["--host", "nobody@127.0.0.1", "--port", "1"]  # ssh would fail with exit 7
    remote = subprocess.run(
        [PYTHON, "-m", "vgkit", "remote", "run", bad, *unreachable], env=_cli_env(), capture_output=True, text=True
    )
    assert remote.returncode == local.returncode == SpecError.exit_code
    assert remote.stderr == local.stderr and remote.stderr.count("\n") == 1 and "seed" in remote.stderr


@pytest.mark.slow
def test_push_setup_prefetch_run_fetch_gives_a_verified_bundle(
    sshd: LoopbackSshd, target: SshTarget, job_env: dict[str, str], tmp_path: Path, remote_dir: Path
) -> None:
    """The issue's done-when; push and a real setup are the ``target`` fixture's (``first_setup``)."""
    assert prefetch(target, "wan22-tiny", env=job_env) == 0
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(name="ok"))
    job = start_run(target, spec, model="wan22-tiny", env=job_env)
    name = job.name
    # the spec's deadline (3 clips x clip_timeout_s 600, as `vgkit run`) + grace, run by the host's .venv
    assert (job.deadline_s, job.timeout_s) == (1800, 2100)
    script = (remote_dir / "code" / "runs" / name / ".remote" / "job.sh").read_text()
    assert "timeout --kill-after=30 2100 .venv/bin/python -m vgkit run " in script
    assert script.rstrip().count("--run-timeout-s 1800") == 1
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
    # the clips were made by the host's .venv: the manifest records that interpreter's version
    host_python = run_ssh(
        target, target.in_code(".venv/bin/python -c 'import platform; print(platform.python_version())'")
    )
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["environment"]["python"] == host_python.stdout.decode().strip()
    # the pushed code has no .git: its logs name the commit push recorded
    pushed = (remote_dir / "code" / ".vgkit-commit").read_text().strip()
    log = json.loads((result.run_dir / "logs" / "log_000.json").read_text())
    assert log["code_commit"] == f"{pushed} (pushed)"

    # the local run folder is never replaced: a second fetch refuses naming --force, which fetches beside it
    (result.run_dir / "notes.md").write_text("mine")
    with pytest.raises(SpecError, match=r"already exists, and a fetch never replaces a local folder.*--force"):
        fetch_bundle(target, name, tmp_path / "local")
    beside = fetch_bundle(target, name, tmp_path / "local", force=True)
    assert beside.run_dir.name.startswith(f"{name}.fetched-") and beside.sha256 == result.sha256
    assert (result.run_dir / "notes.md").read_text() == "mine"
    shutil.rmtree(result.run_dir)  # the user moves the folder away: the bundle's repair is tested next

    # a corrupted local copy (same size, so rsync's quick check would skip it) is re-fetched
    data = bytearray(result.bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    result.bundle.write_bytes(bytes(data))
    again = fetch_bundle(target, name, tmp_path / "local")
    assert again.attempts == 2 and again.sha256 == result.sha256

    # a broken transfer (half the file) resumes in the first attempt
    shutil.rmtree(again.run_dir)
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
    name = start_run(target, _long_spec(tmp_path), name="dropped", env=job_env).name
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


def test_remote_timeout_ends_a_run_by_itself(
    target: SshTarget, remote_dir: Path, job_env: dict[str, str], tmp_path: Path
) -> None:
    name = start_run(target, _long_spec(tmp_path), name="late", deadline_s=3, grace_s=1, env=job_env).name
    script = (remote_dir / "code" / "runs" / name / ".remote" / "job.sh").read_text()
    assert "timeout --kill-after=30 4 " in script and "--run-timeout-s 3" in script  # --deadline-s wins
    pgid = job_status(target, name)["pgid"]
    _wait_for(lambda: job_status(target, name)["exit_code"] is not None, limit_s=60)
    status = job_status(target, name)
    assert status["exit_code"] == 124 and status["pids"] == []
    assert processes_in_group(pgid) == []


def test_a_deadline_ends_remote_run_follow_with_the_exit_code_of_vgkit_run(
    sshd: LoopbackSshd, target: SshTarget, remote_dir: Path, job_env: dict[str, str], tmp_path: Path
) -> None:
    """The run deadline passes on the host (vgkit's own check or the remote timeout, whichever
    ends the job): `vgkit remote run --follow` exits 6, as `vgkit run` and `vgkit demo` do."""
    env_args = [arg for name, value in job_env.items() for arg in ("--env", f"{name}={value}")]
    argv = _cli(sshd, remote_dir, "run", str(_long_spec(tmp_path)), "--name", "deadline", "--deadline-s", "3",
                "--grace-s", "1", "--follow", "--poll-s", "0.5", *env_args)  # fmt: skip
    done = subprocess.run(argv, env=_cli_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == GuardrailError.exit_code == 6, done.stdout + done.stderr
    assert job_status(target, "deadline")["exit_code"] in (6, 124)


def test_kill_of_a_finished_job_finds_nothing_and_start_refuses_a_live_one(
    target: SshTarget, job_env: dict[str, str], tmp_path: Path
) -> None:
    spec = _long_spec(tmp_path)
    name = start_run(target, spec, name="twice", env=job_env).name
    with pytest.raises(SpecError, match="already running"):
        start_run(target, spec, name="twice", env=job_env)
    assert kill_job(target, name)["killed"]
    assert kill_job(target, name)["killed"] == []


def test_job_timeout_is_the_specs_deadline_plus_grace_and_the_override_wins(tmp_path: Path) -> None:
    target = SshTarget(host="user@host.invalid")  # nothing here connects
    by_clips = plan_remote_job(write_spec(tmp_path / "a.yaml", spec_dict(clip_timeout_s=50)), grace_s=10)
    assert (by_clips.deadline_s, by_clips.timeout_s) == (150, 160)
    assert by_clips.deadline_from == "3 clips x clip_timeout_s 50" and by_clips.name == "t-wan22-tiny"
    script = job_script(target, by_clips, job_id="x-1", env={"HF_HUB_OFFLINE": "1"})
    assert "timeout --kill-after=30 160 .venv/bin/python -m vgkit run " in script
    assert "--run-timeout-s 150 >" in script and "export HF_HUB_OFFLINE=1" in script
    done = subprocess.run(["sh", "-n"], input=script.encode(), capture_output=True)
    assert done.returncode == 0, done.stderr

    by_run = plan_remote_job(write_spec(tmp_path / "b.yaml", spec_dict(run_timeout_s=1000.5)))
    assert (by_run.deadline_s, by_run.timeout_s, by_run.deadline_from) == (1000.5, 1300.5, "the spec's run_timeout_s")
    assert "timeout --kill-after=30 1300.5 " in job_script(target, by_run, job_id="x-2", env={})
    override = plan_remote_job(tmp_path / "b.yaml", deadline_s=77, grace_s=10)
    assert (override.deadline_s, override.timeout_s, override.deadline_from) == (77, 87, "--deadline-s")
    assert "--run-timeout-s 77 >" in job_script(target, override, job_id="x-3", env={})

    with pytest.raises(SpecError, match=r"--deadline-s = 0: not a positive number of seconds"):
        plan_remote_job(tmp_path / "a.yaml", deadline_s=0)
    with pytest.raises(SpecError, match="HF_TOKEN"):
        job_script(target, by_clips, job_id="x-1", env={"HF_TOKEN": "hf_abc"})


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


def test_a_failed_remote_command_is_a_remote_command_error_not_a_generation_error() -> None:
    from vgkit.errors import GenerationError, RemoteCommandError
    from vgkit.records.failures import classify
    from vgkit.remote.ssh import checked

    done = subprocess.run(
        ["sh", "-c", "echo 'rsync: connection unexpectedly closed' >&2; exit 12"], capture_output=True
    )
    with pytest.raises(
        RemoteCommandError, match=r"remote push failed with exit 12: rsync: connection unexpectedly"
    ) as e:
        checked(done, "push")
    assert not isinstance(e.value, GenerationError)
    assert classify(e.value).exit_code == RemoteCommandError.exit_code == 10
