"""Set-up's bytecode step (vgkit.host.bytecode): written for what vgkit imports, whatever the environment says."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vgkit.host import bytecode


def test_bytecode_is_written_even_where_python_would_not_write_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vgkit_warm_probe.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # as PYTHONDONTWRITEBYTECODE=1 sets it
    monkeypatch.setattr(bytecode, "LIBRARIES", ("vgkit_warm_probe", "vgkit_not_installed_probe"))
    monkeypatch.setattr(bytecode, "_model_classes", lambda: [("json", "JSONDecoder")])
    monkeypatch.delitem(sys.modules, "vgkit_warm_probe", raising=False)
    assert bytecode.warm_bytecode() == ["vgkit_not_installed_probe"]
    assert list((tmp_path / "__pycache__").glob("vgkit_warm_probe.*.pyc"))
    monkeypatch.delitem(sys.modules, "vgkit_warm_probe")


def test_every_family_s_pipeline_and_component_classes_are_warmed() -> None:
    wanted = bytecode._model_classes()
    for pipeline in ("WanImageToVideoPipeline", "CogVideoXImageToVideoPipeline", "HunyuanVideoImageToVideoPipeline"):
        assert ("diffusers", pipeline) in wanted
    assert ("transformers", "UMT5EncoderModel") in wanted and ("diffusers", "AutoencoderKLWan") in wanted


def test_a_kernel_s_imports_get_bytecode_where_python_would_not_write_it_and_a_failed_cell_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel is this environment's own (ipykernel's spec, sys.executable) and runs without
    PYTHONDONTWRITEBYTECODE, so what its first cell imports is written; a cell that fails is
    reported, not raised (set-up goes on)."""
    (tmp_path / "vgkit_kernel_probe.py").write_text("VALUE = 1\n")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert bytecode.warm_kernel("import vgkit_kernel_probe") is None
    assert list((tmp_path / "__pycache__").glob("vgkit_kernel_probe.*.pyc"))
    assert bytecode.warm_kernel("raise SystemError('x')") == "its first cell ended 'error'"
