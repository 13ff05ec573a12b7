"""Write the committed notebooks from their cell sources (run after editing a notebook's cells).

Notebooks stay thin: one annotated ``parameters`` cell, then a few calls into vgkit.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL = {"name": "vgkit", "display_name": "Python (vgkit)", "language": "python"}  # setup.sh registers it


def _notebook(cells: list[nbformat.NotebookNode]) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells, metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}})
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    return nb


def _ignore_output(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Tag a cell whose output nbval must not compare (embedded video, timings)."""
    cell.metadata.setdefault("tags", []).append("nbval-ignore-output")
    return cell


def _parameters(source: str) -> list[nbformat.NotebookNode]:
    """The tagged ``parameters`` cell (annotated assignments, one a line), then the cell that turns
    vgkit errors into one line (``one_line_errors``) and refuses unknown or mistyped parameters
    (``check_parameters``)."""
    params = new_code_cell(source)
    params.metadata["tags"] = ["parameters"]
    declared = [line.split(":", 1) for line in source.splitlines()]
    types = ", ".join(f'"{name.strip()}": {rest.split("=", 1)[0].strip()}' for name, rest in declared)
    check = new_code_cell(
        "from vgkit.lab.notebook import check_parameters, one_line_errors\n\n"
        f"one_line_errors()  # vgkit errors and interrupts show as one line\ncheck_parameters(globals(), {{{types}}})"
    )
    return [params, check]


def _doctor(models: str = "", *, imports: str = "") -> nbformat.NotebookNode:
    """The first output of every notebook: `vgkit doctor`'s summary for ``models`` (a Python
    expression; empty: what ``auto`` picks). tests/nbval_sanitize.cfg masks its machine-specific lines."""
    call = f"summary(models={models})" if models else "summary()"
    return new_code_cell(f"from vgkit.host.doctor import summary\n{imports}\nprint({call})")


def generate() -> nbformat.NotebookNode:
    params = _parameters(
        'model: str = "auto"  # model name (`vgkit models`) or "auto"\n'
        'preset: str = ""  # memory/speed preset (4090, 80gb, cpu); empty means the spec\'s, else auto\n'
        'spec: str = "params/demo.yaml"  # run spec (YAML or JSON), relative to the repository root\n'
        'out: str = ""  # run directory; empty means runs/<spec name>-<model>\n'
        "show_clips: bool = True  # live progress widget and each clip's last frame as it lands; off: plain lines\n"
        "watchdog_grace_s: float = 60.0  # a hung worker is killed this long past the clip/run deadline"
    )
    return _notebook(
        [
            new_markdown_cell(
                "# Generate a long video\n\n"
                "Shot cards -> chained clips -> deterministic stitch -> one bundle, with `vgkit`.\n"
                "Headless: `papermill notebooks/generate.ipynb out.ipynb -p model wan22` "
                "(or `vgkit demo`). Re-running resumes: clips whose artifacts verify are kept.\n"
                "The job runs in a worker process watched like `vgkit run`'s: past a deadline plus "
                "`watchdog_grace_s` its whole process group is killed and the kernel stays alive."
            ),
            *params,
            _doctor("[model]"),
            new_code_cell(
                "from vgkit.lab.notebook import generate, show_video\n\n"
                "result = generate(\n"
                "    spec=spec,\n"
                "    model=model,\n"
                "    preset=preset or None,\n"
                "    out=out or None,\n"
                "    show_clips=show_clips,\n"
                "    watchdog_grace_s=watchdog_grace_s,\n"
                ")"
            ),
            new_code_cell(
                'print(f"final: {result.final_video} ({result.final_frames} frames, {result.final_seconds:.2f} s)")\n'
                'print(f"bundle: {result.bundle}")'
            ),
            _ignore_output(new_code_cell("show_video(result.final_video)")),
            new_markdown_cell(
                "## Shot board\n\n"
                "Every shot of the run: a short animated preview, the shot card, the seed, timings and the QA "
                "verdicts (`vgkit qa` measures them here if the run has no `qa.json`). Click a clip name to play it."
            ),
            _ignore_output(  # previews are images, timings vary
                new_code_cell(
                    "from IPython.display import HTML\n\n"
                    "from vgkit.evaluate.shot_board import read_board\n\n"
                    "board = read_board(result.run_dir, measure_qa=True)\n"
                    "HTML(board.html())"
                )
            ),
            new_code_cell('print("\\n".join(board.lines()))  # the same board as text: status, seed, frames, QA'),
        ]
    )


def stitch_export() -> nbformat.NotebookNode:
    params = _parameters(
        'run_dir: str = "runs/demo-wan22-tiny"  # a generated run directory (the CPU quick start writes this one)\n'
        'transition: str | None = None  # "cut" or "crossfade"\n'
        "overlap_frames: int | None = None  # crossfade length in frames (0 for a cut)\n"
        'colour: str | None = None  # "off" or "mean_std" (match each clip to the first clip)\n'
        'seam_smoothing: str | None = None  # "off" or "minterpolate" (cuts only)\n'
        "usd_per_hour: float = 0.0  # machine rate for a cost estimate in the manifest; 0 means none"
    )
    return _notebook(
        [
            new_markdown_cell(
                "# Restitch, preview the seams, export the bundle\n\n"
                "Rebuild `final/final_stitched.mp4` of a finished run, look at the frames around every join, then "
                "write and verify the bundle. The stitch settings are the run spec's `stitch:` section; each "
                "parameter given (not None) overrides its field, as `vgkit stitch` flags do. Headless: "
                "`papermill notebooks/stitch_export.ipynb out.ipynb -p run_dir runs/<name> -p transition crossfade "
                "-p overlap_frames 12`."
            ),
            *params,
            _doctor(),
            new_code_cell(
                "from pathlib import Path\n\n"
                "from IPython.display import Image, display\n\n"
                "from vgkit.finish.pack import write_bundle\n"
                "from vgkit.finish.manifest import stitch_and_record\n"
                "from vgkit.finish.preview import write_seam_grid\n"
                "from vgkit.settings import repo_root\n"
                "from vgkit.finish.stitch import settings_for_run\n"
                "from vgkit.finish.verify import verify\n\n"
                "run = Path(run_dir) if Path(run_dir).is_absolute() else repo_root() / run_dir\n"
                "settings, source = settings_for_run(\n"
                "    run,\n"
                "    transition=transition,\n"
                "    overlap_frames=overlap_frames,\n"
                "    colour=colour,\n"
                "    seam_smoothing=seam_smoothing,\n"
                ")\n"
                "for field, origin in source.items():  # spec: the run spec's stitch section; flag: a parameter above\n"
                '    print(f"{field}: {getattr(settings, field)} ({origin})")\n'
                "manifest = stitch_and_record(\n"
                "    run, settings, usd_per_hour=usd_per_hour or None, settings_source=source\n"
                ")\n"
                'stitch = manifest["stitch"]\n'
                'seconds = manifest["actual"]["final_seconds"]\n'
                "print(f\"final: {run / stitch['final']['path']} \"\n"
                "      f\"({stitch['final_frames']} frames, {seconds:.2f} s)\")\n"
                'if manifest["cost"]:\n'
                "    print(f\"cost estimate: ${manifest['cost']['estimate_usd']:.4f}\")"
            ),
            _ignore_output(
                new_code_cell(
                    "# frames around each seam: one row per join, clip i-1 on the left, clip i on the right\n"
                    'final = run / "final" / "final_stitched.mp4"\n'
                    'seams = write_seam_grid(final, stitch, run / "preview" / "seams.png")\n'
                    "display(Image(filename=str(seams)))"
                )
            ),
            new_code_cell(
                'bundle = write_bundle(run)\nprint(f"bundle: {bundle} ({verify(bundle)} clips, every hash verified)")'
            ),
        ]
    )


def prefetch() -> nbformat.NotebookNode:
    params = _parameters(
        'models: str = "wan22"  # comma-separated model names (`vgkit models`), or "all" (about 100 GB)\n'
        "check_only: bool = False  # only report, offline, which models are complete in the cache\n"
        "verify_all: bool = False  # hash every cached file, not only new downloads"
    )
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
            *params,
            _doctor(),  # models may be "all", which names no run; the doctor's weights line lists each model
            new_code_cell(
                "from vgkit.hub.prefetch import run_prefetch\n"
                "from vgkit.hub.results import format_table\n\n"
                "rows = run_prefetch(models, check_only=check_only, verify_all=verify_all)"
            ),
            new_code_cell("print(format_table(rows))"),
        ]
    )


def compare_models() -> nbformat.NotebookNode:
    params = _parameters(
        'spec: str = "params/preview.yaml"  # run spec (YAML or JSON), relative to the repository root\n'
        'models: str = "wan22-tiny"  # comma-separated, run one at a time, e.g. "wan22,hunyuan-i2v,cogvideox15"\n'
        'out: str = "runs/sweep-preview"  # sweep directory: a run dir and bundle per model, and report/\n'
        "usd_per_hour: float = 0.0  # GPU price for the billing timeline; 0 means no price\n"
        "shot: int = -1  # clip index to play side by side; -1 plays the final videos\n"
        "ray: bool | str = False  # False: in turn here; True: Ray over this machine's GPUs; or a Ray address"
    )
    return _notebook(
        [
            new_markdown_cell(
                "# Compare models on one shot list\n\n"
                "Runs the spec (by default the three-shot preview: every model makes every clip) on each model "
                "in turn (a failing model is recorded and the sweep goes on), "
                "measures every clip (black, static, seams, colour drift, sharpness), and writes the report.\n"
                "With `ray` (True, or a cluster's address) the models run at once, one worker per GPU, and a "
                "table shows each run live (node and GPU, stage, clip, step) as its events arrive.\n"
                "Headless: `papermill notebooks/compare_models.ipynb out.ipynb -p models wan22,cogvideox15` "
                "(or `vgkit sweep SPEC --models ... [--ray [ADDRESS]]`)."
            ),
            *params,
            _doctor("parse_models(models)", imports="from vgkit.evaluate.sweep import parse_models\n"),
            _ignore_output(  # progress lines carry timings
                new_code_cell(
                    "from IPython.display import HTML\n\n"
                    "from vgkit.evaluate.players import side_by_side\n"
                    "from vgkit.evaluate.report.summary import summarize_run\n"
                    "from vgkit.evaluate.report.html import qa_table_html\n"
                    "from vgkit.settings import repo_root\n"
                    "from vgkit.evaluate.sweep import parse_models\n"
                    "from vgkit.lab.compare import compare\n\n"
                    "root = repo_root()\n"
                    "result = compare(\n"
                    "    root / spec,\n"
                    "    models=parse_models(models),\n"
                    "    out=root / out,\n"
                    "    usd_per_hour=usd_per_hour or None,\n"
                    "    ray=ray,  # on Ray: a live table of the runs\n"
                    ")"
                )
            ),
            new_code_cell('for row in result.rows:\n    print(f"{row.model}: {row.status}: {row.detail}")'),
            new_markdown_cell("## The same shot side by side (play, pause or seek one: the others follow)"),
            _ignore_output(
                new_code_cell(
                    "HTML(side_by_side([row.run_dir for row in result.rows], clip_index=None if shot < 0 else shot))"
                )
            ),
            _ignore_output(  # the path depends on where the notebook runs
                new_code_cell(
                    "# the final videos side by side in one file, to share (ffmpeg; same order as above)\n"
                    "from vgkit.evaluate.compare_video import side_by_side_video\n\n"
                    'shared = root / out / "report" / "side_by_side.mp4"\n'
                    "side_by_side_video([row.run_dir for row in result.rows], shared)\n"
                    'print(f"comparison video: {shared}")  # vgkit.lab.notebook.show_video(shared) plays it'
                )
            ),
            new_markdown_cell("## QA per clip"),
            new_code_cell("HTML(qa_table_html([summarize_run(row.run_dir) for row in result.rows]))"),
            new_code_cell('print(f"report: {result.report_markdown}")\nprint(f"report: {result.report_html}")'),
        ]
    )


def shot_cards() -> nbformat.NotebookNode:
    params = _parameters(
        'spec: str = "params/demo.yaml"  # the spec to edit, relative to the repository root\n'
        'model: str = "auto"  # the model the plan, preview and generate use; "auto" means the spec\'s'
    )
    return _notebook(
        [
            new_markdown_cell(
                "# Shot cards\n\n"
                "Edit a spec: the run's model, preset, seed, negative prompt and steps, the global constants, the "
                "stitch settings, and "
                "each shot (text, camera, duration, seed, keyframe image). Every change is checked as `vgkit check` "
                "would: the plan and prompts below, or the error next to its field, with Save disabled until it is "
                "fixed. Saving keeps the file's comments and formatting. *Preview shot* generates that shot alone "
                "at a few steps; *Save and generate* runs the whole spec (the supervised worker `vgkit run` uses). "
                "The *Stitch* fields are the spec's `stitch:` section (cut or crossfade and its overlap frames, "
                "colour matching and its anchor, seam smoothing), checked like the rest; "
                "`stitch_export.ipynb` can override them for a restitch."
            ),
            *params,
            _doctor("[model]"),
            _ignore_output(
                new_code_cell(
                    "from vgkit.lab.editor import SpecEditor\n\n"
                    'editor = SpecEditor.from_file(spec, model=None if model == "auto" else model)\n'
                    "editor.widget"
                )
            ),
            new_code_cell("print(editor.status)"),
        ]
    )


def main() -> None:
    nbformat.write(generate(), NOTEBOOKS / "generate.ipynb")
    nbformat.write(stitch_export(), NOTEBOOKS / "stitch_export.ipynb")
    nbformat.write(prefetch(), NOTEBOOKS / "prefetch.ipynb")
    nbformat.write(compare_models(), NOTEBOOKS / "compare_models.ipynb")
    nbformat.write(shot_cards(), NOTEBOOKS / "shot_cards.ipynb")


if __name__ == "__main__":
    main()
