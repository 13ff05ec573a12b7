"""Write the committed notebooks from their cell sources (run after editing a notebook's cells).

Notebooks stay thin: one annotated ``parameters`` cell, then a few calls into vgkit.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}


def _notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells, metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}})
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    return nb


def generate() -> nbformat.NotebookNode:
    params = new_code_cell(
        'model: str = "auto"  # model name (`vgkit models`) or "auto"\n'
        'spec: str = "params/demo.yaml"  # run spec (YAML or JSON), relative to the repository root\n'
        'out: str = ""  # run directory; empty means runs/<spec name>-<model>'
    )
    params.metadata["tags"] = ["parameters"]
    return _notebook(
        [
            new_markdown_cell(
                "# Generate a long video\n\n"
                "Shot cards -> chained clips -> deterministic stitch -> one bundle, with `vgkit`.\n"
                "Headless: `papermill notebooks/generate.ipynb out.ipynb -p model wan22` "
                "(or `vgkit demo`). Re-running resumes: clips whose artifacts verify are kept."
            ),
            params,
            new_code_cell(
                "from vgkit.notebook import generate, show_video\n\n"
                "result = generate(spec=spec, model=model, out=out or None)"
            ),
            new_code_cell(
                'print(f"final: {result.final_video} ({result.final_frames} frames, {result.final_seconds:.2f} s)")\n'
                'print(f"bundle: {result.bundle}")\n'
                "show_video(result.final_video)"
            ),
        ]
    )


def prefetch() -> nbformat.NotebookNode:
    params = new_code_cell(
        'models: str = "all"  # comma-separated model names (`vgkit models`), or "all"\n'
        "check_only: bool = False  # only report, offline, which models are complete in the cache\n"
        "verify_all: bool = False  # hash every cached file, not only new downloads"
    )
    params.metadata["tags"] = ["parameters"]
    return _notebook(
        [
            new_markdown_cell(
                "# Prefetch model weights\n\n"
                "Download-only stage: each model's safetensors, configs and tokenizers at its pinned revision "
                "into the HF cache, checksums verified; runs afterwards are offline.\n"
                "Headless: `papermill notebooks/prefetch.ipynb out.ipynb -p models wan22` "
                "(or `vgkit prefetch --model wan22`). A token comes from `HF_TOKEN` or `hf auth login`, "
                "never from a parameter."
            ),
            params,
            new_code_cell(
                "from vgkit.prefetch import format_table, run_prefetch\n\n"
                "rows = run_prefetch(models, check_only=check_only, verify_all=verify_all)"
            ),
            new_code_cell("print(format_table(rows))"),
        ]
    )


def main() -> None:
    nbformat.write(generate(), NOTEBOOKS / "generate.ipynb")
    nbformat.write(prefetch(), NOTEBOOKS / "prefetch.ipynb")


if __name__ == "__main__":
    main()
