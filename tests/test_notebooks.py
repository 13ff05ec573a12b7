"""Notebook regression checks: the committed reference runs pass nbval, and nbval catches a change."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import UnionType

import pytest

from tests.conftest import REPO
from vgkit.errors import SpecError

REFERENCE = REPO / "notebooks" / "reference"
SANITIZE = REPO / "tests" / "nbval_sanitize.cfg"
NOTEBOOKS = sorted(p.name for p in REFERENCE.glob("*.ipynb"))


def _prepare(name: str, tmp: Path, *, as_name: str | None = None) -> Path:
    """Copy a reference notebook into ``tmp`` (as ``as_name``) with its scratch paths pointing into ``tmp``."""
    text = (REFERENCE / name).read_text()
    nb = json.loads(text)
    for cell in nb["cells"]:
        if "injected-parameters" in cell["metadata"].get("tags", []):
            source = "".join(cell["source"])
            cell["source"] = re.sub(r'"/tmp/vgkit-reference-[^/"]+', f'"{tmp}', source)
    dest = tmp / (as_name or name)
    dest.write_text(json.dumps(nb, indent=1))
    return dest


def _nbval(*notebooks: Path) -> subprocess.CompletedProcess[str]:
    """nbval on ``notebooks`` in that order, in one pytest process (each notebook its own kernel)."""
    folder = notebooks[0].parent
    (folder / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", *map(str, notebooks),
         "--nbval-sanitize-with", str(SANITIZE), "-c", str(folder / "pytest.ini")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip


def test_every_notebook_has_a_reference_run() -> None:
    sources = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
    assert sources == NOTEBOOKS


@pytest.mark.slow
def test_every_reference_notebook_passes_nbval_and_a_changed_output_fails(tmp_path: Path) -> None:
    """All in one nbval session; generate first, then stitch_export, which restitches the run the
    generate notebook made (one run, as in the references). Last, a copy of the shot_cards
    reference with one printed figure changed: nbval fails that cell, and only that one."""
    first = ["generate.ipynb", "stitch_export.ipynb"]
    order = first + [name for name in NOTEBOOKS if name not in first]
    changed = _prepare("shot_cards.ipynb", tmp_path, as_name="changed_shot_cards.ipynb")
    text = changed.read_text()
    assert "final: 361 frames = 15.04 s" in text  # shot_cards prints the plan as generate does
    changed.write_text(text.replace("final: 361 frames = 15.04 s", "final: 362 frames = 15.08 s"))
    done = _nbval(*(_prepare(name, tmp_path) for name in order), changed)
    cells = sum(_code_cells(name) for name in order) + _code_cells("shot_cards.ipynb") - 1
    assert re.search(rf"\b1 failed, {cells} passed\b", done.stdout), done.stdout[-4000:]
    [failed] = re.findall(r"^FAILED (\S+)", done.stdout, re.M)
    assert failed.startswith("changed_shot_cards.ipynb::") and "362 frames" in done.stdout
    assert (tmp_path / "run" / "final" / "final_stitched.mp4").is_file()


def _code_cells(name: str) -> int:
    """The cells nbval runs as tests in a reference notebook: its code cells."""
    return sum(cell["cell_type"] == "code" for cell in json.loads((REFERENCE / name).read_text())["cells"])


@pytest.mark.parametrize(
    ("parameters", "line"),
    [
        ({"steps": 10}, "SpecError: parameter steps = 10: this notebook has no such parameter; fix: use one of model"),
        ({"show_clips": "maybe"}, "SpecError: parameter show_clips = 'maybe': must be bool; fix: pass True or False"),
    ],
)
def test_papermill_refuses_unknown_and_mistyped_parameters_before_any_work(
    tmp_path: Path, parameters: dict[str, object], line: str
) -> None:
    """papermill itself only warns about an unknown name and injects any value; the notebook's
    check cell refuses both in one line, before anything runs (no run folder is made)."""
    import papermill

    out = tmp_path / "out.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        papermill.execute_notebook(
            str(REPO / "notebooks" / "generate.ipynb"),
            str(out),
            parameters={"model": "wan22-tiny", "out": str(tmp_path / "run"), **parameters},
            cwd=str(REPO),
            progress_bar=False,
        )
    assert line in f"{raised.value.ename}: {raised.value.evalue}"
    assert not (tmp_path / "run").exists()


def test_check_parameters_ignores_the_kernels_own_names_and_widens_int_to_float() -> None:
    from vgkit.lab.notebook import check_parameters

    namespace = {"In": [""], "Out": {}, "_": None, "json": json, "grace": 5, "name": "x", "print_it": print}
    check_parameters(namespace, {"grace": float, "name": str})  # no error
    with pytest.raises(SpecError, match=r"parameter grace = True: must be float"):
        check_parameters({**namespace, "grace": True}, {"grace": float, "name": str})


def test_check_parameters_takes_none_for_an_optional_type_and_still_checks_its_values() -> None:
    from vgkit.lab.notebook import check_parameters

    declared: dict[str, type | UnionType] = {"transition": str | None, "overlap_frames": int | None}
    check_parameters({"transition": None, "overlap_frames": None}, declared)
    check_parameters({"transition": "cut", "overlap_frames": 3}, declared)
    with pytest.raises(SpecError, match=r"parameter overlap_frames = True: must be int or None; fix: pass a whole"):
        check_parameters({"transition": None, "overlap_frames": True}, declared)
    with pytest.raises(SpecError, match=r"parameter transition = 3: must be str or None"):
        check_parameters({"transition": 3, "overlap_frames": None}, declared)


def test_papermill_cli_exits_non_zero_and_the_notebook_error_is_one_line(tmp_path: Path) -> None:
    """The papermill command itself prints its own traceback; the notebook's part of it, the error
    of the failed cell, is the one line (no Python traceback from vgkit). ``-p spec 42`` arrives as
    an int: the CLI guesses types from the text (an unknown name: the papermill API test above)."""
    line = "SpecError: parameter spec = 42: must be str; fix: pass a quoted text"
    done = subprocess.run(
        [sys.executable, "-m", "papermill", str(REPO / "notebooks" / "generate.ipynb"), str(tmp_path / "o.ipynb"),
         "-p", "model", "wan22-tiny", "-p", "spec", "42"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    error = done.stderr.split('Exception encountered at "In [', 1)[1].splitlines()[1:]
    shown = [text for text in error if text.strip()]
    assert len(shown) == 1 and shown[0].startswith(line), shown
    assert "| kept: every file as it was" in shown[0] and "| next: fix the value named above" in shown[0]


def _run_cells(*sources: str) -> list[dict[str, object]]:
    """Execute cells in a real kernel (errors allowed); the outputs of each cell."""
    import nbclient
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nbclient.NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=60).execute()
    return [cell.outputs for cell in nb.cells]


def test_vgkit_errors_and_interrupts_show_one_line_and_bugs_keep_their_traceback(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "clips").mkdir(parents=True)
    for i in range(2):
        (run / "clips" / f"clip_{i:03d}.mp4").write_bytes(b"x")
    outputs = _run_cells(
        "from pathlib import Path\nfrom vgkit.lab import notebook\n\nnotebook.one_line_errors()",
        "from vgkit.errors import GuardrailError\n\nraise GuardrailError('clip 3: deadline passed')",
        f"notebook._last_run['run_dir'] = Path({str(run)!r})\nraise KeyboardInterrupt",
        "1 / 0",
    )
    guard, interrupt, bug = (cell[0] for cell in outputs[1:])
    assert guard["ename"] == "GuardrailError" and len(guard["traceback"]) == 1
    assert re.sub(r"\x1b\[[\d;]*m", "", guard["traceback"][0]).startswith(
        "GuardrailError: clip 3: deadline passed | kept: every file as it was | next: run the cell again"
    )
    plain = re.sub(r"\x1b\[[\d;]*m", "", interrupt["traceback"][0])
    assert len(interrupt["traceback"]) == 1 and plain == (
        f"interrupted (Kernel -> Interrupt) | kept: 2 finished clips in {run} | "
        "next: run the generate cell again: it resumes and reuses the finished clips"
    )
    assert bug["ename"] == "ZeroDivisionError" and len(bug["traceback"]) > 1


def test_saving_a_repository_notebook_keeps_it_clean_and_its_outputs_in_runs(tmp_path: Path) -> None:
    """The pre-save hook `vgkit lab` installs, through jupyter_server's own contents manager."""
    import nbformat
    from jupyter_server.services.contents.filemanager import FileContentsManager

    from vgkit.lab.notebook import CHECKOUT_MARKER, keep_templates_clean, lab_command

    assert (REPO / CHECKOUT_MARKER).is_file()  # what marks this repository as a vgkit checkout
    (tmp_path / CHECKOUT_MARKER).parent.mkdir(parents=True)
    (tmp_path / CHECKOUT_MARKER).write_text("")
    (tmp_path / "notebooks").mkdir()
    committed = (REPO / "notebooks" / "prefetch.ipynb").read_bytes()
    (tmp_path / "notebooks" / "prefetch.ipynb").write_bytes(committed)
    (tmp_path / "scratch.ipynb").write_bytes(committed)
    manager = FileContentsManager(root_dir=str(tmp_path), pre_save_hook=keep_templates_clean)
    for path in ("notebooks/prefetch.ipynb", "scratch.ipynb"):
        model = manager.get(path)
        model["content"].metadata["language_info"] = {"name": "python", "version": "3.11.2"}
        code = next(c for c in model["content"].cells if c.cell_type == "code")
        code.outputs = [nbformat.v4.new_output("stream", text="ran\n")]
        code.execution_count = 1
        manager.save(model, path)
    assert (tmp_path / "notebooks" / "prefetch.ipynb").read_bytes() == committed
    assert '"text": "ran\\n"' in (tmp_path / "runs" / "notebooks" / "prefetch.ipynb").read_text()
    assert "ran" in (tmp_path / "scratch.ipynb").read_text()  # any other notebook saves as it is
    argv = lab_command(port=9999)
    assert "--ip=127.0.0.1" in argv and "--port=9999" in argv
    assert "--ContentsManager.pre_save_hook=vgkit.lab.notebook.keep_templates_clean" in argv
    assert ("--allow-root" in argv) == (os.geteuid() == 0)
