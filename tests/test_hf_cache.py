"""One HF cache for every entry point: the CLI (``.venv/bin/vgkit``), papermill kernels and worker
children resolve it in ``vgkit.settings`` from the environment, then vgkit's env file (written by
``setup.sh`` through ``write_env_file``), then the ``/workspace`` default.

A ``/workspace``-like folder stands in for a rented box's volume (``VGKIT_WORKSPACE``); ``HOME``
points into tmp so ``~/.cache`` is a tmp folder too; the Hub is tests/hub_server.py on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from tests.hub_server import HubRepo, HubServer
from tests.stand_ins import stand_in_gpu
from vgkit import settings
from vgkit.errors import ModelUnavailableError
from vgkit.hub.cache import snapshot_dir
from vgkit.hub.checkpoints import locate_checkpoint, write_snapshot
from vgkit.models import adapter, choose_model

WAN = adapter("wan22")
LEGACY_LINE = 'export HF_HOME="${HF_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/huggingface}"'  # setup.sh before
NVIDIA_SMI = """#!/bin/sh
# Stands in for the driver's tool on this GPU-less machine: one 24 GB GPU.
echo "NVIDIA GeForce RTX 4090, 24564"
"""


class Box:
    """The paths of a rented box laid out in tmp."""

    def __init__(self, root: Path) -> None:
        self.workspace = root / "workspace"
        self.home = root / "home"
        self.env_file = root / "venv" / "vgkit.env"
        self.workspace.mkdir()
        self.home.mkdir()

    @property
    def workspace_hub(self) -> Path:
        return self.workspace / ".cache" / "huggingface" / "hub"

    @property
    def home_hub(self) -> Path:
        return self.home / ".cache" / "huggingface" / "hub"


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Box:
    """No HF variable set, as on a fresh instance; vgkit's env file not applied yet in this process."""
    box = Box(tmp_path)
    for name in ("HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(box.home))
    monkeypatch.setenv("VGKIT_WORKSPACE", str(box.workspace))
    monkeypatch.setenv("VGKIT_ENV_FILE", str(box.env_file))
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("VGKIT_HF_CACHE_SOURCE", "")  # so that teardown removes what apply_env_file sets
    monkeypatch.delenv("VGKIT_HF_CACHE_SOURCE")
    monkeypatch.setattr(settings, "_applied_env_file", False)
    return box


@pytest.fixture(scope="module")
def tiny_wan_files(hub_cache: Path) -> dict[str, bytes]:
    """The tiny Wan 2.2 checkpoint's files, served or cached under the real ``wan22`` repo id."""
    return HubRepo.from_dir(WAN.repo_id, locate_checkpoint(adapter("wan22-tiny"), cache_dir=hub_cache)).files


@pytest.fixture
def hub(box: Box, monkeypatch: pytest.MonkeyPatch, tiny_wan_files: dict[str, bytes]) -> Iterator[HubServer]:
    with HubServer([HubRepo(WAN.repo_id, dict(tiny_wan_files))]) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE")
        yield server


def _readme_vgkit(*args: str) -> subprocess.CompletedProcess[str]:
    """The README's ``.venv/bin/vgkit ...``: the console script, which sources nothing."""
    script = Path(sys.executable).parent / "vgkit"
    argv = [str(script)] if script.is_file() else [sys.executable, "-m", "vgkit"]
    return subprocess.run([*argv, *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def test_env_file_is_read_in_both_forms_and_the_user_wins(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    box.env_file.parent.mkdir()
    box.env_file.write_text(f"# comment\n{LEGACY_LINE}\nexport OTHER=x\n")
    assert settings.read_env_file() == {"HF_HOME": str(box.home / ".cache" / "huggingface"), "OTHER": "x"}
    box.env_file.write_text("HF_HOME='/srv/hf'\nNOT A LINE\n")
    assert settings.read_env_file() == {"HF_HOME": "/srv/hf"}
    assert settings.hub_cache_source() == (Path("/srv/hf/hub"), f"HF_HOME from {box.env_file}")
    monkeypatch.setenv("HF_HOME", str(box.home / "mine"))
    assert settings.hub_cache_source() == (box.home / "mine" / "hub", "HF_HOME set in the environment")
    box.env_file.write_text(f"{LEGACY_LINE}\nexport VGKIT_TEST_OTHER=x\n")
    monkeypatch.delenv("VGKIT_TEST_OTHER", raising=False)
    settings.apply_env_file()
    assert os.environ["HF_HOME"] == str(box.home / "mine")  # a variable the user set is never replaced
    assert os.environ["VGKIT_TEST_OTHER"] == "x"  # one the user did not set comes from the file


def test_setup_writes_the_workspace_default_that_bash_and_vgkit_read_alike(box: Box) -> None:
    assert settings.write_env_file() == box.env_file
    home = box.workspace / ".cache" / "huggingface"
    assert box.env_file.read_text().splitlines()[1] == f'export HF_HOME="${{HF_HOME:-{home}}}"'
    sourced = subprocess.run(
        ["bash", "-c", f'. "{box.env_file}"; echo "$HF_HOME"'],
        env={k: v for k, v in os.environ.items() if k != "HF_HOME"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert sourced.stdout.strip() == settings.read_env_file()["HF_HOME"] == str(home)
    assert settings.hub_cache_dir() == box.workspace_hub
    settings.apply_env_file()
    assert os.environ["HF_HOME"] == str(home)


def test_without_a_workspace_volume_the_default_is_the_hubs_own(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VGKIT_WORKSPACE", str(box.workspace / "absent"))
    assert settings.hub_cache_source() == (box.home_hub, "Hugging Face's default")


@pytest.mark.slow
def test_readme_prefetch_and_a_papermill_run_use_the_same_cache(box: Box, hub: HubServer, tmp_path: Path) -> None:
    """What failed before: the console script ignored .venv/vgkit.env and filled ~/.cache."""
    import papermill

    settings.write_env_file()  # what setup.sh does on a box with a /workspace volume
    done = _readme_vgkit("prefetch", "--model", "wan22")
    assert done.returncode == 0, done.stderr[-2000:]
    assert snapshot_dir(WAN.repo_id, WAN.revision, cache_dir=box.workspace_hub) is not None
    assert not box.home_hub.exists()

    models = _readme_vgkit("models")
    assert f"weights are looked up in the HF cache {box.workspace_hub} (HF_HOME from {box.env_file})" in models.stdout
    assert [line.split()[4] for line in models.stdout.splitlines() if line.startswith("wan22 ")] == ["cached"]

    one_shot = spec_dict(shots=spec_dict()["shots"][:1], overrides={"width": 32, "height": 32, "steps": 1})
    spec = write_spec(tmp_path / "spec.yaml", one_shot)
    executed = tmp_path / "generate.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "generate.ipynb"),
        str(executed),
        parameters={"model": "wan22-tiny", "spec": str(spec), "out": str(tmp_path / "run"), "show_clips": False},
        cwd=str(REPO),
        progress_bar=False,
    )
    text = "".join("".join(o.get("text", "")) for c in json.loads(executed.read_text())["cells"]
                   for o in c.get("outputs", []))  # fmt: skip
    assert f"vgkit: HF cache {box.workspace_hub} (HF_HOME from {box.env_file})" in text
    tiny = adapter("wan22-tiny")
    assert f"loading {tiny.title} from {box.workspace_hub}/" in text  # the run built and loaded it there
    assert not box.home_hub.exists()


def test_auto_on_a_gpu_names_weights_found_in_another_cache(
    box: Box, tiny_wan_files: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "files"
    for name, data in tiny_wan_files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes(data)
    write_snapshot(WAN.repo_id, "0" * 40, source, cache_dir=box.home_hub)  # e.g. `hf download` without HF_HOME
    settings.write_env_file()  # this box's runs look in /workspace
    monkeypatch.setenv("PATH", f"{stand_in_gpu(tmp_path, NVIDIA_SMI)}:{os.environ['PATH']}")
    monkeypatch.delenv("VGKIT_FORCE_CPU")
    monkeypatch.setenv("VGKIT_TORCH_PROBE", "tests.fake_gpu:torch_sees_the_gpu")  # torch's view: a usable GPU

    choice = choose_model("auto")
    assert (choice.model.name, choice.device) == ("wan22-tiny", "cpu")
    assert choice.reason == (
        f"auto: GPU NVIDIA GeForce RTX 4090, but the wan22 weights are in {box.home_hub}, not in the HF cache "
        f"this run uses ({box.workspace_hub}); fix: export HF_HUB_CACHE={box.home_hub}, or move them into "
        f"{box.workspace_hub}, then re-run; until then the tiny random-weight checkpoint"
    )
    with pytest.raises(ModelUnavailableError, match=r"fix: export HF_HUB_CACHE=.*home/\.cache/huggingface/hub"):
        choose_model("wan22")
    monkeypatch.setenv("HF_HUB_CACHE", str(box.home_hub))  # the fix
    assert choose_model("auto").model.name == "wan22"
