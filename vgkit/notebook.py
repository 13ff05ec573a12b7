"""What the notebooks call, and how the CLI runs them headless with papermill.

Relative paths given to a notebook resolve against the repository root, so the same parameters
work from JupyterLab (cwd ``notebooks/``) and from papermill (cwd the repository root). A run
started from a notebook generates in a supervised worker process (``vgkit.worker``), as ``vgkit
run`` does: a hung pipeline call is killed with its process group past the deadline plus the
grace period, and the kernel stays alive to report it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from vgkit.errors import SpecError
from vgkit.failures import error_class_named
from vgkit.guard import DEFAULT_GRACE_S, check_grace
from vgkit.runner import JobResult, default_run_dir, plan_job
from vgkit.settings import apply_env_file, repo_root

__all__ = ["check_parameters", "generate", "run_generate_notebook", "show_video"]

# Embedding a video inline copies it into the notebook; above this size a link is shown instead.
MAX_EMBED_BYTES = 20 * 2**20


# What papermill can inject (``-p`` values are parsed as Python literals, ``-y`` as YAML).
_PLAIN = (str, int, float, bool, list, dict, type(None))


def check_parameters(namespace: dict[str, Any], declared: dict[str, type]) -> None:
    """Refuse, in one ``SpecError`` line, a parameter this notebook does not declare or one of the
    wrong type; the cell after the parameters calls it with ``globals()``.

    papermill only warns about an unknown ``-p`` name and injects any value it parses, so without
    this ``-p steps 10`` would run with other steps and ``-p show_clips maybe`` would be truthy.
    Unknown means a plain value (what papermill injects) under a public name the notebook does not
    declare; the kernel's own names (``In``, ``Out``, modules, functions) are not parameters.
    """
    names = ", ".join(declared)
    for name, value in sorted(namespace.items()):
        if name.startswith("_") or name in declared or name in ("In", "Out") or not isinstance(value, _PLAIN):
            continue
        raise SpecError(
            f"parameter {name} = {value!r}: this notebook has no such parameter; fix: use one of {names} "
            "(`papermill --help-notebook NOTEBOOK` describes them)"
        )
    for name, kind in declared.items():
        value = namespace.get(name)
        numeric = kind is float and isinstance(value, int) and not isinstance(value, bool)
        if numeric or (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
            continue
        example = {bool: "True or False", int: "a whole number", float: "a number", str: "a quoted text"}
        raise SpecError(
            f"parameter {name} = {value!r}: must be {kind.__name__}; fix: pass {example.get(kind, kind.__name__)}"
        )


def _from_root(path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else repo_root() / p


def generate(
    *,
    spec: str,
    model: str = "auto",
    preset: str | None = None,
    out: str | None = None,
    show_clips: bool = False,
    watchdog_grace_s: float = DEFAULT_GRACE_S,
) -> JobResult:
    """Run a whole job from a notebook (paths relative to the repository root) in a supervised
    worker; raises the run's vgkit error (``GuardrailError`` when the watchdog killed it).

    ``preset`` (None: the spec's, else auto) picks how the model sits in memory (``vgkit models``).
    ``show_clips`` displays each clip inline as it lands (interactive use; headless runs keep the
    executed notebook small by leaving it off).
    """
    from vgkit.worker import run_supervised

    apply_env_file()
    check_grace(watchdog_grace_s)
    run_dir = _from_root(out) if out else None
    if run_dir is None:
        spec_obj, choice, _ = plan_job(_from_root(spec), model=model, preset=preset)
        run_dir = repo_root() / default_run_dir(spec_obj, choice.model.name)
    return run_supervised(
        _from_root(spec),
        model=model,
        preset=preset,
        out=run_dir,
        grace_s=watchdog_grace_s,
        progress=lambda line: print(line, flush=True),
        on_clip=_display_clip if show_clips else None,
    )


def _display_clip(index: int, clip: Path) -> None:
    from IPython.display import display

    display(show_video(clip))


def show_video(path: Path) -> Any:
    """An inline player for ``path`` (a link when the file is too large to embed)."""
    from IPython.display import HTML, Video

    if path.stat().st_size <= MAX_EMBED_BYTES:
        return Video(str(path), embed=True, mimetype="video/mp4", html_attributes="controls loop")
    return HTML(f'<a href="{path}">{path.name}</a> ({path.stat().st_size / 2**20:.0f} MiB)')


def run_generate_notebook(
    notebook: Path,
    *,
    spec: Path,
    model: str,
    preset: str | None = None,
    out: Path | None,
    executed: Path | None,
    watchdog_grace_s: float = DEFAULT_GRACE_S,
) -> dict[str, Path]:
    """Execute the generate notebook headless; return the executed copy, final video and bundle.

    The spec is validated and the model chosen here first, so a bad spec fails in one line before
    a kernel starts; an error raised inside the notebook comes back as the same vgkit error.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    apply_env_file()
    check_grace(watchdog_grace_s)
    root = repo_root()
    spec_obj, choice, plan = plan_job(_from_root(spec), model=model, preset=preset)
    run_dir = _from_root(out) if out else root / default_run_dir(spec_obj, choice.model.name)
    executed = executed or run_dir / "notebook" / notebook.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(_from_root(notebook)),
            str(executed),
            parameters={
                "model": choice.model.name,
                "preset": str(plan.preset["name"]),
                "spec": str(_from_root(spec)),
                "out": str(run_dir),
                "show_clips": False,
                "watchdog_grace_s": watchdog_grace_s,
            },
            cwd=str(root),
            progress_bar=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
        )
    except PapermillExecutionError as exc:
        error = error_class_named(exc.ename)  # the same class, so the same exit code as `vgkit run`
        raise error(f"{exc.evalue} (notebook saved at {executed})") from None
    from vgkit.artifacts import RunLayout
    from vgkit.bundle import bundle_path

    return {
        "executed_notebook": executed,
        "final_video": RunLayout(run_dir).final,
        "bundle": bundle_path(run_dir),
    }
