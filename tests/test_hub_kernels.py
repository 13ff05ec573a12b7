"""Hub attention kernels (diffusers' ``*_hub`` backends): fetched by ``vgkit prefetch
--attention-backend``, verified offline when a run applies ``speed.attention_backend``, refused in
one line otherwise. The ``kernels`` package is not installed here (the real state is tested first);
then a stand-in for it at its boundary, ``install_kernel`` (tests/stand_in_kernels), is put first on
the import path: the Hub and a GPU, which the real one needs, are not available on this machine."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.tiny_models import tiny_generator
from vgkit.errors import SpecError
from vgkit.hub.kernels import KERNELS_PIN, fetch, hub_kernel, verify
from vgkit.models.speed import SpeedOptions, apply_speed

STAND_IN = REPO / "tests" / "stand_in_kernels"


def test_hub_backends_name_the_kernel_diffusers_loads() -> None:
    kernel = hub_kernel("flash_hub")
    assert kernel is not None and kernel.repo_id == "kernels-community/flash-attn2" and kernel.version == 3
    assert hub_kernel("flash") is None and hub_kernel("native") is None


@pytest.mark.skipif(importlib.util.find_spec("kernels") is not None, reason="the kernels package is installed here")
def test_without_the_kernels_package_a_hub_backend_is_refused_with_the_install_fix() -> None:
    with pytest.raises(SpecError) as refused:
        verify("flash_hub")
    assert str(refused.value) == (
        "speed.attention_backend = 'flash_hub': its kernel kernels-community/flash-attn2 comes from the Hub through "
        f"the `kernels` package, which is not installed; fix: .venv/bin/pip install {KERNELS_PIN}, then "
        "`vgkit prefetch --attention-backend flash_hub`; or attention_backend: default"
    )


@pytest.fixture
def stand_in_kernels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    log = tmp_path / "kernels-calls.jsonl"
    monkeypatch.setenv("STAND_IN_KERNELS_LOG", str(log))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.syspath_prepend(str(STAND_IN))
    sys.modules.pop("kernels", None)
    yield log
    sys.modules.pop("kernels", None)


def _calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_run_refuses_a_hub_backend_whose_kernel_was_not_prefetched(stand_in_kernels: Path) -> None:
    pipe = tiny_generator("wan22-tiny").pipe
    with pytest.raises(SpecError) as refused:
        apply_speed(pipe, SpeedOptions(attention_backend="sage_hub"), device="cuda")
    (line,) = str(refused.value).splitlines()
    assert line.startswith("speed.attention_backend = 'sage_hub': kernel SageAttention/sage-attention (version 3) is ")
    assert "not in the HF cache for this torch and CUDA" in line
    assert "fix: `vgkit prefetch --attention-backend sage_hub` on this machine (needs the network once)" in line
    assert _calls(stand_in_kernels) == [
        {"repo_id": "SageAttention/sage-attention", "revision": None, "version": 3, "local_files_only": True}
    ]  # looked up offline only: a run never downloads a kernel


def test_prefetch_fetches_the_kernel_then_a_run_finds_it_offline(stand_in_kernels: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{STAND_IN}:{REPO}"}
    argv = [sys.executable, "-m", "vgkit", "prefetch", "--attention-backend", "flash_hub"]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("attention kernel flash_hub: ")
    assert _calls(stand_in_kernels) == [
        {"repo_id": "kernels-community/flash-attn2", "revision": None, "version": 3, "local_files_only": False}
    ]
    assert verify("flash_hub") == fetch("flash_hub")  # in the cache now, found with no network
    check = subprocess.run([*argv, "--check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and check.stdout.startswith("attention kernel flash_hub: ")
    assert _calls(stand_in_kernels)[-1]["local_files_only"] is True  # --check looks, never downloads
