"""A job is offline for the Hub only while it runs: the process (a notebook kernel) is back to
its own setting afterwards, also after an error, so it can prefetch after generating."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.errors import SpecError
from vgkit.generate.runner import run_job
from vgkit.settings import hub_offline, offline_hub


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel as a user starts it: no ``HF_HUB_OFFLINE``, the Hub client imported and online."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)


def _assert_online() -> None:
    import huggingface_hub.constants as hf_constants

    assert os.environ.get("HF_HUB_OFFLINE") is None
    assert not hub_offline()
    assert hf_constants.HF_HUB_OFFLINE is False and not hf_constants.is_offline_mode()


@pytest.mark.usefixtures("online")
def test_a_job_is_offline_while_it_runs_and_the_kernel_is_online_after(tmp_path: Path) -> None:
    import huggingface_hub.constants as hf_constants

    data = spec_dict()
    data["shots"] = data["shots"][:1]
    seen: list[tuple[str | None, bool]] = []
    run_job(
        write_spec(tmp_path / "spec.yaml", data),
        out=tmp_path / "run",
        progress=lambda _: seen.append((os.environ.get("HF_HUB_OFFLINE"), hf_constants.HF_HUB_OFFLINE)),
    )
    assert seen and set(seen) == {("1", True)}
    _assert_online()


@pytest.mark.usefixtures("online")
def test_a_failed_job_restores_the_setting(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(seed=-1))
    with pytest.raises(SpecError):
        run_job(spec, out=tmp_path / "run", progress=lambda _: None)
    _assert_online()


@pytest.mark.usefixtures("online")
def test_hub_client_imported_inside_the_block_is_put_back_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """``huggingface_hub.constants`` is removed from ``sys.modules`` and imported again inside the
    block, so it reads ``HF_HUB_OFFLINE=1`` at import, as when a job is the first to import it."""
    import importlib
    import sys

    import huggingface_hub
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(huggingface_hub, "constants", hf_constants)  # put back after the re-import
    monkeypatch.delitem(sys.modules, "huggingface_hub.constants")
    with offline_hub() as offline:
        fresh = importlib.import_module("huggingface_hub.constants")
        assert offline and fresh.HF_HUB_OFFLINE is True
    assert fresh.HF_HUB_OFFLINE is False


def test_an_explicit_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with offline_hub() as offline:
        assert not offline and os.environ["HF_HUB_OFFLINE"] == "0"
    assert os.environ["HF_HUB_OFFLINE"] == "0"
