"""Vast.ai helpers over the ``vastai`` CLI: search offers, create, show SSH address, destroy.

Only command lines are built here; the ``vastai`` CLI does the work. The API key never appears on
a command line (where ``ps`` shows it to every user): the ``vastai`` child inherits ``VAST_API_KEY``
from the environment and reads it itself (its ``--api-key`` defaults to that variable; vast-ai's
``vastai/cli/main.py``), or uses the key file that ``vastai set api-key`` wrote; never params or
logs. ``--dry-run`` prints the exact commands and runs nothing. Standard library only.

``vast-search`` asks only for offers that can run the pinned torch: the host driver's highest CUDA
(``cuda_max_good``) at least the oldest CUDA build of the pinned torch (vgkit.host.cuda_builds), bf16
tensor cores (``compute_cap>=800``), the GPU memory the preset is made for, disk for the chosen
models' weights plus outputs and the environment, and a host reliability floor. In the vastai
CLI's query language ``gpu_ram`` is in GB (it multiplies by 1000 to the API's MB) and
``cuda_vers`` is an alias of ``cuda_max_good`` (vast-ai's ``vast.py``, ``offers_mult`` and
``offers_alias``).

The on-start script installs the system tools the remote commands need, points the HF cache at
``/workspace``, and starts a waiter that, once ``vgkit remote push`` has put the code there, runs
its ``setup.sh`` (which picks the torch build for this host's driver and proves it on the GPU)
and ``vgkit doctor``, leaving the doctor's output in ``<remote_dir>/doctor.txt`` (``vgkit remote
status`` shows its verdict). ``vgkit remote setup`` does the same in the foreground; a lock keeps
the two from installing at once.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vgkit.errors import SpecError

__all__ = [
    "DOCTOR_FILE",
    "add_vast_commands",
    "create_argv",
    "destroy_argv",
    "needed_disk_gb",
    "onstart_script",
    "preset_gpu_ram_gb",
    "search_argv",
    "ssh_url_argv",
]

DEFAULT_IMAGE = "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"
ENVIRONMENT_GB = 15  # the .venv with a CUDA torch build and its CUDA libraries, pip's cache, the OS image
DOCTOR_FILE = "doctor.txt"  # in the remote dir, beside code/


def needed_disk_gb(models: Sequence[str]) -> int:
    """Disk an offer needs for ``models``' weights, one long run's outputs and the environment."""
    from vgkit.host.doctor import OUTPUT_RESERVE_GB
    from vgkit.models import adapter

    weights = sum(adapter(name).download_gb for name in models)
    return math.ceil(weights + OUTPUT_RESERVE_GB + ENVIRONMENT_GB)


def preset_gpu_ram_gb(preset: str) -> float:
    """The GPU memory floor (vastai ``gpu_ram``, in its GB) for the smallest card a preset is made
    for: that card's GiB rounded down, which every such card passes (an RTX 4090 reports 24564 MiB,
    an 80 GB card about 81500); ``SpecError`` for a preset no card is listed for."""
    from vgkit.cost.gpus import PRESET_CARDS, card

    names = PRESET_CARDS.get(preset)
    if not names:
        raise SpecError(f"--preset = {preset!r}: no card is listed for it; fix: use one of {', '.join(PRESET_CARDS)}")
    return float(math.floor(min(card(name).memory_gib for name in names)))


def search_argv(
    *,
    max_usd_per_h: float,
    min_disk_gb: int,
    gpu: str | None = None,
    num_gpus: int = 1,
    min_gpu_ram_gb: float = 0.0,
    min_reliability: float = 0.98,
) -> list[str]:
    """``vastai search offers`` for hosts that can run the pinned torch build, cheapest first.

    The host driver's highest CUDA must reach the oldest CUDA build of the pinned torch; ``gpu``
    (e.g. "RTX 4090") narrows to one card, else any card with ``min_gpu_ram_gb`` and bf16
    (compute capability 8.0+).
    """
    if max_usd_per_h <= 0 or min_disk_gb <= 0 or num_gpus < 1 or not 0 <= min_reliability < 1:
        raise SpecError(
            f"--max-usd-per-h = {max_usd_per_h}, --disk-gb = {min_disk_gb}, --gpus = {num_gpus}, "
            f"--min-reliability = {min_reliability}: fix: positive values, reliability below 1"
        )
    from vgkit.host.cuda_builds import BUILDS, pinned_torch

    min_cuda = BUILDS[pinned_torch()][0].cuda_text
    terms = [f"gpu_name={gpu.replace(' ', '_')}"] if gpu else []
    terms += [
        f"num_gpus={num_gpus}",
        f"gpu_ram>={min_gpu_ram_gb:g}",
        "compute_cap>=800",
        f"cuda_max_good>={min_cuda}",
        f"dph_total<={max_usd_per_h}",
        f"disk_space>={min_disk_gb}",
        f"reliability>{min_reliability}",
        "rentable=true",
    ]
    return ["vastai", "search", "offers", " ".join(terms), "-o", "dph_total"]


def create_argv(offer_id: int, *, onstart_path: Path, disk_gb: int, image: str = DEFAULT_IMAGE) -> list[str]:
    """``vastai create instance`` with direct SSH and ``onstart_path`` as its on-start script."""
    instance = ["vastai", "create", "instance", str(offer_id), "--image", image, "--disk", str(disk_gb)]
    return [*instance, "--ssh", "--direct", "--onstart", str(onstart_path)]


def ssh_url_argv(instance_id: int) -> list[str]:
    return ["vastai", "ssh-url", str(instance_id)]


def destroy_argv(instance_id: int) -> list[str]:
    return ["vastai", "destroy", "instance", str(instance_id)]


def onstart_script(requirements: str, *, remote_dir: str = "/workspace/vgkit") -> str:
    """The on-start script: system tools, HF cache on /workspace, and a waiter that runs setup.sh
    and ``vgkit doctor`` once the code is pushed (output in ``<remote_dir>/doctor.txt``)."""
    digest = hashlib.sha256(requirements.encode()).hexdigest()
    base = shlex.quote(remote_dir)
    hf_home = "/workspace/.cache/huggingface"
    return "\n".join(
        [
            "#!/bin/bash",
            f"# vgkit on-start: for the pins with requirements.txt sha256 {digest}",
            "set -euo pipefail",
            "export DEBIAN_FRONTEND=noninteractive",
            "command -v rsync >/dev/null && command -v git >/dev/null && command -v flock >/dev/null || "
            "{ apt-get update && apt-get install -y rsync git python3-venv procps util-linux; }",
            f"grep -q HF_HOME /etc/environment || echo 'HF_HOME={hf_home}' >> /etc/environment",
            f"mkdir -p {base}/code {hf_home}",
            f"cat > {base}/after-push.sh <<'VGKIT_AFTER_PUSH'",
            "#!/bin/bash",
            "# Waits (up to 2 h) for `vgkit remote push`, then runs setup.sh and vgkit doctor.",
            f"export HF_HOME={hf_home}",
            f"cd {base}",
            "for _ in $(seq 720); do [ -f code/.vgkit-commit ] && break; sleep 10; done",
            f"[ -f code/.vgkit-commit ] || {{ echo 'doctor: no code was pushed within 2 h' > {DOCTOR_FILE}; exit 1; }}",
            "if ! (cd code && flock ../setup.lock bash setup.sh) > setup.log 2>&1; then",
            f'    echo "problem: setup.sh failed: $(tail -n 1 setup.log)" > {DOCTOR_FILE}; exit 1',
            "fi",
            f"(cd code && .venv/bin/python -m vgkit doctor) > {DOCTOR_FILE}.tmp 2>&1 || true",
            f"mv {DOCTOR_FILE}.tmp {DOCTOR_FILE}",
            "VGKIT_AFTER_PUSH",
            f"setsid -f bash {base}/after-push.sh > {base}/after-push.log 2>&1 < /dev/null",
            f"echo {digest} > {base}/onstart.done",
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
    needed = needed_disk_gb(args.model or ["wan22"])
    if args.disk_gb is not None and args.disk_gb < needed:
        raise SpecError(
            f"--disk-gb = {args.disk_gb}: the models' weights, outputs and environment need {needed} GB; "
            f"fix: --disk-gb {needed} or more, or leave it out"
        )
    argv = search_argv(
        gpu=args.gpu,
        max_usd_per_h=args.max_usd_per_h,
        min_disk_gb=args.disk_gb or needed,
        num_gpus=args.gpus,
        min_gpu_ram_gb=preset_gpu_ram_gb(args.preset),
        min_reliability=args.min_reliability,
    )
    return _execute(argv, dry_run=args.dry_run)


def _cmd_create(args: argparse.Namespace) -> int:
    from vgkit.settings import repo_root

    script = onstart_script((repo_root() / "requirements.txt").read_text(), remote_dir=args.remote_dir)
    with tempfile.TemporaryDirectory(prefix="vgkit-vast-") as tmp:
        path = Path("vgkit-onstart.sh") if args.dry_run else Path(tmp) / "vgkit-onstart.sh"
        if args.dry_run:
            print(f"# on-start script ({path}):\n{script}", end="")
        else:
            path.write_text(script)
        argv = create_argv(args.offer, onstart_path=path, disk_gb=args.disk_gb, image=args.image)
        return _execute(argv, dry_run=args.dry_run)


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

    p = add(
        "vast-search",
        _cmd_search,
        "search Vast.ai offers that can run the pinned torch build (driver CUDA, bf16, GPU memory for the preset, "
        "disk for the models, reliability), cheapest first",
    )
    p.add_argument("--gpu", default=None, help="one card only, e.g. 'RTX 4090' (default: any that fits)")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--preset", default="4090", help="the preset to run: its card's GPU memory (4090, 80gb)")
    p.add_argument("--model", action="append", default=[], help="model whose weights go on disk (default wan22)")
    p.add_argument("--max-usd-per-h", type=float, default=0.6)
    p.add_argument("--disk-gb", type=int, default=None, help="disk (default: what the models need)")
    p.add_argument("--min-reliability", type=float, default=0.98)
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
