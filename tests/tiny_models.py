"""Helpers shared by the per-model tests: a loaded tiny generator and a small clip request."""

from __future__ import annotations

import numpy as np

from vgkit.generate.generator import ClipRequest, InProcessGenerator
from vgkit.hub.checkpoints import locate_checkpoint
from vgkit.models import adapter


def tiny_generator(name: str) -> InProcessGenerator:
    model = adapter(name)
    return InProcessGenerator(model, locate_checkpoint(model), device="cpu")


def clip_request(name: str, num_frames: int, *, width: int = 64, height: int = 64) -> ClipRequest:
    """A 2-step request for ``num_frames`` at ``width`` x ``height`` from a two-colour image."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[height // 2 :] = (30, 90, 200)
    return ClipRequest(
        index=0,
        image_hwc=image,
        prompt="a boat sails at dawn",
        negative_prompt="blur",
        seed=3,
        num_frames=num_frames,
        width=width,
        height=height,
        steps=2,
        guidance_scale=6.0,
        max_sequence_length=adapter(name).baseline.max_sequence_length,
    )


def direct_frames(gen: InProcessGenerator, request: ClipRequest) -> np.ndarray:
    """What the pipeline's own call (denoise and decode in one) returns for ``request``, as uint8."""
    import torch
    from PIL import Image

    frames = gen.pipe(
        image=Image.fromarray(request.image_hwc),
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        height=request.height,
        width=request.width,
        num_frames=request.num_frames,
        num_inference_steps=request.steps,
        guidance_scale=request.guidance_scale,
        max_sequence_length=request.max_sequence_length,
        generator=torch.Generator("cpu").manual_seed(request.seed),
        output_type="np",
        **gen.model.call_defaults,
    ).frames[0]
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)
