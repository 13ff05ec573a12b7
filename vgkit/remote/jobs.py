"""Prefetch, start a detached run, watch it, and kill it, on a host that host.py set up.

``prefetch`` and ``run`` use the ``.venv/bin/python`` that setup.sh made there (or ``--python``)
and refuse, naming ``vgkit remote setup``, while it is missing or was made for other pins. A spec
is validated and planned here before anything goes to the host, and its run deadline
(``run_timeout_s``, else clips x ``clip_timeout_s``: ``Deadlines.for_spec``, as ``vgkit run``
computes it) is the default; ``--deadline-s`` overrides it.

A run is started with ``setsid -f`` so it owns its session and survives the SSH connection; its
command is wrapped in a remote-side ``timeout`` (run deadline + grace), so even a job nobody
watches ends. The job's control files sit in ``<run dir>/.remote/`` (not bundled): ``job.sh``,
``spec.yaml`` + ``inputs/``, ``job_id``, ``leader.pid``, ``pgid``, ``job.log``, ``exit_code``.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from vgkit.errors import GuardrailError, RemoteCommandError, SpecError
from vgkit.remote.host import require_ready
from vgkit.remote.ssh import RemoteConnectionError, SshTarget, checked, remote_path, run_ssh, upload
from vgkit.spec.schema import read_spec_data
from vgkit.supervise.guard import REMOTE_GRACE_S

if TYPE_CHECKING:
    from vgkit.spec.schema import RunSpec

__all__ = [
    "RemoteJob",
    "follow",
    "format_status",
    "job_status",
    "kill_job",
    "plan_remote_job",
    "prefetch",
    "read_log",
    "start_run",
]

AGENT_SOURCE = Path(__file__).with_name("agent.py")
CONTROL = ".remote"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY|CREDENTIAL", re.IGNORECASE)
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def _check_env(env: Mapping[str, str]) -> None:
    for name in env:
        if not ENV_NAME.fullmatch(name):
            raise SpecError(f"--env {name!r}: not a variable name; fix: use NAME=VALUE with NAME like HF_HOME")
        if SECRET_NAME.search(name):
            raise SpecError(
                f"--env {name}: looks like a secret and would be written into the job script; "
                "fix: set it on the host itself (e.g. `hf auth login` there)"
            )


def _env_prelude(env: Mapping[str, str]) -> str:
    """Shell lines: setup.sh's HF defaults if present, then the explicit ``env`` (non-secret)."""
    _check_env(env)
    lines = ["[ -f .venv/vgkit.env ] && . .venv/vgkit.env"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())]
    return "\n".join(lines)


def prefetch(target: SshTarget, model: str, *, env: Mapping[str, str] | None = None) -> int:
    """Download ``model``'s weights into the remote HF cache; output streams; returns the exit code."""
    require_ready(target)
    command = f"{_env_prelude(env or {})}\n{shlex.quote(target.python)} -m vgkit prefetch --model {shlex.quote(model)}"
    return run_ssh(target, target.in_code(f"sh -c {shlex.quote(command)}"), capture=False, timeout_s=None).returncode


def _agent(target: SshTarget, command: str, name: str, *, retry_s: float) -> dict[str, Any]:
    agent = f"{shlex.quote(target.python)} - {command} {shlex.quote(f'runs/{name}')}"
    done = run_ssh(target, target.in_code(agent), stdin=AGENT_SOURCE.read_bytes(), retry_s=retry_s)
    if done.returncode == 127:  # the host's shell has no such python: say what to run instead
        require_ready(target)
    return dict(json.loads(checked(done, f"agent {command}")))


def job_status(target: SshTarget, name: str, *, retry_s: float = 30.0) -> dict[str, Any]:
    """The remote job's state (see agent.py ``status``), reconnecting for up to ``retry_s``."""
    return _agent(target, "status", name, retry_s=retry_s)


REMOTE_TIMEOUT_EXIT = 124  # what coreutils' timeout exits with when it ended the command


def format_status(name: str, status: Mapping[str, Any]) -> str:
    clips = status["clips"]
    planned = clips["planned"] if clips["planned"] is not None else "?"
    ok = sum(1 for c in clips["done"] if c["status"] == "ok")
    if status["running"]:
        state = f"running (pgid {status['pgid']}, {len(status['pids'])} processes)"
    elif status["exit_code"] is not None:
        state = f"ended with exit {status['exit_code']}" + (
            " (remote timeout)" if status["exit_code"] == REMOTE_TIMEOUT_EXIT else ""
        )
    else:
        state = "not running" if status["started"] else "not started"
    bundle = f"; bundle {status['bundle']}" if status["bundle"] else ""
    return f"{name}: {state}; clips {ok}/{planned} done{bundle}"


def read_log(target: SshTarget, name: str, *, lines: int = 40, retry_s: float = 30.0) -> str:
    path = remote_path(f"{target.run_dir(name)}/{CONTROL}/job.log")
    return checked(run_ssh(target, f"tail -n {int(lines)} {path}", retry_s=retry_s), "logs")


def kill_job(target: SshTarget, name: str, *, retry_s: float = 60.0) -> dict[str, Any]:
    """Kill every process of the job over a new connection; raise if any is left."""
    result = _agent(target, "kill", name, retry_s=retry_s)
    if result["left"] or result["gpu_left"]:
        raise RemoteCommandError(
            f"remote job {name}: processes {result['left'] + result['gpu_left']} survived SIGKILL; "
            f"fix: inspect with `ssh {target.host} ps -o pid,pgid,cmd -g {result['pgid']}`"
        )
    return result


def _job_inputs(spec_path: Path, spec: RunSpec, staging: Path) -> None:
    """Copy the spec and its images into ``staging`` with image paths rewritten to ``inputs/``."""
    raw = read_spec_data(spec_path)  # within the spec budget, duplicate keys refused
    inputs = staging / "inputs"
    inputs.mkdir(parents=True)

    def stage(index: int, image: Path) -> str:
        dest = inputs / f"{index:02d}_{image.name}"
        dest.write_bytes(image.read_bytes())
        return f"inputs/{dest.name}"

    raw["reference_image"] = stage(0, spec.reference_image)
    for i, shot in enumerate(spec.shots):
        if shot.source_image is not None:
            raw["shots"][i]["source_image"] = stage(i + 1, shot.source_image)
    (staging / "spec.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


@dataclass(frozen=True)
class RemoteJob:
    """What ``vgkit remote run`` starts: the validated spec, run name, model and time limits.

    ``deadline_s`` is the run deadline (the remote ``vgkit run`` gets it as ``--run-timeout-s``);
    ``timeout_s`` = ``deadline_s`` + grace is the remote ``timeout`` that ends the job regardless.
    """

    spec: RunSpec
    name: str
    model: str
    deadline_s: float
    deadline_from: str
    timeout_s: float

    def limits(self) -> str:
        return (
            f"run deadline {_seconds(self.deadline_s)} s ({self.deadline_from}), "
            f"remote timeout {_seconds(self.timeout_s)} s"
        )


def _seconds(value: float) -> str:
    """Seconds for ``timeout`` and the CLI: ``2100`` or ``1000.5``, never an exponent."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _deadline(spec: RunSpec, *, deadline_s: float | None) -> tuple[float, str]:
    """The run deadline and where it came from: ``--deadline-s``, else the spec's, as ``vgkit run``."""
    from vgkit.supervise.guard import Deadlines

    if deadline_s is not None:
        return float(deadline_s), "--deadline-s"
    run_s = Deadlines.for_spec(spec).run_timeout_s
    if spec.run_timeout_s is not None:
        return run_s, "the spec's run_timeout_s"
    return run_s, f"{len(spec.shots)} clips x clip_timeout_s {_seconds(spec.clip_timeout_s)}"


def plan_remote_job(
    spec_path: Path,
    *,
    model: str | None = None,
    name: str | None = None,
    deadline_s: float | None = None,
    grace_s: float = REMOTE_GRACE_S,
) -> RemoteJob:
    """Validate the spec and plan it here (the same one-line ``SpecError`` as ``vgkit run``), before
    anything goes to the host; the deadline defaults to the spec's (see ``_deadline``)."""
    from vgkit.generate.runner import plan_job

    if deadline_s is not None and not deadline_s > 0:
        raise SpecError(f"--deadline-s = {deadline_s}: not a positive number of seconds; fix: e.g. 3600, or omit it")
    if not grace_s >= 0:
        raise SpecError(f"--grace-s = {grace_s}: must be >= 0 seconds; fix: e.g. {REMOTE_GRACE_S:g}")
    spec, _, _ = plan_job(spec_path, model=model, planning_only=True)
    run_model = model or spec.model
    name = name or f"{spec.name}-{run_model}"
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise SpecError(f"--name = {name!r}: use letters, digits, '.', '_' or '-'; fix: pass --name")
    deadline, source = _deadline(spec, deadline_s=deadline_s)
    return RemoteJob(spec, name, run_model, deadline, source, deadline + grace_s)


def job_script(target: SshTarget, job: RemoteJob, *, job_id: str, env: Mapping[str, str]) -> str:
    """The job's shell script; it runs in the code directory as the leader of its own session.

    ``timeout`` puts the run in a process group of its own (its pid = the ``pgid`` file) and
    ends it after ``job.timeout_s``, SIGKILL 30 s later; the exit code lands in ``exit_code``.
    """
    name = job.name
    ctl = f"runs/{name}/{CONTROL}"
    run = [target.python, "-m", "vgkit", "run", f"{ctl}/spec.yaml", "--model", job.model, "--out", f"runs/{name}"]
    run += ["--run-timeout-s", _seconds(job.deadline_s)]
    return "\n".join(
        [
            "#!/bin/sh",
            f"# vgkit remote job {name}: written by `vgkit remote run`",
            f"# run deadline {_seconds(job.deadline_s)} s ({job.deadline_from}) + grace = remote timeout",
            f"C={shlex.quote(ctl)}",
            f"export VGKIT_REMOTE_JOB={job_id}",
            _env_prelude(env),
            'echo $$ > "$C/leader.pid"',
            f'timeout --kill-after=30 {_seconds(job.timeout_s)} {shlex.join(run)} > "$C/job.log" 2>&1 &',
            "child=$!",
            'echo "$child" > "$C/pgid.tmp" && mv "$C/pgid.tmp" "$C/pgid"',
            'wait "$child"',
            'echo $? > "$C/exit_code.tmp" && mv "$C/exit_code.tmp" "$C/exit_code"',
            "",
        ]
    )


def start_run(
    target: SshTarget,
    spec_path: Path,
    *,
    model: str | None = None,
    name: str | None = None,
    deadline_s: float | None = None,
    grace_s: float = REMOTE_GRACE_S,
    env: Mapping[str, str] | None = None,
) -> RemoteJob:
    """Validate the spec here, upload it and its images, start the run detached; return the job.

    The remote ``timeout`` is the run deadline (``deadline_s``, else the spec's) + ``grace_s``.
    Refuses a host that is not set up (naming ``vgkit remote setup``) and a live job of that name.
    """
    job = plan_remote_job(spec_path, model=model, name=name, deadline_s=deadline_s, grace_s=grace_s)
    env = env or {}
    _check_env(env)
    name = job.name
    require_ready(target)
    if job_status(target, name)["running"]:
        raise SpecError(f"remote job {name} is already running; fix: `vgkit remote kill --name {name}` or wait")
    job_id = f"{name}-{secrets.token_hex(6)}"
    with tempfile.TemporaryDirectory(prefix="vgkit-remote-") as tmp:
        staging = Path(tmp)
        _job_inputs(spec_path, job.spec, staging)
        (staging / "job.sh").write_text(job_script(target, job, job_id=job_id, env=env))
        (staging / "job_id").write_text(job_id + "\n")
        ctl = f"{target.run_dir(name)}/{CONTROL}"
        checked(run_ssh(target, f"rm -rf {remote_path(ctl)}", retry_s=30), "clear of old control files")
        upload(target, staging, ctl, "upload of the job")
    start = f"setsid -f sh runs/{name}/{CONTROL}/job.sh < /dev/null > /dev/null 2>&1"
    checked(run_ssh(target, target.in_code(start), retry_s=30), "start")
    give_up_at = time.monotonic() + 30
    while time.monotonic() < give_up_at:
        status = job_status(target, name)
        if status["pgid"] is not None or status["exit_code"] is not None:
            return job
        time.sleep(0.3)
    raise RemoteCommandError(
        f"remote job {name}: no pgid file 30 s after start; fix: `vgkit remote logs --name {name}`"
    )


def follow(
    target: SshTarget,
    name: str,
    *,
    poll_s: float = 5.0,
    max_disconnect_s: float = 120.0,
    kill_retry_s: float = 300.0,
    say: Callable[[str], None] = print,
) -> int:
    """Watch the job until it ends; return its exit code. Never leaves a stale job behind.

    The remote ``timeout`` (the run deadline + grace) ending the job (``timeout``'s 124) returns
    ``GuardrailError``'s exit code (6), as a deadline does in ``vgkit run``. Ctrl-C, or the host
    unreachable for longer than ``max_disconnect_s``, kills the remote job (retrying the kill on
    new connections for up to ``kill_retry_s``) and returns 130 or 7.
    """
    last = ""
    try:
        while True:
            status = job_status(target, name, retry_s=max_disconnect_s)
            line = format_status(name, status)
            if line != last:
                say(line)
                last = line
            if not status["running"] and (status["exit_code"] is not None or not status["started"]):
                if status["exit_code"] == REMOTE_TIMEOUT_EXIT:
                    say(f"{name}: the remote timeout (run deadline + grace) ended the job; finished clips are kept")
                    return GuardrailError.exit_code
                return int(status["exit_code"]) if status["exit_code"] is not None else 1
            time.sleep(poll_s)
    except KeyboardInterrupt:
        say(f"{name}: interrupted; killing the remote job")
        code = 130
    except RemoteConnectionError as exc:
        say(f"{name}: connection lost for more than {max_disconnect_s:g} s ({exc}); killing the remote job")
        code = RemoteConnectionError.exit_code
    try:
        result = kill_job(target, name, retry_s=kill_retry_s)
    except RemoteConnectionError as exc:
        raise RemoteConnectionError(
            f"{exc}; the job was NOT killed and its remote timeout ends it at the latest; "
            f"fix: `vgkit remote kill --name {name}` once the host answers"
        ) from None
    say(f"{name}: killed {len(result['killed'])} processes of pgid {result['pgid']}; none left")
    return code
