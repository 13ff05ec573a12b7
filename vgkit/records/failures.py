"""Why a run or a clip failed, in one vocabulary shared by errors, clip logs, ``failure.json``,
sweep rows, events and exit codes.

``KINDS``: ``out-of-memory``, ``timeout`` (a deadline or a time limit), ``layout`` (a checkpoint
missing or not the layout the model needs), ``kwargs`` (the pipeline rejected a call argument),
``shape`` (tensor shapes disagree), ``infeasible`` (the plan was refused by projection before any
work), ``interrupted`` (Ctrl-C or a signal from outside) and ``other``.

Every ``VgkitError`` carries ``kind``, ``clip_index`` and ``phase`` (vgkit.errors).
``classify(exc)`` returns a ``Failure`` (``vgkit.records.schema.FailureRecord``, as every record writes
it): the error's own kind when it names one, else the kind read
off the exception and its causes (``GenerationError`` wraps the pipeline's own error; a torch
error is recognised by its class name and message, with no torch import), the phase (load,
denoise, decode, encode, ...; for out-of-memory read off the traceback when nobody says), a short
``verdict`` with the usual fix, and the exit code ``vgkit`` gives it.
"""

from __future__ import annotations

import subprocess
import traceback
from typing import Literal, get_args

from vgkit.errors import ModelUnavailableError, VgkitError
from vgkit.records.events import Event
from vgkit.records.schema import FailureRecord as Failure

__all__ = ["KINDS", "Failure", "Kind", "classify", "error_class_named", "exit_code_for", "failed_event"]

Kind = Literal["out-of-memory", "timeout", "layout", "kwargs", "shape", "infeasible", "interrupted", "other"]
KINDS: tuple[str, ...] = get_args(Kind)

_OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory", "outofmemoryerror")
_KWARGS_MARKERS = ("unexpected keyword argument", "required positional argument", "required keyword-only argument")
_SHAPE_MARKERS = (
    "size of tensor",
    "sizes of tensors",
    "shapes cannot be multiplied",
    "shape",
    "must match the size",
    "expected input",
    "dimension",
    "divisible by",
)
_LAYOUT_MARKERS = ("model_index.json", "no file named", "does not appear to have", "not in the local hf cache")

_VERDICTS = {
    "out-of-memory/load": "out of memory while loading the weights: use the 4090 preset (offload) or a bigger GPU",
    "out-of-memory/denoise": "out of memory while denoising: lower the size or frames, or use an offloading preset",
    "out-of-memory/decode": "out of memory in the VAE decode: enable VAE tiling (the 4090 preset does)",
    "out-of-memory": "out of memory (the process was killed, most likely by the kernel's OOM killer): lower the preset",
    "timeout": "ran past its time limit: fewer steps or frames, a faster preset, or a longer limit",
    "layout": "the checkpoint is missing or not the diffusers layout this model needs: run vgkit prefetch",
    "kwargs": "the pipeline rejected a call argument: filter kwargs by its signature",
    "shape": "tensor shapes disagree (image conditioning, size or frame count): check the size and frame rule",
    "infeasible": "the plan projects past its deadlines or the card: follow the fixes the refusal names, or --force",
    "interrupted": "stopped from outside (Ctrl-C or a signal): re-run the same command to resume",
    "other": "unclassified failure: read the message",
}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _oom_phase(exc: BaseException) -> str:
    """Read the phase off the traceback: a VAE decode frame, a loading frame, else denoising."""
    names = [frame.name for e in _chain(exc) for frame in traceback.extract_tb(e.__traceback__)]
    if any("decode" in name for name in names):
        return "decode"
    if any(name in ("from_pretrained", "load", "_load", "load_state_dict") for name in names):
        return "load"
    return "denoise"


def _kind_of(e: BaseException) -> str:
    """The kind that ``e`` alone shows ("other" when it shows none)."""
    if isinstance(e, VgkitError) and e.kind != "other":
        return e.kind
    text = f"{type(e).__name__}: {e}".lower()
    if isinstance(e, MemoryError) or any(marker in text for marker in _OOM_MARKERS):
        return "out-of-memory"
    if isinstance(e, (TimeoutError, subprocess.TimeoutExpired)):
        return "timeout"
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    if isinstance(e, ModelUnavailableError) or (
        isinstance(e, OSError) and any(marker in text for marker in _LAYOUT_MARKERS)
    ):
        return "layout"
    if isinstance(e, TypeError) and any(marker in text for marker in _KWARGS_MARKERS):
        return "kwargs"
    if isinstance(e, (RuntimeError, ValueError)) and any(marker in text for marker in _SHAPE_MARKERS):
        return "shape"
    return "other"


def _kind(exc: BaseException) -> tuple[str, BaseException]:
    """The kind and the exception that shows it: ``exc`` when it names its own kind, else the
    deepest cause that shows one (``exc`` itself for "other")."""
    if isinstance(exc, VgkitError) and exc.kind != "other":
        return exc.kind, exc
    for e in reversed(_chain(exc)):
        kind = _kind_of(e)
        if kind != "other":
            return kind, e
    return "other", exc


def exit_code_for(exc: BaseException) -> int:
    """What ``vgkit`` exits with for ``exc``: its class's code, 130 for Ctrl-C, else 1."""
    if isinstance(exc, VgkitError):
        return exc.exit_code
    return 130 if isinstance(exc, KeyboardInterrupt) else 1


def classify(exc: BaseException, *, phase: str | None = None) -> Failure:
    """Classify ``exc``. ``phase`` (load, denoise, decode, ...) is used when the error names none;
    for out-of-memory with neither, the phase is read off the traceback."""
    kind, root = _kind(exc)
    own_phase = exc.phase if isinstance(exc, VgkitError) else None
    found = own_phase or phase or (_oom_phase(exc) if kind == "out-of-memory" else None)
    verdict_key = f"{kind}/{found}" if f"{kind}/{found}" in _VERDICTS else kind
    root_line = (str(root).strip().splitlines() or [""])[0][:300]
    return Failure(
        kind=kind,
        phase=found,
        clip_index=exc.clip_index if isinstance(exc, VgkitError) else None,
        verdict=_VERDICTS[verdict_key],
        error_class=type(exc).__name__,
        message=str(exc),
        cause=None if root is exc else f"{type(root).__name__}: {root_line}",
        exit_code=exit_code_for(exc),
    )


def failed_event(exc: BaseException) -> Event:
    """The ``failed`` event for ``exc``: its kind, phase and class as figures, its message as detail."""
    failure = classify(exc)
    figures = {"kind": failure.kind, "phase": failure.phase, "error_class": failure.error_class}
    return Event("failed", clip_index=failure.clip_index, figures=figures, detail=failure.message)


def error_class_named(name: str) -> type[VgkitError]:
    """The ``VgkitError`` class called ``name`` (errors.py's, and those next to their code: the
    lock's, the run folder's, the guard's), so an error that crossed a process (a notebook kernel)
    keeps its exit code; ``VgkitError`` (exit 1) for any other name."""
    # Imported here so their classes exist whatever this process imported before (they import records).
    import vgkit.records.rundir
    import vgkit.supervise.guard
    import vgkit.supervise.lock  # noqa: F401

    found: list[type[VgkitError]] = [VgkitError]
    for cls in found:
        found += cls.__subclasses__()
    return next((cls for cls in found if cls.__name__ == name), VgkitError)
