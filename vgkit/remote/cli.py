"""``vgkit remote ...`` subcommands; registered by ``add_remote_commands`` from vgkit/cli.py.

Host options may come from ``VGKIT_REMOTE_HOST``/``_PORT``/``_KEY``/``_DIR``/``_PYTHON``. Heavy and
non-stdlib imports happen inside the command functions.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgkit.errors import SpecError
from vgkit.supervise.guard import REMOTE_GRACE_S

if TYPE_CHECKING:
    from vgkit.remote.ssh import SshTarget

__all__ = ["add_remote_commands"]

Command = Callable[[argparse.Namespace], int]


def _target(args: argparse.Namespace) -> SshTarget:
    from vgkit.remote.ssh import target_from

    return target_from(
        args.host,
        port=args.port,
        key=args.key,
        remote_dir=args.remote_dir,
        python=args.python,
        ssh_options=tuple(args.ssh_option or ()),
    )


def _env(args: argparse.Namespace) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in getattr(args, "env", None) or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"--env {item!r}: expected NAME=VALUE; fix: e.g. --env HF_HUB_OFFLINE=1")
        env[name] = value
    return env


def _name(args: argparse.Namespace) -> str:
    if not args.name:
        raise SpecError("--name is not set; fix: pass the run name that `vgkit remote run` printed")
    return str(args.name)


def _cmd_push(args: argparse.Namespace) -> int:
    from vgkit.remote.host import push

    print(f"pushed {push(_target(args), commit=args.commit)}")
    return 0


def _cmd_setup(args: argparse.Namespace) -> int:
    from vgkit.remote.host import setup

    setup(_target(args))
    return 0


def _cmd_prefetch(args: argparse.Namespace) -> int:
    from vgkit.remote.jobs import prefetch

    return prefetch(_target(args), args.model, env=_env(args))


def _cmd_run(args: argparse.Namespace) -> int:
    from vgkit.remote.jobs import follow, start_run

    target = _target(args)
    job = start_run(
        target,
        args.spec,
        model=args.model,
        name=args.name,
        deadline_s=args.deadline_s,
        grace_s=args.grace_s,
        env=_env(args),
    )
    name = job.name
    print(f"started {name}; {job.limits()}", flush=True)
    if not args.follow:
        return 0
    code = follow(
        target, name, poll_s=args.poll_s, max_disconnect_s=args.max_disconnect_s, say=lambda s: print(s, flush=True)
    )
    if code == 0 and args.fetch is not None:
        from vgkit.remote.fetch import fetch_bundle

        result = fetch_bundle(target, name, args.fetch)
        print(f"fetched {result.bundle} (sha256 {result.sha256}); {result.artifacts_verified} artifacts verified")
    return code


def _cmd_status(args: argparse.Namespace) -> int:
    """``status``: the job's state, then the host's doctor verdict; ``logs``: then the log's tail."""
    from vgkit.remote.host import doctor_verdict
    from vgkit.remote.jobs import format_status, job_status, read_log

    target, name = _target(args), _name(args)
    print(format_status(name, job_status(target, name, retry_s=args.retry_s)))
    if args.remote_command == "logs":
        sys.stdout.write(read_log(target, name, lines=args.lines, retry_s=args.retry_s))
    else:
        print("\n".join(f"host {line}" for line in doctor_verdict(target, retry_s=args.retry_s)))
    return 0


def _cmd_kill(args: argparse.Namespace) -> int:
    from vgkit.remote.jobs import kill_job

    result = kill_job(_target(args), _name(args), retry_s=args.retry_s)
    print(f"killed {len(result['killed'])} processes of pgid {result['pgid']}; none left")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from vgkit.remote.fetch import fetch_bundle

    result = fetch_bundle(_target(args), _name(args), args.out, attempts=args.attempts, force=args.force)
    print(f"bundle: {result.bundle} (sha256 {result.sha256}, attempt {result.attempts})")
    print(f"run: {result.run_dir} ({result.artifacts_verified} artifacts verified)")
    return 0


def add_remote_commands(sub: Any) -> None:
    """Register ``vgkit remote`` and its subcommands on the top-level subparsers ``sub``."""
    remote = sub.add_parser("remote", help="run on a GPU host over SSH: push, setup, run, status, kill, fetch")
    remote_sub = remote.add_subparsers(dest="remote_command", required=True, metavar="REMOTE_COMMAND")

    def add(name: str, func: Command, help_text: str, *, named: bool = False) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = remote_sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        p.add_argument("--host", default=None, help="user@host (default $VGKIT_REMOTE_HOST)")
        p.add_argument("--port", type=int, default=None, help="SSH port (default $VGKIT_REMOTE_PORT or 22)")
        p.add_argument("--key", default=None, help="private key file (default $VGKIT_REMOTE_KEY)")
        p.add_argument("--remote-dir", default=None, help="base dir on the host (default $VGKIT_REMOTE_DIR or ~/vgkit)")
        p.add_argument("--python", default=None, help="python there (default $VGKIT_REMOTE_PYTHON or .venv/bin/python)")
        p.add_argument("--ssh-option", action="append", help="extra `ssh -o` value; repeat for several")
        if named:
            p.add_argument("--name", default=None, help="run name (printed by `vgkit remote run`)")
            p.add_argument("--retry-s", type=float, default=60.0, help="keep reconnecting this long (s)")
        return p

    p = add("push", _cmd_push, "copy the code at a commit (git archive) plus params/ to the host")
    p.add_argument("--commit", default="HEAD")
    add("setup", _cmd_setup, "run setup.sh in the pushed code on the host (idempotent)")
    p = add("prefetch", _cmd_prefetch, "download a model's weights into the host's HF cache")
    p.add_argument("--model", required=True)
    p.add_argument("--env", action="append", help="NAME=VALUE for the remote command (never secrets)")
    p = add("run", _cmd_run, "start a run detached (setsid, pgid file, remote timeout); --follow watches it")
    p.add_argument("spec", type=Path)
    p.add_argument("--model", default=None)
    p.add_argument("--name", default=None, help="run name (default <spec name>-<model>)")
    p.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="run deadline (default: the spec's run_timeout_s, else clips x clip_timeout_s); remote timeout adds grace",
    )
    p.add_argument("--grace-s", type=float, default=REMOTE_GRACE_S, help="seconds past the deadline before the kill")
    p.add_argument("--env", action="append", help="NAME=VALUE for the run (never secrets)")
    p.add_argument("--follow", action="store_true", help="watch; Ctrl-C or a long disconnect kills the job")
    p.add_argument("--poll-s", type=float, default=5.0)
    p.add_argument("--max-disconnect-s", type=float, default=120.0)
    p.add_argument("--fetch", type=Path, default=None, help="with --follow: fetch the bundle into this dir")
    add("status", _cmd_status, "state and clip progress of a remote run", named=True)
    p = add("logs", _cmd_status, "status plus the tail of the run's log", named=True)
    p.add_argument("--lines", type=int, default=40)
    add("kill", _cmd_kill, "kill every process of a remote run and confirm none is left", named=True)
    p = add("fetch", _cmd_fetch, "download a run's bundle (resumable) and verify every hash", named=True)
    p.add_argument("--out", type=Path, default=Path("runs"))
    p.add_argument("--attempts", type=int, default=3)
    p.add_argument(
        "--force",
        action="store_true",
        help="when OUT/NAME exists, fetch beside it (NAME.fetched-<time>); never replaces",
    )
    from vgkit.remote.vast import add_vast_commands

    add_vast_commands(remote_sub)
