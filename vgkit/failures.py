"""Why a clip or a load failed, in one word and one sentence: shared by logs and reports.

``classify(exc)`` walks the exception and its causes (``GenerationError`` wraps the pipeline's
own error) and returns a ``Failure``: a ``kind`` from ``KINDS``, the ``stage`` for
out-of-memory (load, denoise or decode; taken from the caller or read off the traceback), a
short human ``verdict`` with the usual fix, and the original exception's type and first line.
No torch import: a torch error is recognised by its class name and message.
"""

from __future__ import annotations

import subprocess
import traceback
from dataclasses import asdict, dataclass
from typing import Any

from vgkit.errors import ModelUnavailableError

__all__ = ["KINDS", "Failure", "classify"]

KINDS = ("out-of-memory", "timeout", "layout-mismatch", "kwargs-mismatch", "shape-error", "other")

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
    "timeout": "ran past its time limit: fewer steps or frames, a faster preset, or a longer limit",
    "layout-mismatch": "the checkpoint is missing or not the diffusers layout this model needs: run vgkit prefetch",
    "kwargs-mismatch": "the pipeline rejected a call argument: filter kwargs by its signature",
    "shape-error": "tensor shapes disagree (image conditioning, size or frame count): check the size and frame rule",
    "other": "unclassified failure: read the detail",
}


@dataclass(frozen=True)
class Failure:
    kind: str
    stage: str | None
    verdict: str
    error_type: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _oom_stage(exc: BaseException) -> str:
    """Read the stage off the traceback: a VAE decode frame, a loading frame, else denoising."""
    names = [frame.name for e in _chain(exc) for frame in traceback.extract_tb(e.__traceback__)]
    if any("decode" in name for name in names):
        return "decode"
    if any(name in ("from_pretrained", "load", "_load", "load_state_dict") for name in names):
        return "load"
    return "denoise"


def _kind(exc: BaseException) -> tuple[str, BaseException]:
    """The kind and the deepest exception in the chain that shows it (``exc`` itself for "other")."""
    for e in reversed(_chain(exc)):
        text = f"{type(e).__name__}: {e}".lower()
        if isinstance(e, MemoryError) or any(marker in text for marker in _OOM_MARKERS):
            return "out-of-memory", e
        if isinstance(e, (TimeoutError, subprocess.TimeoutExpired)):
            return "timeout", e
        if isinstance(e, ModelUnavailableError) or (
            isinstance(e, OSError) and any(marker in text for marker in _LAYOUT_MARKERS)
        ):
            return "layout-mismatch", e
        if isinstance(e, TypeError) and any(marker in text for marker in _KWARGS_MARKERS):
            return "kwargs-mismatch", e
        if isinstance(e, (RuntimeError, ValueError)) and any(marker in text for marker in _SHAPE_MARKERS):
            return "shape-error", e
    return "other", exc


def classify(exc: BaseException, *, stage: str | None = None) -> Failure:
    """Classify ``exc``; ``stage`` ("load", "denoise", "decode") overrides the traceback guess."""
    kind, root = _kind(exc)
    oom_stage = (stage or _oom_stage(exc)) if kind == "out-of-memory" else None
    first_line = (str(root).strip().splitlines() or [""])[0][:300]
    return Failure(
        kind=kind,
        stage=oom_stage,
        verdict=_VERDICTS[f"{kind}/{oom_stage}" if oom_stage else kind],
        error_type=type(root).__name__,
        detail=first_line,
    )
