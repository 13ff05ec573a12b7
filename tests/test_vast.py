"""Vast.ai helpers: the Vast API is not reachable here, so the command lines and the on-start
script are tested, and where a command is run, a stand-in ``vastai`` script on PATH (a stub at the
process boundary) records the argv and environment it was given."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from vgkit.errors import SpecError
from vgkit.vast import create_argv, destroy_argv, onstart_script, search_argv, ssh_url_argv


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
    argv = shlex.split(done.stdout)
    assert argv[:3] == ["vastai", "search", "offers"] and "--api-key" not in argv

    created = _vgkit("vast-create", "42", "--dry-run", key="sekret-123")
    assert created.returncode == 0 and "sekret-123" not in created.stdout
    assert "VGKIT_PINS" in created.stdout and "vastai create instance 42" in created.stdout


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
