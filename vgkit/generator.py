"""Clip generators: one loaded pipeline that turns a ``ClipRequest`` into frames.

``InProcessGenerator`` keeps the pipeline in this process for the whole run. The chain only sees
the ``ClipGenerator`` protocol, so a generator can also live in a worker subprocess or a Ray
actor without the chain changing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vgkit.errors import GenerationError
from vgkit.models import ModelAdapter
from vgkit.models.base import filter_call_kwargs

__all__ = ["ClipGenerator", "ClipRequest", "ClipResult", "InProcessGenerator"]


@dataclass(frozen=True)
class ClipRequest:
    index: int
    image_hwc: np.ndarray
    prompt: str
    negative_prompt: str
    seed: int
    num_frames: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    max_sequence_length: int


@dataclass
class ClipResult:
    frames_fhwc: np.ndarray
    call_kwargs: dict[str, Any]
    dropped_kwargs: list[str]
    timings_s: dict[str, float] = field(default_factory=dict)


class ClipGenerator(Protocol):
    model: ModelAdapter
    device: str
    load_s: float

    def pipeline_info(self) -> dict[str, Any]: ...

    def generate(self, request: ClipRequest) -> ClipResult: ...


def _to_uint8_fhwc(frames: Any) -> np.ndarray:
    """Pipeline output (np float in [0, 1], F x H x W x C, batch of one) -> uint8 (F, H, W, 3)."""
    array = np.asarray(frames)
    if array.ndim == 5:
        array = array[0]
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return np.ascontiguousarray(array)


class InProcessGenerator:
    """Loads ``model`` from ``snapshot`` once and serves every clip of a run."""

    def __init__(self, model: ModelAdapter, snapshot: Path, *, device: str) -> None:
        self.model = model
        self.device = device
        self.snapshot = snapshot
        started = time.perf_counter()
        self.pipe: Any = model.load(snapshot, device=device)
        self.load_s = time.perf_counter() - started

    def pipeline_info(self) -> dict[str, Any]:
        return {
            "pipeline_class": type(self.pipe).__name__,
            "scheduler_class": type(self.pipe.scheduler).__name__,
            "scheduler_config": {k: v for k, v in dict(self.pipe.scheduler.config).items() if not k.startswith("_")},
        }

    def generate(self, request: ClipRequest) -> ClipResult:
        import torch
        from PIL import Image

        wanted: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "height": request.height,
            "width": request.width,
            "num_frames": request.num_frames,
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance_scale,
            "max_sequence_length": request.max_sequence_length,
            "output_type": "np",
            **self.model.call_defaults,
        }
        kwargs, dropped = filter_call_kwargs(self.pipe, wanted)
        generator = torch.Generator(device="cpu").manual_seed(request.seed)
        started = time.perf_counter()
        try:
            output = self.pipe(image=Image.fromarray(request.image_hwc), generator=generator, **kwargs)
        except torch.OutOfMemoryError as exc:
            raise GenerationError(f"clip {request.index:03d}: out of GPU memory: {exc}") from exc
        except (RuntimeError, ValueError, TypeError) as exc:
            raise GenerationError(f"clip {request.index:03d}: {type(exc).__name__}: {exc}") from exc
        frames = _to_uint8_fhwc(output.frames)
        return ClipResult(
            frames_fhwc=frames,
            call_kwargs=kwargs,
            dropped_kwargs=dropped,
            timings_s={"pipeline_s": time.perf_counter() - started},
        )
