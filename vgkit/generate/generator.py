"""Clip generators: one loaded pipeline that denoises a ``ClipRequest`` and decodes its latents.

Denoising and decoding are separate calls so the chain can keep the denoised latents on disk
before the VAE decode (the usual out-of-memory point) and check its deadlines around it.
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


def decode_with_retries(
    generator: ClipGenerator, latents: Any, *, index: int, attempts: tuple[str, ...] = DECODE_ATTEMPTS
) -> tuple[np.ndarray, list[str]]:
    """Decode ``latents``; on out-of-memory retry with the next, leaner attempt.

    Returns the frames and the attempts made. Raises ``GenerationError`` (the latents stay on
    disk, so a resume decodes them again without re-denoising) when every attempt ran out of memory.
    """
    tried: list[str] = []
    for attempt in attempts:
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


def _execution_device(pipe: Any) -> Any:
    """The device the pipeline computes on, which the decode's latents must go to.

    Not ``pipe.vae.device``: under model CPU offload the pipeline's own call ends with
    ``maybe_free_model_hooks()``, which parks every component on the CPU, and the offload hook
    moves the VAE back to the accelerator when ``vae.decode`` runs; under sequential or group
    offload the VAE's weights rest on the CPU (or ``meta``). diffusers' ``_execution_device``
    reads the offload hooks (accelerate's for model and sequential offload, the group-offload
    onload device) and is the module device when nothing is offloaded.
    """
    return pipe._execution_device


def _decode_wan(pipe: Any, latents: Any) -> Any:
    """The decode tail of ``WanImageToVideoPipeline.__call__`` (diffusers 0.42.1), as np frames."""
    import torch

    vae = pipe.vae
    latents = latents.to(device=_execution_device(pipe), dtype=vae.dtype)
    z_dim = vae.config.z_dim
    mean = torch.tensor(vae.config.latents_mean).view(1, z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z_dim, 1, 1, 1).to(latents.device, latents.dtype)
    with torch.no_grad():
        video = vae.decode(latents / inv_std + mean, return_dict=False)[0]
    return pipe.video_processor.postprocess_video(video, output_type="np")


def _decode_cogvideox(pipe: Any, latents: Any) -> Any:
    """The decode tail of ``CogVideoXImageToVideoPipeline.__call__`` (diffusers 0.42.1).

    With a temporal patch (1.5: ``patch_size_t=2``) the pipeline pads an odd latent frame count by
    one frame at the front and trims it before decoding; ``output_type="latent"`` returns the
    padded latents. vgkit's CogVideoX frame rule (8k+1) always gives an odd count, so exactly one
    padding frame is trimmed here.
    """
    import torch

    patch_t = pipe.transformer.config.patch_size_t
    if patch_t and latents.shape[1] % patch_t == 0:
        latents = latents[:, patch_t - 1 :]
    with torch.no_grad():
        video = pipe.decode_latents(latents.to(device=_execution_device(pipe), dtype=pipe.vae.dtype))
    return pipe.video_processor.postprocess_video(video=video, output_type="np")


def _decode_hunyuan(pipe: Any, latents: Any) -> Any:
    """The decode tail of ``HunyuanVideoImageToVideoPipeline.__call__`` (0.42.1), token_replace."""
    import torch

    latents = latents.to(device=_execution_device(pipe), dtype=pipe.vae.dtype) / pipe.vae_scaling_factor
    with torch.no_grad():
        video = pipe.vae.decode(latents, return_dict=False)[0]
    return pipe.video_processor.postprocess_video(video, output_type="np")


# How to decode each pipeline class's latents. A new family adds its pipeline's decode tail here.
_DECODERS: dict[str, Callable[[Any, Any], Any]] = {
    "WanImageToVideoPipeline": _decode_wan,
    "CogVideoXImageToVideoPipeline": _decode_cogvideox,
    "HunyuanVideoImageToVideoPipeline": _decode_hunyuan,
}


def _decoder_for(pipe: Any) -> Callable[[Any, Any], Any] | None:
    """The separate decode for ``pipe``, or None where the pipeline must decode in its own call
    (Hunyuan's 33-channel ``latent_concat`` variant trims decoded frames, not latents)."""
    if getattr(getattr(pipe, "transformer", None), "config", {}).get("image_condition_type") == "latent_concat":
        return None
    return _DECODERS.get(type(pipe).__name__)


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
        self.speed_record = apply_speed(self.pipe, self.speed, device=device, steps=steps)
        self.load_s = time.perf_counter() - started
        # Without a known decode tail the pipeline decodes inside its own call (no latents on disk).
        self._decode = _decoder_for(self.pipe)

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

        For a pipeline class with no decode tail in ``_DECODERS`` the call decodes too and the
        result carries ``frames_fhwc`` instead of latents.
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
            "output_type": "latent" if self._decode is not None else "np",
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
        if self._decode is None:
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
        if self._decode is None:
            raise GenerationError(f"pipeline {type(self.pipe).__name__}: vgkit has no separate VAE decode for it")
        try:
            return _to_uint8_fhwc(self._decode(self.pipe, latents))
        finally:
            # A retry's leaner mode is for this decode only; later clips decode as loaded.
            vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_min_width = saved
            self.pipe.maybe_free_model_hooks()
