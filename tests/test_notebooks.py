"""Notebook regression checks: the committed reference runs pass nbval, and nbval catches a change."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

REFERENCE = REPO / "notebooks" / "reference"
SANITIZE = REPO / "tests" / "nbval_sanitize.cfg"
NOTEBOOKS = sorted(p.name for p in REFERENCE.glob("*.ipynb"))


def _prepare(name: str, tmp: Path) -> Path:
    """Copy a reference notebook into ``tmp`` with its scratch paths pointing into ``tmp``."""
    text = (REFERENCE / name).read_text()
    nb = json.loads(text)
    for cell in nb["cells"]:
        if "injected-parameters" in cell["metadata"].get("tags", []):
            source = "".join(cell["source"])
            cell["source"] = re.sub(r'"/tmp/vgkit-reference-[^/"]+', f'"{tmp}', source)
    dest = tmp / name
    dest.write_text(json.dumps(nb, indent=1))
    return dest


def _nbval(notebook: Path) -> subprocess.CompletedProcess[str]:
    (notebook.parent / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", str(notebook),
         "--nbval-sanitize-with", str(SANITIZE), "-c", str(notebook.parent / "pytest.ini")],
        cwd=notebook.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip


def test_every_notebook_has_a_reference_run() -> None:
    sources = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert sources == NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_reference_notebook_passes_nbval(name: str, tmp_path: Path) -> None:
    if name == "stitch_export.ipynb":  # restitches the run the generate reference made
        from vgkit.runner import run_job

        run_job(REPO / "params" / "preview.yaml", model="wan22-tiny", out=tmp_path / "run", progress=lambda _: None)
    done = _nbval(_prepare(name, tmp_path))
    assert done.returncode == 0, done.stdout[-4000:]


@pytest.mark.slow
def test_nbval_fails_when_a_checked_output_changes(tmp_path: Path) -> None:
    notebook = _prepare("generate.ipynb", tmp_path)
    text = notebook.read_text()
    assert "final: 361 frames = 15.04 s" in text
    notebook.write_text(text.replace("final: 361 frames = 15.04 s", "final: 362 frames = 15.08 s"))
    done = _nbval(notebook)
    assert done.returncode != 0
    assert "362 frames" in done.stdout
