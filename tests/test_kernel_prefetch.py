"""A notebook kernel that generated can prefetch: the real kernel (papermill), a real run in it
(in-process ``run_job`` and the supervised ``generate``), then a real prefetch from the local Hub
stand-in (tests/hub_server.py) in the same kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from tests.hub_server import HubServer
from tests.test_prefetch import hub, tiny_files  # noqa: F401  (fixtures: the Hub stand-in and its files)

CELLS = [
    "import json, os\n"
    "import huggingface_hub.constants as hf\n"
    "from vgkit.lab.notebook import generate\n"
    "from vgkit.hub.prefetch import prefetch\n"
    "from vgkit.generate.runner import run_job\n"
    "before = (os.environ.get('HF_HUB_OFFLINE'), hf.HF_HUB_OFFLINE)",
    "run_job(SPEC, out=OUT + '/in-process', progress=lambda _: None)\n"
    "generate(spec=SPEC, model='wan22-tiny', out=OUT + '/supervised')",
    "after = (os.environ.get('HF_HUB_OFFLINE'), hf.HF_HUB_OFFLINE)\n"
    "report = prefetch('wan22', progress=lambda _: None)\n"
    "print(json.dumps({'before': before, 'after': after, 'complete': report.complete,\n"
    "                  'downloaded': report.downloaded}))",
]


@pytest.mark.slow
def test_a_kernel_that_generated_can_prefetch(hub: HubServer, tmp_path: Path) -> None:  # noqa: F811
    import nbformat
    import papermill

    data = spec_dict(overrides={"width": 32, "height": 32, "steps": 1})
    data["shots"] = data["shots"][:1]
    spec = write_spec(tmp_path / "spec.yaml", data)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    notebook.cells.insert(0, nbformat.v4.new_code_cell(f"SPEC = {str(spec)!r}\nOUT = {str(tmp_path / 'runs')!r}"))
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source, executed = tmp_path / "kernel.ipynb", tmp_path / "executed.ipynb"
    nbformat.write(notebook, source)
    papermill.execute_notebook(str(source), str(executed), cwd=str(REPO), progress_bar=False)
    outputs = [o for c in nbformat.read(executed, as_version=4).cells for o in c.get("outputs", [])]
    result = json.loads("".join(o.get("text", "") for o in outputs if o.get("name") == "stdout").splitlines()[-1])
    assert result["before"] == result["after"] == [None, False]  # online before and after both jobs
    assert result["complete"] and result["downloaded"] > 10  # fetched from the Hub, not refused offline
    assert (tmp_path / "runs" / "supervised" / "final" / "final_stitched.mp4").is_file()
    assert (tmp_path / "runs" / "in-process" / "final" / "final_stitched.mp4").is_file()


@pytest.fixture(autouse=True)
def _kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel imports vgkit from this checkout."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
