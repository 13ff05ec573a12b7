"""What every model adapter shares: frame rules, baseline configs, loading, calling.

An adapter is frozen data plus a few hooks. A model family's file (``wan22.py``, ...) defines
what differs: repo id and revision, pipeline class, native size, frame rule, baseline, dtypes,
and how to build its tiny random-weight checkpoint. Nothing here imports torch at import time.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgkit.errors import ModelUnavailableError, SpecError

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

__all__ = ["Baseline", "FrameRule", "ModelAdapter", "filter_call_kwargs", "quiet_hf_libraries"]


def quiet_hf_libraries() -> None:
    """Silence diffusers/transformers progress bars and info chatter (vgkit prints its own)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.set_verbosity_error()
        lib.disable_progress_bar()


@dataclass(frozen=True)
class FrameRule:
    """Valid clip lengths: ``num_frames % modulus == remainder`` (Wan: 4k+1)."""

    modulus: int
    remainder: int = 1

    def is_valid(self, num_frames: int) -> bool:
        return num_frames >= self.modulus + self.remainder and num_frames % self.modulus == self.remainder

    def nearest(self, num_frames: int) -> int:
        """The valid frame count nearest ``num_frames`` (ties go up)."""
        low = (num_frames - self.remainder) // self.modulus * self.modulus + self.remainder
        high = low + self.modulus
        best = low if num_frames - low < high - num_frames else high
        return max(best, self.modulus + self.remainder)

    def describe(self) -> str:
        return f"{self.modulus}k+{self.remainder}"


@dataclass(frozen=True)
class Baseline:
    """The locked baseline generation config of a model; a run changes it only by overrides."""

    fps: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    max_sequence_length: int


@dataclass(frozen=True)
class ModelAdapter:
    """One model as vgkit runs it. Subclasses add family hooks; instances live in the registry."""

    name: str
    title: str
    repo_id: str
    revision: str
    pipeline_class: str
    baseline: Baseline
    frame_rule: FrameRule
    size_multiple: int
    needs_gpu: bool
    tiny: bool = False
    download_gb: float = 0.0
    call_defaults: dict[str, Any] = field(default_factory=dict)

    # -- checks -------------------------------------------------------------------------------
    def check_size(self, width: int, height: int, *, field_name: str = "overrides") -> None:
        """Refuse a size the pipeline would silently round (``SpecError`` naming the fix)."""
        m = self.size_multiple
        for label, value in (("width", width), ("height", height)):
            if value % m:
                lower, upper = value // m * m, (value // m + 1) * m
                raise SpecError(
                    f"{field_name}.{label} = {value}: {self.name} needs multiples of {m}; "
                    f"fix: use {lower or upper} or {upper}"
                )

    # -- loading --------------------------------------------------------------------------------
    def pipeline_type(self) -> type[DiffusionPipeline]:
        import diffusers

        cls: type[DiffusionPipeline] = getattr(diffusers, self.pipeline_class)
        return cls

    def load(self, snapshot: Path, *, device: str) -> DiffusionPipeline:
        """Load the pipeline from a snapshot directory onto ``device`` ("cpu" or "cuda")."""
        index = snapshot / "model_index.json"
        if not index.is_file():
            raise ModelUnavailableError(
                f"model {self.name!r}: {snapshot} has no model_index.json (not a diffusers layout); "
                f"fix: vgkit prefetch --model {self.name}"
            )
        quiet_hf_libraries()
        return self._load(snapshot, device=device)

    def _load(self, snapshot: Path, *, device: str) -> DiffusionPipeline:
        import torch

        pipe = self.pipeline_type().from_pretrained(str(snapshot), dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(device)

    # -- tiny checkpoints -----------------------------------------------------------------------
    def build_tiny(self, dest: Path) -> None:
        """Write this model's tiny random-weight checkpoint (diffusers layout) into ``dest``."""
        raise NotImplementedError(f"{self.name} has no tiny checkpoint")


def filter_call_kwargs(pipe: Any, kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Keep only the kwargs ``pipe.__call__`` accepts; return them and the sorted dropped names.

    All three pipelines raise ``TypeError`` on unknown kwargs (FACTS.md); the dropped names are
    logged, never silently lost.
    """
    params = inspect.signature(pipe.__call__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs), []
    kept = {k: v for k, v in kwargs.items() if k in params}
    return kept, sorted(set(kwargs) - set(kept))
