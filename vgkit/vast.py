"""Vast.ai helpers over the ``vastai`` CLI: search offers, create, show SSH address, destroy.

Only command lines are built here; the ``vastai`` CLI does the work. The API key never appears on
a command line (where ``ps`` shows it to every user): the ``vastai`` child inherits ``VAST_API_KEY``
from the environment and reads it itself (its ``--api-key`` defaults to that variable; vast-ai's
``vastai/cli/main.py``), or uses the key file that ``vastai set api-key`` wrote; never params or
logs. ``--dry-run`` prints the exact commands and runs nothing. Standard library only.

The on-start script installs the system tools the remote commands need, points the HF cache at
``/workspace`` and installs the exact pins of requirements.txt into the venv that setup.sh uses,
so ``vgkit remote push`` + ``vgkit remote setup`` afterwards only re-check.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vgkit.errors import SpecError

__all__ = [
    "add_vast_commands",
    "create_argv",
    "destroy_argv",
    "onstart_script",
    "search_argv",
    "ssh_url_argv",
]

DEFAULT_IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"


def search_argv(*, gpu: str, max_usd_per_h: float, min_disk_gb: int, num_gpus: int = 1) -> list[str]:
    """``vastai search offers`` for ``num_gpus`` x ``gpu`` at most ``max_usd_per_h``, cheapest first."""
    if max_usd_per_h <= 0 or min_disk_gb <= 0 or num_gpus < 1:
        raise SpecError(
            f"--max-usd-per-h = {max_usd_per_h}, --disk-gb = {min_disk_gb}, --gpus = {num_gpus}: fix: positive values"
        )
    query = (
        f"gpu_name={gpu.replace(' ', '_')} num_gpus={num_gpus} dph_total<={max_usd_per_h} "
        f"disk_space>={min_disk_gb} reliability>0.98 rentable=true"
    )
    return ["vastai", "search", "offers", query, "-o", "dph_total"]


def create_argv(offer_id: int, *, onstart_path: Path, disk_gb: int, image: str = DEFAULT_IMAGE) -> list[str]:
    """``vastai create instance`` with direct SSH and ``onstart_path`` as its on-start script."""
    return [
        "vastai",
        "create",
        "instance",
        str(offer_id),
        "--image",
        image,
        "--disk",
        str(disk_gb),
        "--ssh",
        "--direct",
        "--onstart",
        str(onstart_path),
    ]


def ssh_url_argv(instance_id: int) -> list[str]:
    return ["vastai", "ssh-url", str(instance_id)]


def destroy_argv(instance_id: int) -> list[str]:
    return ["vastai", "destroy", "instance", str(instance_id)]


def onstart_script(requirements: str, *, remote_dir: str = "/workspace/vgkit") -> str:
    """The on-start script: system tools, HF cache on /workspace, exact pins in setup.sh's venv."""
    digest = hashlib.sha256(requirements.encode()).hexdigest()
    venv = f"{remote_dir}/code/.venv"
    return "\n".join(
        [
            "#!/bin/bash",
            f"# vgkit on-start: requirements.txt sha256 {digest}",
            "set -euo pipefail",
            "export DEBIAN_FRONTEND=noninteractive",
            "command -v rsync >/dev/null && command -v git >/dev/null || "
            "{ apt-get update && apt-get install -y rsync git python3-venv procps; }",
            "grep -q HF_HOME /etc/environment || echo 'HF_HOME=/workspace/.cache/huggingface' >> /etc/environment",
            f"mkdir -p {shlex.quote(remote_dir)}/code /workspace/.cache/huggingface",
            f"cat > {shlex.quote(remote_dir)}/requirements.txt <<'VGKIT_PINS'",
            requirements.rstrip("\n"),
            "VGKIT_PINS",
            f"[ -x {venv}/bin/python ] || python3 -m venv {venv}",
            f"{venv}/bin/python -m pip install --quiet --disable-pip-version-check "
            f"-r {shlex.quote(remote_dir)}/requirements.txt",
            f"echo {digest} > {shlex.quote(remote_dir)}/onstart.done",
            "",
        ]
    )


def _execute(argv: Sequence[str], *, dry_run: bool) -> int:
    """Print the exact command; run it unless ``dry_run``. The key travels in the inherited
    environment (``VAST_API_KEY``), never in ``argv``."""
    print(shlex.join(argv), flush=True)
    if dry_run:
        return 0
    try:
        return subprocess.run(list(argv), check=False).returncode  # the environment is inherited
    except FileNotFoundError:
        raise SpecError("vastai: command not found; fix: `pip install vastai` then `vastai set api-key ...`") from None


def _cmd_search(args: argparse.Namespace) -> int:
    argv = search_argv(gpu=args.gpu, max_usd_per_h=args.max_usd_per_h, min_disk_gb=args.disk_gb, num_gpus=args.gpus)
    return _execute(argv, dry_run=args.dry_run)


def _cmd_create(args: argparse.Namespace) -> int:
    from vgkit.settings import repo_root

    script = onstart_script((repo_root() / "requirements.txt").read_text(), remote_dir=args.remote_dir)
    if args.dry_run:
        path = Path("vgkit-onstart.sh")
        print(f"# on-start script ({path}):\n{script}", end="")
        return _execute(
            create_argv(args.offer, onstart_path=path, disk_gb=args.disk_gb, image=args.image), dry_run=True
        )
    with tempfile.TemporaryDirectory(prefix="vgkit-vast-") as tmp:
        path = Path(tmp) / "vgkit-onstart.sh"
        path.write_text(script)
        argv = create_argv(args.offer, onstart_path=path, disk_gb=args.disk_gb, image=args.image)
        return _execute(argv, dry_run=False)


def _cmd_ssh_url(args: argparse.Namespace) -> int:
    return _execute(ssh_url_argv(args.instance), dry_run=args.dry_run)


def _cmd_destroy(args: argparse.Namespace) -> int:
    if not args.dry_run and not args.yes:
        answer = input(f"destroy instance {args.instance}? Its disk is deleted. Type the id to confirm: ")
        if answer.strip() != str(args.instance):
            print("not destroyed", file=sys.stderr)
            return 1
    return _execute(destroy_argv(args.instance), dry_run=args.dry_run)


def add_vast_commands(sub: Any) -> None:
    """Register ``vast-search``, ``vast-create``, ``vast-ssh-url``, ``vast-destroy`` on ``sub``."""

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        p.add_argument("--dry-run", action="store_true", help="print the exact vastai command; run nothing")
        return p

    p = add("vast-search", _cmd_search, "search Vast.ai offers: GPU, price cap, disk (cheapest first)")
    p.add_argument("--gpu", default="RTX 4090")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--max-usd-per-h", type=float, default=0.6)
    p.add_argument("--disk-gb", type=int, default=80)
    p = add("vast-create", _cmd_create, "rent an offer with the pinned setup as its on-start script")
    p.add_argument("offer", type=int)
    p.add_argument("--disk-gb", type=int, default=80)
    p.add_argument("--image", default=DEFAULT_IMAGE)
    p.add_argument("--remote-dir", default="/workspace/vgkit")
    p = add("vast-ssh-url", _cmd_ssh_url, "show an instance's SSH address (ssh://root@host:port)")
    p.add_argument("instance", type=int)
    p = add("vast-destroy", _cmd_destroy, "destroy an instance (asks to type its id unless --yes)")
    p.add_argument("instance", type=int)
    p.add_argument("--yes", action="store_true")
