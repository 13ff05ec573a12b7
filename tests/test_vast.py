"""Vast.ai helpers: the Vast API is not reachable here, so the command lines and the on-start
script are tested, and where a command is run, a stand-in ``vastai`` script on PATH (a stub at the
process boundary) records the argv and environment it was given."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from vgkit.errors import SpecError
from vgkit.models import adapter
from vgkit.remote.vast import (
    DOCTOR_FILE,
    ENVIRONMENT_GB,
    create_argv,
    destroy_argv,
    needed_disk_gb,
    onstart_script,
    search_argv,
    ssh_url_argv,
)


def _vgkit(
    *args: str, key: str | None = None, stdin: str = "", path: str = "/usr/bin:/bin"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VAST_API_KEY"}
    env["PYTHONPATH"] = str(REPO)
    env["PATH"] = path  # by default no vastai on PATH: a dry run must not need it
    if key is not None:
        env["VAST_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "vgkit", "remote", *args], env=env, input=stdin, capture_output=True, text=True
    )


def test_search_query_filters_for_the_pinned_torch_build_memory_disk_and_reliability() -> None:
    argv = search_argv(gpu="RTX 4090", max_usd_per_h=0.45, min_disk_gb=80, min_gpu_ram_gb=23)
    assert argv[:3] == ["vastai", "search", "offers"]
    assert argv[3].split() == [
        "gpu_name=RTX_4090",
        "num_gpus=1",
        "gpu_ram>=23",
        "compute_cap>=800",
        "cuda_max_good>=12.6",  # the oldest CUDA build of the pinned torch (vgkit.host.cuda_builds)
        "dph_total<=0.45",
        "disk_space>=80",
        "reliability>0.98",
        "rentable=true",
    ]
    with pytest.raises(SpecError, match="max-usd-per-h"):
        search_argv(gpu="RTX 4090", max_usd_per_h=0, min_disk_gb=80)
    with pytest.raises(SpecError, match="min-reliability"):
        search_argv(max_usd_per_h=1, min_disk_gb=80, min_reliability=1.5)


def test_dry_run_query_carries_driver_memory_and_disk_for_the_preset_and_models() -> None:
    done = _vgkit("vast-search", "--dry-run", "--preset", "80gb", "--model", "hunyuan-i2v", "--model", "wan22")
    assert done.returncode == 0, done.stderr
    query = shlex.split(done.stdout)[3].split()
    gb = math.ceil(adapter("hunyuan-i2v").download_gb + adapter("wan22").download_gb + 10 + ENVIRONMENT_GB)
    assert "gpu_ram>=79" in query and "cuda_max_good>=12.6" in query and f"disk_space>={gb}" in query
    assert not any(term.startswith("gpu_name=") for term in query)  # any card that fits
    default = shlex.split(_vgkit("vast-search", "--dry-run").stdout)[3].split()
    assert "gpu_ram>=23" in default and f"disk_space>={needed_disk_gb(['wan22'])}" in default
    small = _vgkit("vast-search", "--dry-run", "--disk-gb", "20")
    assert small.returncode == 2
    assert small.stderr.strip() == (
        f"vgkit: error: --disk-gb = 20: the models' weights, outputs and environment need "
        f"{needed_disk_gb(['wan22'])} GB; fix: --disk-gb {needed_disk_gb(['wan22'])} or more, or leave it out"
    )


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


def test_onstart_script_is_valid_bash_and_names_the_pins() -> None:
    pins = (REPO / "requirements.txt").read_text()
    script = onstart_script(pins, remote_dir="/workspace/vgkit")
    done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256(pins.encode()).hexdigest() in script.splitlines()[1]
    assert "HF_HOME=/workspace/.cache/huggingface" in script
    assert "setsid -f bash /workspace/vgkit/after-push.sh" in script


def _after_push(tmp_path: Path, *, setup_exit: int) -> Path:
    """The on-start script's waiter, run here on a pushed stand-in code dir: its setup.sh and its
    venv's python are scripts (the waiter's own steps, flock, the files it leaves, are real)."""
    base = tmp_path / "vgkit"
    code = base / "code"
    (code / ".venv" / "bin").mkdir(parents=True)
    (code / ".vgkit-commit").write_text("abc\n")
    (code / "setup.sh").write_text(
        f"echo 'setup: error: NVIDIA driver 470.256.02 supports CUDA 11.4'; exit {setup_exit}\n"
    )
    doctor = code / ".venv" / "bin" / "python"
    doctor.write_text("#!/bin/sh\necho 'vgkit doctor'\necho 'doctor: ready: nothing here blocks a run'\n")
    doctor.chmod(0o755)
    script = onstart_script("pins\n", remote_dir=str(base))
    waiter = script.split("<<'VGKIT_AFTER_PUSH'\n", 1)[1].split("\nVGKIT_AFTER_PUSH\n", 1)[0]
    subprocess.run(["bash", "-c", waiter], capture_output=True, text=True, timeout=60)
    return base / DOCTOR_FILE


def test_the_onstart_waiter_runs_setup_then_doctor_and_leaves_its_output(tmp_path: Path) -> None:
    report = _after_push(tmp_path, setup_exit=0)
    assert report.read_text().splitlines()[-1] == "doctor: ready: nothing here blocks a run"
    failed = _after_push(tmp_path / "old-driver", setup_exit=1)
    assert failed.read_text() == "problem: setup.sh failed: setup: error: NVIDIA driver 470.256.02 supports CUDA 11.4\n"


def test_dry_run_prints_commands_and_never_the_key() -> None:
    done = _vgkit("vast-search", "--dry-run", "--max-usd-per-h", "0.5", key="sekret-123")
    assert done.returncode == 0, done.stderr
    assert "sekret-123" not in done.stdout + done.stderr
    argv = shlex.split(done.stdout)
    assert argv[:3] == ["vastai", "search", "offers"] and "--api-key" not in argv

    created = _vgkit("vast-create", "42", "--dry-run", key="sekret-123")
    assert created.returncode == 0 and "sekret-123" not in created.stdout
    assert "VGKIT_AFTER_PUSH" in created.stdout and "vastai create instance 42" in created.stdout


def test_destroy_needs_the_id_typed_back() -> None:
    refused = _vgkit("vast-destroy", "42", stdin="41\n")
    assert refused.returncode == 1 and "not destroyed" in refused.stderr
    # the right id passes the confirmation and reaches the (absent) vastai CLI
    missing = _vgkit("vast-destroy", "42", stdin="42\n")
    assert missing.returncode == 2 and "vastai: command not found" in missing.stderr


STAND_IN = """#!{python}
import json, os, sys
with open({record!r}, "a") as out:
    out.write(json.dumps({{"argv": sys.argv, "key": os.environ.get("VAST_API_KEY")}}) + "\\n")
"""


def test_the_key_reaches_vastai_by_environment_never_by_argv(tmp_path: Path) -> None:
    """Before: ``--api-key <key>`` was on the vastai command line, where ``ps`` shows it."""
    record = tmp_path / "calls.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "vastai"
    stand_in.write_text(STAND_IN.format(python=sys.executable, record=str(record)))
    stand_in.chmod(0o755)
    path = f"{bin_dir}:/usr/bin:/bin"
    assert _vgkit("vast-search", key="sekret-123", path=path).returncode == 0
    assert _vgkit("vast-ssh-url", "7", key="sekret-123", path=path).returncode == 0
    assert _vgkit("vast-create", "42", key="sekret-123", path=path).returncode == 0
    assert _vgkit("vast-destroy", "7", "--yes", key="sekret-123", path=path).returncode == 0
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert [call["argv"][1:3] for call in calls] == [
        ["search", "offers"],
        ["ssh-url", "7"],
        ["create", "instance"],
        ["destroy", "instance"],
    ]
    for call in calls:
        assert not any("sekret-123" in arg for arg in call["argv"]), call["argv"]
        assert "--api-key" not in call["argv"]
        assert call["key"] == "sekret-123"
