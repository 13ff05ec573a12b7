"""Presets: how a model sits in memory on one class of machine, and how one is applied.

A family lists its presets (``ModelAdapter.presets``); ``apply_preset`` places a loaded pipeline
as one says. Nothing here imports torch at import time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CPU_PRESET", "Preset", "apply_preset", "torch_dtype"]


@dataclass(frozen=True)
class Preset:
    """How a model runs on one class of machine (``4090``, ``80gb``, ``cpu``): placement, dtypes,
    and, where the native size or step count cannot fit, how much smaller to generate.

    ``offload`` (one of ``Preset.offload_modes()``): ``"none"`` (all on the device), ``"model"``
    (``enable_model_cpu_offload``: one whole component at a time on the device), ``"sequential"``
    (``enable_sequential_cpu_offload``: each leaf module's weights on the device only for its own
    forward), ``"group"`` (``enable_group_offload`` at leaf level, no streams) or ``"group-block"``
    (block level, one block per group, no streams; the VAE at leaf level). Model and sequential offload move weights
    between the CPU and an accelerator, so they need one; group offload also runs on CPU.
    ``transformer_dtype``/``other_dtype``/``vae_dtype`` are torch dtype names (``vae_dtype`` None:
    the VAE takes ``other_dtype``). ``fp8_layerwise`` stores the transformer's weights in float8 and
    computes in ``transformer_dtype``. ``size_scale`` < 1 generates at that fraction of the run's
    size (snapped to the model's multiple) and the stitcher upscales back, deterministically;
    ``steps_scale`` < 1 runs that fraction of the baseline steps (an explicit steps override
    wins). ``source`` says why the preset is what it is; its time and memory per clip on each card
    are projected by ``vgkit.cost`` (``vgkit models``, ``vgkit check``), not written here.
    """

    name: str
    device: str = "cuda"
    offload: str = "none"
    vae_tiling: bool = False
    fp8_layerwise: bool = False
    transformer_dtype: str = "bfloat16"
    other_dtype: str = "bfloat16"
    vae_dtype: str | None = None
    size_scale: float = 1.0
    steps_scale: float = 1.0
    source: str = ""

    @staticmethod
    def offload_modes() -> tuple[str, ...]:
        """The values ``offload`` takes (described above)."""
        return ("none", "model", "sequential", "group", "group-block")

    def __post_init__(self) -> None:
        if self.offload not in self.offload_modes():
            raise ValueError(f"preset {self.name!r}: offload = {self.offload!r}, not one of {self.offload_modes()}")

    def cpu_blocker(self) -> str | None:
        """Why this preset cannot be applied on a CPU-only machine, or None when it can (tests
        apply it there). Model and sequential offload keep weights on the CPU and move them to an
        accelerator for each forward: with no accelerator there is nowhere to move them
        (diffusers refuses without one)."""
        method = {"model": "enable_model_cpu_offload", "sequential": "enable_sequential_cpu_offload"}.get(self.offload)
        if method is not None:
            return f"preset {self.name!r}: {method} needs an accelerator (CUDA)"
        return None

    def generation_size(self, width: int, height: int, *, multiple: int) -> tuple[int, int]:
        """The size this preset generates for a ``width`` x ``height`` run: scaled by
        ``size_scale``, each side rounded half up to ``multiple`` (Hunyuan 1280x720 at 0.75: 960x544)."""
        if self.size_scale == 1.0:
            return width, height

        def snap(side: int) -> int:
            return max(multiple, min(side, math.floor(side * self.size_scale / multiple + 0.5) * multiple))

        return snap(width), snap(height)

    def scaled_steps(self, steps: int) -> int:
        """``steps`` times ``steps_scale``, rounded half up, at least 1 (Hunyuan 50 at 0.6: 30)."""
        return max(1, math.floor(steps * self.steps_scale + 0.5))

    def to_record(self) -> dict[str, Any]:
        return {**asdict(self), "describe": self.describe()}

    def describe(self) -> str:
        changes = {
            "vae-tiling": self.vae_tiling,
            "fp8-layerwise": self.fp8_layerwise,
            f"vae {self.vae_dtype}": self.vae_dtype is not None,
            f"{self.size_scale:g}x size + upscale": self.size_scale != 1.0,
            f"{self.steps_scale:g}x steps": self.steps_scale != 1.0,
        }
        return ", ".join([self.device, f"offload={self.offload}", *(text for text, on in changes.items() if on)])


CPU_PRESET = Preset(
    name="cpu",
    device="cpu",
    transformer_dtype="float32",
    other_dtype="float32",
    source="what the tiny twins run with; a full-size model on CPU is far outside the clip limit (not published)",
)


def apply_preset(pipe: Any, preset: Preset, *, device: str) -> dict[str, Any]:
    """Place ``pipe`` as ``preset`` says, computing on ``device``; return the record of what was applied.

    ``device`` is the execution device: with an offload the weights rest on the CPU and the
    offload hooks move them (and the inputs) to ``device`` for each forward, so the pipeline's
    ``_execution_device`` is ``device`` while its components report the CPU. ``device`` is any
    torch device name ("cuda", "cuda:1"); tests pass "meta", made to carry data, to make that
    boundary real without a GPU (tests/test_offload.py).
    """
    import torch

    applied: list[str] = []
    if preset.fp8_layerwise:
        pipe.transformer.enable_layerwise_casting(
            storage_dtype=torch.float8_e4m3fn, compute_dtype=torch_dtype(preset.transformer_dtype)
        )
        applied.append("fp8-layerwise")
    execution = torch.device(device)
    group = {"onload_device": execution, "offload_device": torch.device("cpu"), "use_stream": False}
    if preset.offload == "model":
        pipe.enable_model_cpu_offload(device=execution)
        applied.append("model-cpu-offload")
    elif preset.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=execution)
        applied.append("sequential-cpu-offload")
    elif preset.offload == "group":
        pipe.enable_group_offload(offload_type="leaf_level", **group)
        applied.append("group-offload-leaf")
    elif preset.offload == "group-block":
        # The VAE at leaf level: block level onloads a model's loose layers in a hook on its
        # `forward`, and vae.encode/decode are not `forward` (its conv_in stays on the CPU).
        pipe.enable_group_offload(offload_type="block_level", num_blocks_per_group=1, exclude_modules=["vae"], **group)
        pipe.vae.enable_group_offload(offload_type="leaf_level", **group)
        applied.append("group-offload-block")
    else:
        pipe.to(execution)
    if preset.vae_tiling:
        pipe.vae.enable_tiling()
        applied.append("vae-tiling")
    return {"name": preset.name, "device": device, "applied": applied, "describe": preset.describe()}


def torch_dtype(name: str) -> Any:
    """The torch dtype called ``name`` (``"bfloat16"``)."""
    import torch

    return getattr(torch, name)
