"""Vast.ai helpers: the Vast API is not reachable here, so only the command lines and the
on-start script are tested (the real ``vastai`` CLI is never run)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from vgkit.errors import SpecError
from vgkit.vast import create_argv, destroy_argv, onstart_script, search_argv, ssh_url_argv


def _vgkit(*args: str, key: str | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VAST_API_KEY"}
    env["PYTHONPATH"] = str(REPO)
    env["PATH"] = "/usr/bin:/bin"  # no vastai on PATH: a dry run must not need it
    if key is not None:
        env["VAST_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "vgkit", "remote", *args], env=env, input=stdin, capture_output=True, text=True
    )


def test_search_query_has_gpu_price_cap_and_disk() -> None:
    argv = search_argv(gpu="RTX 4090", max_usd_per_h=0.45, min_disk_gb=80)
    assert argv[:3] == ["vastai", "search", "offers"]
    assert argv[3].split() == [
        "gpu_name=RTX_4090",
        "num_gpus=1",
        "dph_total<=0.45",
        "disk_space>=80",
        "reliability>0.98",
        "rentable=true",
    ]
    with pytest.raises(SpecError, match="max-usd-per-h"):
        search_argv(gpu="RTX 4090", max_usd_per_h=0, min_disk_gb=80)


def test_create_ssh_url_and_destroy_commands() -> None:
    argv = create_argv(123, onstart_path=Path("on.sh"), disk_gb=90, image="img:1")
    assert argv == [
        "vastai",
        "create",
        "instance",
        "123",
        "--image",
        "img:1",
        "--disk",
        "90",
        "--ssh",
        "--direct",
        "--onstart",
        "on.sh",
    ]
    assert ssh_url_argv(7) == ["vastai", "ssh-url", "7"]
    assert destroy_argv(7) == ["vastai", "destroy", "instance", "7"]


def test_onstart_script_carries_the_exact_pins_and_is_valid_bash() -> None:
    pins = (REPO / "requirements.txt").read_text()
    script = onstart_script(pins, remote_dir="/workspace/vgkit")
    done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    heredoc = script.split("<<'VGKIT_PINS'\n", 1)[1].split("\nVGKIT_PINS\n", 1)[0]
    assert heredoc == pins.rstrip("\n")
    assert "/workspace/vgkit/code/.venv/bin/python -m pip install" in script
    assert "HF_HOME=/workspace/.cache/huggingface" in script


def test_dry_run_prints_commands_and_never_the_key() -> None:
    done = _vgkit("vast-search", "--dry-run", "--max-usd-per-h", "0.5", key="sekret-123")
    assert done.returncode == 0, done.stderr
    assert "sekret-123" not in done.stdout + done.stderr
    argv = shlex.split(done.stdout.replace('"$VAST_API_KEY"', "KEY"))
    assert argv[:3] == ["vastai", "search", "offers"] and argv[-2:] == ["--api-key", "KEY"]

    created = _vgkit("vast-create", "42", "--dry-run", key="sekret-123")
    assert created.returncode == 0 and "sekret-123" not in created.stdout
    assert "VGKIT_PINS" in created.stdout and "vastai create instance 42" in created.stdout


def test_destroy_needs_the_id_typed_back() -> None:
    refused = _vgkit("vast-destroy", "42", stdin="41\n")
    assert refused.returncode == 1 and "not destroyed" in refused.stderr
    # the right id passes the confirmation and reaches the (absent) vastai CLI
    missing = _vgkit("vast-destroy", "42", stdin="42\n")
    assert missing.returncode == 2 and "vastai: command not found" in missing.stderr
