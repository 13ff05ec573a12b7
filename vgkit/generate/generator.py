"""Clip generators: one loaded pipeline that denoises a ``ClipRequest`` and decodes its latents.

Denoising and decoding are separate calls so the chain can keep the denoised latents on disk
before the VAE decode (the usual out-of-memory point) and check its deadlines around it. Nothing
here is specific to a model family: the adapter's hooks say whether and how latents are decoded
(``ModelAdapter.decodes_separately``/``decode_latents``) and which quirks the speed features
must respect.
``InProcessGenerator`` keeps the pipeline in this process for the whole run. The chain only sees
the ``ClipGenerator`` protocol, so a generator can also live in a worker subprocess or a Ray
actor, or be a stand-in in tests, without the chain changing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vgkit.errors import GenerationError
from vgkit.models import ModelAdapter
from vgkit.models.base import filter_call_kwargs
from vgkit.models.speed import SpeedOptions, apply_speed, denoise_context

__all__ = [
    "DECODE_ATTEMPTS",
    "ClipGenerator",
    "ClipRequest",
    "Denoised",
    "InProcessGenerator",
    "StepHook",
    "decode_with_retries",
]

# A step hook gets (finished steps, total steps) after every denoising step; True stops the loop.
StepHook = Callable[[int, int], bool]

# Decode attempts, in order: as loaded, with VAE tiling, with tiles of half the default size.
DECODE_ATTEMPTS = ("as_loaded", "vae_tiling", "vae_tiling_small")


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
class Denoised:
    """Latents straight from the denoising loop (before the VAE), and how the call was made."""

    latents: Any
    call_kwargs: dict[str, Any]
    dropped_kwargs: list[str]
    steps_done: int
    interrupted: bool
    denoise_s: float = 0.0
    frames_fhwc: np.ndarray | None = None  # set when the pipeline had to decode inside its call
    speed_notes: dict[str, Any] = field(default_factory=dict)  # e.g. magcache-calibrate's mag_ratios


class ClipGenerator(Protocol):
    model: ModelAdapter
    device: str
    load_s: float

    def pipeline_info(self) -> dict[str, Any]: ...

    def denoise(self, request: ClipRequest, *, on_step: StepHook | None = None) -> Denoised: ...

    def decode(self, latents: Any, *, attempt: str) -> np.ndarray: ...


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a CUDA (or CPU allocator) out-of-memory error, however torch spelled it."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def decode_with_retries(generator: ClipGenerator, latents: Any, *, index: int) -> tuple[np.ndarray, list[str]]:
    """Decode ``latents``; on out-of-memory retry with the next, leaner attempt.

    Returns the frames and the attempts made. Raises ``GenerationError`` (the latents stay on
    disk, so a resume decodes them again without re-denoising) when every attempt ran out of memory.
    """
    tried: list[str] = []
    for attempt in DECODE_ATTEMPTS:
        tried.append(attempt)
        try:
            return generator.decode(latents, attempt=attempt), tried
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise GenerationError(f"clip {index:03d}: VAE decode failed: {type(exc).__name__}: {exc}") from exc
            _free_accelerator_memory()
    raise GenerationError(
        f"clip {index:03d}: VAE decode ran out of memory in every attempt ({', '.join(tried)}); the denoised "
        "latents are kept: fix: free GPU memory or lower width/height, then re-run with --resume"
    )


def _free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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

    def __init__(
        self,
        model: ModelAdapter,
        snapshot: Path,
        *,
        device: str,
        preset: str | None = None,
        speed: SpeedOptions | None = None,
        steps: int | None = None,
    ) -> None:
        """Load once with ``preset``; apply ``speed`` (run ``steps``, for magcache) to the transformer."""
        self.model = model
        self.device = device
        self.snapshot = snapshot
        self.speed = speed or SpeedOptions()
        started = time.perf_counter()
        self.pipe: Any = model.load(snapshot, device=device, preset=preset)
        self.speed_record = apply_speed(self.pipe, self.speed, device=device, steps=steps, model=model)
        self.load_s = time.perf_counter() - started
        # Without a decode tail the pipeline decodes inside its own call (no latents on disk).
        self.decodes_separately = model.decodes_separately(self.pipe)

    def pipeline_info(self) -> dict[str, Any]:
        return {
            "pipeline_class": type(self.pipe).__name__,
            "preset_applied": getattr(self.pipe, "vgkit_preset", None),
            "speed_applied": self.speed_record,
            "scheduler_class": type(self.pipe.scheduler).__name__,
            "scheduler_config": {k: v for k, v in dict(self.pipe.scheduler.config).items() if not k.startswith("_")},
        }

    def denoise(self, request: ClipRequest, *, on_step: StepHook | None = None) -> Denoised:
        """Run the denoising loop only (``output_type="latent"``); ``on_step`` may stop it early.

        Where the model does not decode separately (``ModelAdapter.decodes_separately``) the call
        decodes too and the result carries ``frames_fhwc`` instead of latents.
        """
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
            "output_type": "latent" if self.decodes_separately else "np",
            **self.model.call_defaults,
        }
        kwargs, dropped = filter_call_kwargs(self.pipe, wanted)
        done = {"steps": 0, "stopped": False}

        def callback(pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            done["steps"] = step + 1
            if on_step is not None and on_step(step + 1, request.steps):
                # Cooperative interrupt: the pipeline skips its remaining steps (FACTS.md).
                pipe._interrupt = True
                done["stopped"] = True
            return callback_kwargs

        generator = torch.Generator(device="cpu").manual_seed(request.seed)
        started = time.perf_counter()
        try:
            with denoise_context(self.pipe, self.speed) as speed_notes:
                output = self.pipe(
                    image=Image.fromarray(request.image_hwc),
                    generator=generator,
                    callback_on_step_end=callback,
                    **kwargs,
                )
        except torch.OutOfMemoryError as exc:
            raise GenerationError(f"clip {request.index:03d}: out of GPU memory while denoising: {exc}") from exc
        except (RuntimeError, ValueError, TypeError) as exc:
            raise GenerationError(f"clip {request.index:03d}: {type(exc).__name__}: {exc}") from exc
        if not self.decodes_separately:
            frames, latents = _to_uint8_fhwc(output.frames), None
        else:
            frames, latents = None, output.frames.detach().to("cpu")
        return Denoised(
            latents=latents,
            frames_fhwc=frames,
            call_kwargs=kwargs,
            dropped_kwargs=dropped,
            steps_done=int(done["steps"]),
            interrupted=bool(done["stopped"]),
            denoise_s=time.perf_counter() - started,
            speed_notes=dict(speed_notes),
        )

    def generate(self, request: ClipRequest) -> Denoised:
        """Denoise and decode one clip in one go, with ``frames_fhwc`` set.

        No deadline checks and no latents on disk: for tools, benchmarks and tests. The chain uses
        ``denoise`` and ``decode`` separately.
        """
        result = self.denoise(request)
        if result.frames_fhwc is None:
            result.frames_fhwc = self.decode(result.latents, attempt="as_loaded")
        return result

    def decode(self, latents: Any, *, attempt: str) -> np.ndarray:
        """Decode denoised latents to uint8 frames (F, H, W, 3); ``attempt`` picks the VAE memory mode.

        The latents go to the pipeline's execution device, whatever the preset's offload; after
        the decode (or its failure) ``maybe_free_model_hooks()`` parks offloaded components on
        the CPU again, as the pipeline's own call does after its decode, so the VAE does not sit
        in GPU memory through the next clip's denoising and a retry starts from a freed device.
        """
        if not self.decodes_separately:
            raise GenerationError(f"model {self.model.name}: vgkit has no separate VAE decode for it")
        vae = self.pipe.vae
        saved = (vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_min_width)
        if attempt == "vae_tiling":
            vae.enable_tiling()
        elif attempt == "vae_tiling_small":
            vae.enable_tiling(
                tile_sample_min_height=max(32, vae.tile_sample_min_height // 2),
                tile_sample_min_width=max(32, vae.tile_sample_min_width // 2),
            )
        elif attempt != "as_loaded":
            raise ValueError(f"attempt = {attempt!r}: not one of {DECODE_ATTEMPTS}")
        try:
            return _to_uint8_fhwc(self.model.decode_latents(self.pipe, latents))
        finally:
            # A retry's leaner mode is for this decode only; later clips decode as loaded.
            vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_min_width = saved
            self.pipe.maybe_free_model_hooks()
