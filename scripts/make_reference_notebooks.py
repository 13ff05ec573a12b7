"""Execute each notebook headless on the tiny model and save it as the nbval reference.

    .venv/bin/python scripts/make_reference_notebooks.py

The references live in ``notebooks/reference/``; ``tests/test_notebooks.py`` re-runs them with
nbval (volatile text such as paths and timings is sanitised by ``tests/nbval_sanitize.cfg``).
Regenerate after changing a notebook or what it prints, and review the diff.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "notebooks" / "reference"

# notebook -> parameters, run in this order; "{tmp}" becomes a scratch directory (rewritten again
# when nbval runs it). stitch_export restitches the run that generate made.
REFERENCE_RUNS: dict[str, dict[str, object]] = {
    "generate.ipynb": {"model": "wan22-tiny", "spec": "params/preview.yaml", "out": "{tmp}/run", "show_clips": False},
    "stitch_export.ipynb": {"run_dir": "{tmp}/run", "transition": "crossfade", "overlap_frames": 6},
    "prefetch.ipynb": {"models": "wan22", "check_only": True},
    # "nope" is no model: the reference shows its failure row beside the finished run (nbval checks both)
    "compare_models.ipynb": {"models": "wan22-tiny,nope", "spec": "params/preview.yaml", "out": "{tmp}/sweep"},
    "shot_cards.ipynb": {"spec": "params/preview.yaml"},
}


def main() -> None:
    os.environ.setdefault("VGKIT_FORCE_CPU", "1")
    REFERENCE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vgkit-reference-") as tmp:
        # A scratch HF cache, as in the tests: the runs print where their cache came from, and
        # tests/test_notebooks.py replays them with HF_HUB_CACHE set (tests/conftest.py).
        os.environ["HF_HUB_CACHE"] = f"{tmp}/hf-hub-cache"
        for name, params in REFERENCE_RUNS.items():
            filled = {k: v.replace("{tmp}", tmp) if isinstance(v, str) else v for k, v in params.items()}
            print(f"executing {name} with {filled}", file=sys.stderr)
            papermill.execute_notebook(
                str(ROOT / "notebooks" / name),
                str(REFERENCE / name),
                parameters=filled,
                cwd=str(ROOT),
                progress_bar=False,
            )
            _drop_ignored_outputs(REFERENCE / name)


def _drop_ignored_outputs(path: Path) -> None:
    """nbval never compares cells tagged nbval-ignore-output; drop their (video, widget) outputs and
    the widgets' saved state (the editor's thumbnails)."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if "nbval-ignore-output" in cell.metadata.get("tags", []):
            cell.outputs = []
    nbformat.write(nb, path)


if __name__ == "__main__":
    main()
