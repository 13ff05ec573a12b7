"""``vgkit doctor`` on this CPU box, and on stand-in GPU hosts (tests.fake_gpu: an ``nvidia-smi``
on PATH; torch's view is this machine's real CPU wheel unless a stand-in probe is named)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from tests.fake_gpu import BROKEN_SMI, nvidia_smi_script
from tests.stand_ins import stand_in_gpu
from vgkit.cli import main
from vgkit.host.doctor import diagnose, summary


def _problems(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("problem: ")]


def test_doctor_on_this_cpu_box_is_ready_for_the_tiny_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert _problems(out) == []
    assert out.splitlines()[-1] == "doctor: ready: nothing here blocks a run"
    for expected in (
        "  GPU: none (VGKIT_FORCE_CPU=1)",
        "  torch: 2.13.0+cpu (CPU build)",
        "  attention: on CPU: native, _native_math, _native_flash, flex",
        f"  HF cache: {os.environ['HF_HUB_CACHE']}",
        "  weights: wan22 not in cache; cogvideox15 not in cache; hunyuan-i2v not in cache",
        "  model: --model auto -> wan22-tiny on cpu, preset cpu (auto: no CUDA GPU found",
        "  time per clip: tiny random-weight model",
        "  ffmpeg: ",
    ):
        assert any(line.startswith(expected) for line in out.splitlines()), expected
    assert summary() == out.rstrip("\n")  # what a notebook shows first


def test_without_a_gpu_the_doctor_names_torchs_build_without_importing_torch() -> None:
    """A notebook's first cell runs the doctor in its kernel: on a host without a GPU it reads the
    build from torch's files (the same version and CUDA torch itself reports) and leaves torch unloaded."""
    from vgkit.host.gpu import torch_build, torch_view

    built, seen = torch_build(), torch_view()
    assert (built.version, built.cuda, built.gpus) == (seen.version, seen.cuda, ())
    code = "import sys; from vgkit.host.doctor import summary; text = summary(); print('torch' in sys.modules, text)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("False vgkit doctor\n"), done.stdout
    assert f"  torch: {seen.version} (CPU build)\n" in done.stdout


def test_doctor_counts_missing_weights_against_free_disk_and_refuses_the_model() -> None:
    report = diagnose(models=["hunyuan-i2v"])
    (problem,) = [p for p in report.problems if p.topic != "disk"]  # the disk is a problem on a small host
    assert problem.topic == "model" and "fix: run `vgkit prefetch --model hunyuan-i2v`" in problem.text
    (disk,) = [f for f in report.findings if f.topic == "disk"]
    assert "hunyuan-i2v weights" in disk.text and "+ 10 GB for outputs" in disk.text


@pytest.fixture
def gpu_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = stand_in_gpu(tmp_path, nvidia_smi_script("550.54.15"))
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.delenv("VGKIT_FORCE_CPU")
    return bin_dir


@pytest.mark.usefixtures("gpu_host")
def test_a_gpu_torch_cannot_use_is_one_problem_line_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    (line,) = _problems(out)
    assert line.startswith("problem: torch: nvidia-smi shows a GPU, but torch 2.13.0+cpu is a CPU-only build; ")
    assert line.endswith("fix: bash setup.sh (it installs the torch build for this driver)")
    assert "  GPU: NVIDIA driver 550.54.15 (supports CUDA 12.4); nvidia-smi shows NVIDIA GeForce RTX 4090" in out


@pytest.mark.usefixtures("gpu_host")
def test_a_usable_gpu_lists_its_capabilities_and_attention_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VGKIT_TORCH_PROBE", "tests.fake_gpu:torch_sees_the_gpu")
    report = diagnose()
    assert report.ok, report.text()
    text = report.text()
    assert "  GPU: cuda:0 NVIDIA GeForce RTX 4090, sm_89, 23.6 GiB: torch can use it; bf16 yes; fp8 layerwise" in text
    usable = next(line for line in text.splitlines() if line.startswith("  attention: usable: "))
    assert "_native_flash" in usable and "_native_cudnn" in usable and "flash_hub" not in usable
    assert "GPU NVIDIA GeForce RTX 4090 but no downloaded weights" in text  # auto says why it is the tiny model


def test_a_broken_driver_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{stand_in_gpu(tmp_path, BROKEN_SMI)}:{os.environ['PATH']}")
    monkeypatch.delenv("VGKIT_FORCE_CPU")
    problems = _problems(diagnose().text())
    assert problems[0].startswith("problem: GPU: nvidia-smi failed (exit 9): NVIDIA-SMI has failed")
    assert problems[0].endswith("fix: rent another offer (the NVIDIA driver does not answer)")


def test_vgkit_run_refuses_a_real_model_before_creating_anything_when_torch_cannot_use_the_gpu(
    gpu_host: Path, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "s.yaml", spec_dict(model="wan22"))
    out = tmp_path / "run"
    env = {**os.environ, "VGKIT_LOCK_DIR": str(tmp_path / "locks")}
    argv = [sys.executable, "-m", "vgkit", "run", str(spec), "--model", "wan22", "--out", str(out)]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("vgkit: error: model 'wan22' needs a CUDA GPU torch can use: nvidia-smi shows NVIDIA")
    assert "fix: bash setup.sh" in line
    assert not out.exists()
