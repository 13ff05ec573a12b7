"""What the notebooks call, and how the CLI runs them headless with papermill.

Relative paths given to a notebook resolve against the repository root, so the same parameters
work from JupyterLab (cwd ``notebooks/``) and from papermill (cwd the repository root). A run
started from a notebook generates in a supervised worker process (``vgkit.supervise.worker``), as ``vgkit
run`` does: a hung pipeline call is killed with its process group past the deadline plus the
grace period, and the kernel stays alive to report it.

Errors: ``one_line_errors()`` (the cell after each notebook's parameters calls it) makes the kernel
show a vgkit error or a Kernel -> Interrupt as one styled line (what failed, what was kept, what to
run next) instead of a traceback; any other exception (a bug) keeps its full traceback. Under
papermill that line is the cell's whole error output, so a failed headless run says it in one line.

Videos are shown through ``vgkit.evaluate.players``: a ``<video>`` whose URL is relative to the kernel's
working directory (JupyterLab: the notebook's folder), served by Jupyter's ``files/`` handler at
any size; nothing is embedded, so notebooks stay small.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from types import UnionType
from typing import Any, get_args

from vgkit.errors import InfeasiblePlanError, ModelUnavailableError, SpecError, VgkitError
from vgkit.generate.runner import JobResult, default_run_dir, plan_job
from vgkit.records.failures import error_class_named
from vgkit.settings import apply_env_file, repo_root
from vgkit.supervise.guard import DEFAULT_GRACE_S, check_grace

__all__ = ["check_parameters", "error_line", "generate", "one_line_errors", "run_generate_notebook", "show_video"]

# The run folder the last ``generate`` call worked in: the error line says what it kept.
_last_run: dict[str, Path] = {}


# What papermill can inject (``-p`` values are parsed as Python literals, ``-y`` as YAML).
_PLAIN = (str, int, float, bool, list, dict, type(None))


def check_parameters(namespace: dict[str, Any], declared: dict[str, type | UnionType]) -> None:
    """Refuse, in one ``SpecError`` line, a parameter this notebook does not declare or one of the
    wrong type; the cell after the parameters calls it with ``globals()``.

    papermill only warns about an unknown ``-p`` name and injects any value it parses, so without
    this ``-p steps 10`` would run with other steps and ``-p show_clips maybe`` would be truthy.
    Unknown means a plain value (what papermill injects) under a public name the notebook does not
    declare; the kernel's own names (``In``, ``Out``, modules, functions) are not parameters.
    A type ``X | None`` also takes None (a setting left to the run's spec); ``X | Y`` takes either
    (``ray: bool | str``: False, True or an address).
    """
    names = ", ".join(declared)
    for name, value in sorted(namespace.items()):
        if name.startswith("_") or name in declared or name in ("In", "Out") or not isinstance(value, _PLAIN):
            continue
        raise SpecError(
            f"parameter {name} = {value!r}: this notebook has no such parameter; fix: use one of {names} "
            "(`papermill --help-notebook NOTEBOOK` describes them)"
        )
    for name, declared_kind in declared.items():
        value = namespace.get(name)
        kinds, optional = _kinds(declared_kind)
        if (optional and value is None) or any(_is_a(value, kind) for kind in kinds):
            continue
        example = {bool: "True or False", int: "a whole number", float: "a number", str: "a quoted text"}
        or_none = " or None" if optional else ""
        raise SpecError(
            f"parameter {name} = {value!r}: must be {' or '.join(k.__name__ for k in kinds)}{or_none}; "
            f"fix: pass {' or '.join(example.get(k, k.__name__) for k in kinds)}{or_none}"
        )


def _is_a(value: object, kind: type) -> bool:
    """``value`` is a ``kind`` (an int is a float too; a bool is not an int)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _kinds(kind: type | UnionType) -> tuple[tuple[type, ...], bool]:
    """``X | Y | None`` -> ``((X, Y), True)``; a plain type -> ``((kind,), False)``."""
    if isinstance(kind, UnionType):
        others = tuple(arg for arg in get_args(kind) if arg is not type(None))
        return others, len(others) < len(get_args(kind))
    return (kind,), False


def _from_root(path: str | Path) -> Path:
    return repo_root() / path  # an absolute path stays as it is


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
    ``show_clips`` shows a live progress widget (bars per clip and run, steps/s, ETAs, phase, a
    thumbnail of each clip's last frame as it lands); off (headless), progress is plain lines. Either
    way the run deadline is shown once, and again only when it is close (``vgkit.lab.progress_view``).
    """
    from vgkit.lab.progress_view import view
    from vgkit.supervise.worker import run_supervised

    apply_env_file()
    check_grace(watchdog_grace_s)
    if out:
        run_dir = _from_root(out)
    else:
        spec_obj, choice, _ = plan_job(_from_root(spec), model=model, preset=preset)
        run_dir = repo_root() / default_run_dir(spec_obj, choice.model.name)
    _last_run["run_dir"] = run_dir
    progress, on_clip = view(show_clips)
    return run_supervised(
        _from_root(spec),
        model=model,
        preset=preset,
        out=run_dir,
        grace_s=watchdog_grace_s,
        progress=progress,
        on_clip=on_clip,
    )


def show_video(path: Path, *, width_px: int = 640) -> Any:
    """A player for ``path`` (any size) with a link that opens the file (``vgkit.evaluate.players``)."""
    from IPython.display import HTML

    from vgkit.evaluate.players import video_player

    return HTML(video_player(Path(path), width_px=width_px))


# -- one-line errors ----------------------------------------------------------------------------
_ANSI = {"failed": "\x1b[1;31m", "label": "\x1b[1m", "reset": "\x1b[0m"}


def _kept() -> str:
    run_dir = _last_run.get("run_dir")
    if run_dir is None:
        return "every file as it was"
    count = len(list((run_dir / "clips").glob("clip_*.mp4")))
    shown = run_dir.relative_to(repo_root()) if run_dir.is_relative_to(repo_root()) else run_dir
    return f"{count} finished clip{'s' * (count != 1)} in {shown}"


def _next_step(exc: BaseException) -> str:
    from vgkit.records.rundir import RunDirBusyError
    from vgkit.supervise.lock import DeviceBusyError

    if isinstance(exc, InfeasiblePlanError):
        return "apply one of the fixes above (a preset, fewer steps, a smaller size), then run again"
    if isinstance(exc, SpecError):
        return "fix the value named above (parameters cell or spec), then run again"
    if isinstance(exc, ModelUnavailableError):
        return "fetch the weights with notebooks/prefetch.ipynb (or `vgkit prefetch --model NAME`), then run again"
    if isinstance(exc, DeviceBusyError | RunDirBusyError):
        return "wait for the other job to end (or choose another out folder), then run again"
    if "run_dir" in _last_run:
        return "run the generate cell again: it resumes and reuses the finished clips"
    return "run the cell again once the cause above is fixed"


def error_line(exc: BaseException, *, styled: bool = False) -> str:
    """One line for a vgkit error or an interrupt: what failed, what was kept, what to run next."""
    failed = (
        "interrupted (Kernel -> Interrupt)" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
    )
    failed = " ".join(failed.split())  # one line, whatever the message held
    c = _ANSI if styled else dict.fromkeys(_ANSI, "")
    return (
        f"{c['failed']}{failed}{c['reset']} | {c['label']}kept:{c['reset']} {_kept()} | "
        f"{c['label']}next:{c['reset']} {_next_step(exc)}"
    )


def _show_one_line(
    shell: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: Any = None
) -> list[str]:
    """IPython custom exception handler: the error output is the one styled line, no traceback."""
    stb = [error_line(value, styled=True)]
    shell._showtraceback(etype, value, stb)  # the kernel's error message: ename, evalue and this line
    return stb


def one_line_errors() -> None:
    """Show vgkit errors and interrupts in this kernel as one line (no-op outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((VgkitError, KeyboardInterrupt), _show_one_line)


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
            cwd=str(executed.parent),  # players' relative URLs then resolve where the notebook is saved
            progress_bar=False,
            stdout_file=sys.stdout,
            stderr_file=sys.stderr,
        )
    except PapermillExecutionError as exc:
        error = error_class_named(exc.ename)  # the same class, so the same exit code as `vgkit run`
        raise error(f"{exc.evalue} (notebook saved at {executed})") from None
    from vgkit.finish.bundle import bundle_path
    from vgkit.records.artifacts import RunLayout

    return {
        "executed_notebook": executed,
        "final_video": RunLayout(run_dir).final,
        "bundle": bundle_path(run_dir),
    }


# -- JupyterLab ---------------------------------------------------------------------------------
SAVED_OUTPUTS = Path("runs") / "notebooks"  # where a repository notebook's outputs are saved
CHECKOUT_MARKER = Path(*Path(__file__).parts[-3:])  # vgkit/lab/notebook.py: a folder holding it is a vgkit checkout


def keep_templates_clean(*, model: dict[str, Any], path: str, contents_manager: Any, **_: Any) -> None:
    """JupyterLab pre-save hook (``vgkit lab`` sets it): a committed notebook of a vgkit checkout's
    ``notebooks/`` folder is saved with its outputs to ``runs/notebooks/NAME`` (ignored by git) and
    back in place without them, its metadata as committed, so running it never changes the repo."""
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    os_path = Path(contents_manager._get_os_path(path)).resolve()
    root = os_path.parent.parent
    if os_path.parent.name != "notebooks" or not (root / CHECKOUT_MARKER).is_file() or not os_path.is_file():
        return
    import nbformat

    from vgkit.records.artifacts import atomic_write_bytes

    content = model["content"]
    executed = root / SAVED_OUTPUTS / os_path.name
    atomic_write_bytes(executed, (json.dumps(content, indent=1, ensure_ascii=False) + "\n").encode())
    committed = nbformat.read(os_path, as_version=4)
    content["metadata"] = copy.deepcopy(dict(committed.metadata))
    for cell in content.get("cells", []):
        cell.get("metadata", {}).pop("execution", None)
        cell.get("metadata", {}).pop("trusted", None)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None


def lab_command(*, port: int = 8888, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """``jupyter lab`` as ``vgkit lab`` starts it: on 127.0.0.1 with its token (reach it through an
    SSH tunnel), ``--allow-root`` when run as root (the norm on rented GPUs), and the hook that
    keeps the repository's notebooks free of outputs (``keep_templates_clean``)."""
    import os

    return [
        *(sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}"),
        f"--ServerApp.root_dir={repo_root()}",
        "--ContentsManager.pre_save_hook=vgkit.lab.notebook.keep_templates_clean",
        *(["--allow-root"] if os.geteuid() == 0 else []),
        *extra,
    ]
