"""setup.sh on GPU hosts: the torch build chosen for the driver, and the one-line refusals.

The driver is a stand-in ``nvidia-smi`` on PATH (tests.fake_gpu); pip and the Jupyter kernel
install are stubbed at the command boundary (a ``.venv/bin/python`` that records ``-m pip`` and
``-m ipykernel`` calls and runs everything else with the real interpreter); the GPU proof runs the
real torch of this machine, a CPU wheel, which therefore fails it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fake_gpu import BROKEN_SMI, nvidia_smi_script
from tests.stand_ins import stand_in_gpu
from vgkit.host.cuda_builds import pinned_torch

TORCH = pinned_torch()
INDEX = "https://download.pytorch.org/whl/"


def _env(tmp_path: Path, smi: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VGKIT_FORCE_CPU"}
    path = env["PATH"] if smi is None else f"{stand_in_gpu(tmp_path, smi)}:{env['PATH']}"
    env["PATH"] = ":".join(
        p for p in path.split(":") if not (Path(p) / "nvidia-smi").exists() or p.startswith(str(tmp_path))
    )
    return env


def _select(tmp_path: Path, smi: str | None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "vgkit.host.cuda_builds", "select", "--shell"]
    return subprocess.run(argv, cwd=REPO, env=_env(tmp_path, smi), capture_output=True, text=True, timeout=60)


def _values(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    import shlex

    return {k: shlex.split(v)[0] if v else "" for k, v in (line.split("=", 1) for line in done.stdout.splitlines())}


@pytest.mark.parametrize(
    ("driver", "tag", "how"),
    [
        ("535.183.01", "cu126", "through CUDA minor version compatibility (no PTX JIT)"),
        ("550.54.15", "cu126", "through CUDA minor version compatibility (no PTX JIT)"),
        ("570.86.15", "cu128", "natively"),
        ("580.65.06", "cu130", "natively"),
    ],
)
def test_the_newest_build_the_driver_runs_is_chosen(tmp_path: Path, driver: str, tag: str, how: str) -> None:
    done = _select(tmp_path, nvidia_smi_script(driver))
    assert done.returncode == 0, done.stderr
    values = _values(done)
    assert values["TORCH_SPEC"] == f"torch=={TORCH}+{tag}"
    assert values["TORCH_INDEX"] == f"https://download.pytorch.org/whl/{tag}"
    assert values["TORCH_STAMP"] == f"torch=={TORCH}+{tag} index=https://download.pytorch.org/whl/{tag}"
    assert values["TORCH_WHY"].startswith(f"driver {driver} supports CUDA ")
    assert values["TORCH_WHY"].endswith(how)
    assert values["GPU_DRIVER"].startswith(f"driver {driver}, CUDA ")


def test_a_driver_too_old_for_every_build_is_refused_in_one_line(tmp_path: Path) -> None:
    done = _select(tmp_path, nvidia_smi_script("470.256.02"))
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"setup: error: NVIDIA driver 470.256.02 supports CUDA 11.4, but torch {TORCH}'s oldest")
    assert "needs CUDA 12.6 (driver >= 525 through minor version compatibility, >= 560.28.03 natively)" in line
    assert "fix: rent another offer with a driver >= 560.28.03" in line


def test_a_broken_driver_is_refused_in_one_line(tmp_path: Path) -> None:
    done = _select(tmp_path, BROKEN_SMI)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("setup: error: nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't")
    assert "fix: rent another offer, or VGKIT_FORCE_CPU=1 bash setup.sh" in line


def test_no_nvidia_smi_means_a_cpu_host(tmp_path: Path) -> None:
    done = _select(tmp_path, None)
    assert done.returncode == 0, done.stderr
    assert set(_values(done).values()) == {""}


# ---- setup.sh itself, in a copy of the repository with pip stubbed --------------------------------

STUB_PYTHON = """#!/bin/sh
# Stands in for the venv's python at the command boundary: pip, ipykernel and bytecode calls are
# recorded, not run; everything else runs with the real interpreter.
case "$1 $2" in
  "-m pip"|"-m ipykernel"|"-m vgkit.host.bytecode") echo "$*" >> "$(dirname "$0")/../calls.log"; exit 0 ;;
esac
exec {python} "$@"
"""


def _setup_copy(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("setup.sh", "requirements.txt", "requirements-rife.txt", "pyproject.toml"):
        shutil.copy(REPO / name, repo / name)
    (repo / "vgkit").symlink_to(REPO / "vgkit")
    python = repo / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STUB_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    (python.parent / "activate").write_text("# stand-in activate\n")
    return repo


def _setup(repo: Path, tmp_path: Path, smi: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**_env(tmp_path, smi), "HOME": str(tmp_path / "home")}
    argv = ["bash", "setup.sh", *args]
    return subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def test_setup_installs_the_chosen_build_records_it_and_the_proof_says_when_torch_cannot_use_the_gpu(
    tmp_path: Path,
) -> None:
    repo = _setup_copy(tmp_path)
    done = _setup(repo, tmp_path, nvidia_smi_script("550.54.15"))
    calls = (repo / ".venv" / "calls.log").read_text().splitlines()
    pip = "-m pip install --quiet --disable-pip-version-check --no-compile"
    torch_call = f"{pip} --index-url {INDEX}cu126 torch=={TORCH}+cu126"
    assert torch_call in calls
    requirements = f"{pip} -r requirements.txt"
    assert calls.index(torch_call) < calls.index(requirements)  # the pins then find torch there
    stamp = (repo / ".venv" / ".vgkit-setup-stamp").read_text().splitlines()
    assert stamp[1] == f"torch=={TORCH}+cu126 index=https://download.pytorch.org/whl/cu126"
    assert stamp[2].startswith("chosen: driver 550.54.15 supports CUDA 12.4; torch ")
    assert (
        f"setup: installing torch=={TORCH}+cu126 from https://download.pytorch.org/whl/cu126: driver 550.54.15"
        in done.stdout
    )
    assert "setup: GPU found: driver 550.54.15, CUDA 12.4, NVIDIA GeForce RTX 4090, 24564 MiB" in done.stdout
    # this machine's torch is the CPU wheel (the stubbed pip installed nothing): the proof says so and setup fails
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("setup: error: GPU proof failed: torch ")
    assert f"cannot use the GPU (torch=={TORCH}+cu126); fix: bash setup.sh again" in line

    again = _setup(repo, tmp_path, nvidia_smi_script("550.54.15"))
    assert again.stdout.startswith("setup: environment up to date")  # same driver, same build: nothing reinstalled
    assert _setup(repo, tmp_path, nvidia_smi_script("550.54.15"), "--check").returncode == 0
    assert _setup(repo, tmp_path, nvidia_smi_script("580.65.06"), "--check").returncode == 1  # wants cu130 now
    newer = _setup(repo, tmp_path, nvidia_smi_script("580.65.06"))
    assert f"setup: installing torch=={TORCH}+cu130" in newer.stdout  # another driver: the build follows it


def test_setup_stops_before_installing_anything_when_no_build_fits(tmp_path: Path) -> None:
    repo = _setup_copy(tmp_path)
    done = _setup(repo, tmp_path, nvidia_smi_script("470.256.02"))
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and "NVIDIA driver 470.256.02 supports CUDA 11.4" in done.stderr
    assert not (repo / ".venv" / "calls.log").exists()


def test_setup_on_a_cpu_host_is_unchanged(tmp_path: Path) -> None:
    repo = _setup_copy(tmp_path)
    done = _setup(repo, tmp_path, None)
    assert done.returncode == 0, done.stderr
    calls = (repo / ".venv" / "calls.log").read_text()
    assert "download.pytorch.org" not in calls and "-r requirements.txt" in calls
    order = calls.splitlines()
    editable = next(i for i, call in enumerate(order) if call.endswith("--no-deps -e ."))
    assert order.index("-m vgkit.host.bytecode") == editable + 1  # bytecode for what was just installed
    assert len((repo / ".venv" / ".vgkit-setup-stamp").read_text().splitlines()) == 1  # the pins' hash only
    assert "setup: no GPU found: runs use the tiny random-weight checkpoints on CPU" in done.stdout


@pytest.mark.slow
def test_gpu_check_dry_run_plans_its_spec_and_builds_the_full_size_configs_on_meta(tmp_path: Path) -> None:
    """benchmarks/gpu_check.sh is for a GPU machine; on CPU its dry run checks what it can."""
    env = {**os.environ, "WORK": str(tmp_path / "work"), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout.split("\nstage ", 1)[1].splitlines()
    assert [line.split()[0] for line in table[1:4]] == ["spec-check", "random-checkpoint", "bench-models-help"]
    assert all(" ok " in line for line in table[1:4]), table
    assert "plan: 2 clips on wan22, 1280x704 @ 24 fps, 8 steps" in (tmp_path / "work" / "spec-check.log").read_text()
    assert "transformer: WanTransformer3DModel, 5.00 B parameters on meta" in done.stdout
