"""Optional speed features for a loaded pipeline's transformer, each with its quality cost.

Three independent switches, all off by default (``SpeedOptions()`` changes nothing):

- ``cache``: diffusers cache hooks. ``first-block`` skips the rest of the transformer on a step
  whose first block barely changed; ``magcache`` skips whole steps using per-step magnitude ratios
  that must be calibrated for the checkpoint (vgkit ships none, so ``mag_ratios`` is required);
  ``magcache-calibrate`` skips nothing and records those ratios (``denoise_context`` yields them).
- ``attention_backend``: a diffusers attention backend name (``set_attention_backend``).
- ``compile``: ``regional`` compiles each transformer block with ``torch.compile``.

Measured on the tiny twins (CPU, diffusers 0.42.1; tests/test_speed.py keeps these true):
diffusers' ``compile_repeated_blocks`` misses the main blocks of two of the three models
(CogVideoX declares no ``_repeated_blocks``; HunyuanVideo-I2V's token-replace blocks are not in
its list), so ``regional`` compiles the transformer's block lists itself. CogVideoX's attention
processor calls torch SDPA directly, so no backend choice reaches it. A model whose transformer
always passes an attention mask (``ModelAdapter.masked_attention``: HunyuanVideo) cannot take the
non-varlen flash and sage backends or ``_native_flash``, which refuse one. Nothing here is specific
to a model family, and nothing here imports torch at import time.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vgkit.errors import SpecError
from vgkit.spec.speed_options import ATTENTION_BACKENDS, CACHES, DEFAULT_THRESHOLDS, SpeedOptions

if TYPE_CHECKING:
    from vgkit.models.base import ModelAdapter

__all__ = [
    "ATTENTION_BACKENDS",
    "CACHES",
    "CPU_ATTENTION_BACKENDS",
    "DEFAULT_THRESHOLDS",
    "QUALITY_COST",
    "SpeedOptions",
    "apply_speed",
    "denoise_context",
    "transformer_blocks",
]

# Ran on the tiny Wan on CPU; every other backend needs CUDA (or an NPU/XLA device).
CPU_ATTENTION_BACKENDS = ("native", "_native_math", "_native_flash", "flex")
# Backends whose diffusers wrapper raises on an attention mask ("`attn_mask` is not supported").
_MASKLESS_BACKENDS = frozenset(
    {"flash", "flash_hub", "flash_4_hub", "_flash_3", "_flash_3_hub", "aiter_fa2_hub", "_native_flash",
     "_native_xla", "sage", "sage_hub", "sage_blackwell_hub", "_sage_qk_int8_pv_fp8_cuda",
     "_sage_qk_int8_pv_fp8_cuda_sm90", "_sage_qk_int8_pv_fp16_cuda", "_sage_qk_int8_pv_fp16_triton"}
)  # fmt: skip
# The child ModuleLists that hold a transformer's repeated blocks (the ones diffusers' cache hooks use).
_BLOCK_LISTS = ("blocks", "transformer_blocks", "single_transformer_blocks")

QUALITY_COST: dict[str, str] = {
    "cache:first-block": (
        "Approximate: a step whose first-block residual changed by less than the threshold reuses the previous "
        "step's residual for every later block, and a higher threshold 'might lead to poorer generation quality' "
        "(diffusers FirstBlockCacheConfig); diffusers' ParaAttention guide (docs/source/en/optimization/"
        "para_attn.md) reports 1.62x on HunyuanVideo 720p/129 frames 'while maintaining nearly zero quality loss'."
    ),
    "cache:magcache": (
        "Approximate: whole steps are skipped while the error predicted from per-step residual magnitude ratios "
        "stays under the threshold (at most 3 in a row, never in the first 20% of steps); the MagCache paper "
        "(Ma et al. 2025, arXiv:2506.09045) reports 2.10-2.68x on CogVideoX, Wan 2.1 and HunyuanVideo with "
        "better LPIPS/SSIM/PSNR than earlier caches, valid only for ratios calibrated on the same checkpoint."
    ),
    "cache:magcache-calibrate": (
        "None and no speed-up: every step runs and the output equals the uncached one (tests/test_speed.py); "
        "the run only records the magnitude ratios that a later magcache run needs (diffusers MagCacheConfig)."
    ),
    "attention:exact": (
        "None beyond floating-point rounding: FlashAttention, cuDNN, memory-efficient, math, flex and xformers "
        "all compute exact attention with another kernel (Dao et al. 2022, 'FlashAttention: Fast and "
        "Memory-Efficient Exact Attention with IO-Awareness', arXiv:2205.14135)."
    ),
    "attention:sage": (
        "Approximate: SageAttention quantizes Q·K to INT8 (and P·V to FP8 on newer GPUs); its papers "
        "(arXiv:2410.02367, arXiv:2411.10958) report 'almost no' / 'negligible end-to-end metrics loss' on "
        "video models, including CogVideoX1.5, but it is not exact attention."
    ),
    "compile:regional": (
        "None beyond floating-point reordering (the same graph, fused by Inductor); the cost is time: the first "
        "call and every new input shape compile first (PyTorch recipe 'Reducing torch.compile cold start "
        "compilation time with regional compilation')."
    ),
}


def transformer_blocks(transformer: Any) -> list[Any]:
    """The transformer's repeated blocks in call order (``blocks``, ``transformer_blocks``, ...)."""
    import torch

    found: list[Any] = []
    for name, child in transformer.named_children():
        if name in _BLOCK_LISTS and isinstance(child, torch.nn.ModuleList):
            found.extend(child)
    return found


def apply_speed(
    pipe: Any, options: SpeedOptions, *, device: str, steps: int | None = None, model: ModelAdapter | None = None
) -> dict[str, Any]:
    """Apply ``options`` to ``pipe.transformer`` (once per loaded pipeline); return the record.

    Every check runs before anything changes, so a ``SpecError`` leaves the pipeline as loaded.
    ``steps`` (the run's ``num_inference_steps``) is required by the magcache modes, whose step
    counter wraps at that number. ``model`` is the adapter ``pipe`` was loaded by: its quirks
    (``masked_attention``) are checked too; without it only what the pipeline shows is checked.
    The record lists what ran and the quality cost of each feature. Call after the preset
    (``apply_preset``), and run each pipeline call inside ``denoise_context``.
    """
    options.check()
    transformer = pipe.transformer
    kind = type(transformer).__name__
    blocks = transformer_blocks(transformer)
    if options.cache == "first-block" and len(blocks) < 2:
        raise SpecError(
            f"speed.cache = 'first-block': {kind} has {len(blocks)} block(s) and the cache needs >= 2; fix: cache: off"
        )
    if options.cache.startswith("magcache") and not (steps and steps > 0):
        raise SpecError(
            f"speed.cache = {options.cache!r}: needs the run's step count; fix: apply_speed(..., steps=<steps>)"
        )
    if options.compile == "regional":
        _check_compile(kind, blocks, device=device)
    _check_attention(
        transformer, options.attention_backend, device=device, masked=model is not None and model.masked_attention
    )

    record: dict[str, Any] = {"options": options.to_record(), "applied": [], "quality_cost": {}}
    if options.attention_backend != "default":
        from vgkit.hub.kernels import offline_kernel_load

        hub = options.attention_backend.endswith("_hub")  # its kernel comes from the cache, never the network
        try:
            with offline_kernel_load() if hub else contextlib.nullcontext():
                transformer.set_attention_backend(options.attention_backend)
        except RuntimeError as exc:  # diffusers' requirement check: a missing package, named with its fix
            raise SpecError(f"speed.attention_backend = {options.attention_backend!r}: {exc}") from None
        family = "sage" if "sage" in options.attention_backend else "exact"
        _note(record, f"attention:{options.attention_backend}", f"attention:{family}")
    record["active_attention_backend"] = _active_attention_backend()
    if options.cache != "off":
        transformer.enable_cache(_cache_config(options, steps=steps))
        _note(record, f"cache:{options.cache}(threshold={options.threshold})", f"cache:{options.cache}")
    if options.compile == "regional":
        for block in blocks:
            block.compile()
        names = sorted({type(b).__name__ for b in blocks})
        _note(record, f"compile:regional({len(blocks)} blocks: {', '.join(names)})", "compile:regional")
    return record


def _note(record: dict[str, Any], applied: str, cost_key: str) -> None:
    record["applied"].append(applied)
    record["quality_cost"][cost_key] = QUALITY_COST[cost_key]


def _check_attention(transformer: Any, backend: str, *, device: str, masked: bool) -> None:
    """Refuse, before anything changes, a backend that cannot run here or would not take effect
    (``masked``: the transformer passes an attention mask on every call)."""
    if backend == "default":
        return
    kind = type(transformer).__name__
    field = f"speed.attention_backend = {backend!r}"
    if device == "cpu" and backend not in CPU_ATTENTION_BACKENDS:
        raise SpecError(
            f"{field}: does not run on CPU (CUDA, or its own accelerator for _native_npu/_native_xla); "
            f"fix: use 'default' or one of {', '.join(CPU_ATTENTION_BACKENDS)} on CPU, or run on a CUDA GPU"
        )
    processors = [getattr(m, "processor", None) for m in transformer.modules()]
    if not any(hasattr(p, "_attention_backend") for p in processors):
        raise SpecError(
            f"{field}: {kind}'s attention processors call torch SDPA directly, so no diffusers backend reaches "
            f"them; fix: use attention_backend: default"
        )
    if masked and backend in _MASKLESS_BACKENDS:
        raise SpecError(
            f"{field}: {kind} passes an attention mask, which this backend refuses; "
            f"fix: use native, flash_varlen or sage_varlen"
        )
    if backend.endswith("_hub"):  # fetched by `vgkit prefetch --attention-backend`, verified offline here
        from vgkit.hub.kernels import verify

        verify(backend)


def _check_compile(kind: str, blocks: list[Any], *, device: str) -> None:
    """Refuse regional compile where it would fail on the first call: no blocks, or no compiler.

    Inductor builds CPU kernels with ``$CXX`` (default ``g++``); on CUDA, Triton builds its launchers
    with a C compiler (``$CC``, ``cc``, ``gcc`` or ``clang``).
    """
    field = "speed.compile = 'regional'"
    if not blocks:
        raise SpecError(f"{field}: {kind} has no block list vgkit knows ({', '.join(_BLOCK_LISTS)}); fix: compile: off")
    if device == "cpu":
        needed, found = "a C++ compiler", shutil.which(os.environ.get("CXX", "g++"))
    else:
        candidates = [os.environ.get("CC", ""), "cc", "gcc", "clang"]
        needed, found = "a C compiler", next((p for c in candidates if c and (p := shutil.which(c))), None)
    if found is None:
        raise SpecError(
            f"{field}: torch.compile on {device} needs {needed} and none is on PATH; "
            f"fix: install one (apt-get install g++) or set compile: off"
        )


def _active_attention_backend() -> str:
    """diffusers' process-wide active backend (``set_attention_backend`` also changes it)."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    active, _ = _AttentionBackendRegistry.get_active_backend()
    return str(getattr(active, "value", active))


def _cache_config(options: SpeedOptions, *, steps: int | None) -> Any:
    from diffusers import FirstBlockCacheConfig, MagCacheConfig

    if options.cache == "first-block":
        return FirstBlockCacheConfig(threshold=options.threshold)
    if options.cache == "magcache-calibrate":
        return MagCacheConfig(calibrate=True, num_inference_steps=steps)
    return MagCacheConfig(
        threshold=options.threshold, mag_ratios=list(options.mag_ratios or ()), num_inference_steps=steps
    )


@contextlib.contextmanager
def _cached_call(transformer: Any, *, calibrate: bool) -> Iterator[dict[str, Any]]:
    found: dict[str, Any] = {}
    # Stale hook state from a call that raised mid-loop would leak into this one: start clean.
    transformer._reset_stateful_cache()
    with contextlib.ExitStack() as stack:
        if calibrate:
            found["mag_ratios"] = stack.enter_context(_capture_mag_ratios())
        # Pipelines that set their own cache contexts (Wan: cond/uncond, CogVideoX) override this one per
        # call; HunyuanVideo-I2V sets none, and its first-block hooks raise without one (FACTS.md).
        stack.enter_context(transformer.cache_context("vgkit"))
        yield found


def denoise_context(pipe: Any, options: SpeedOptions) -> contextlib.AbstractContextManager[dict[str, Any]]:
    """What each pipeline call must run inside: a no-op unless a cache is on.

    With a cache it resets the hooks' state and opens a default ``cache_context``. It yields a dict;
    after a ``magcache-calibrate`` call it holds ``mag_ratios``: one list per cache context, in the
    order they completed (Wan: the cond pass, then uncond).
    """
    if options.cache == "off":
        return contextlib.nullcontext({})
    return _cached_call(pipe.transformer, calibrate=options.cache == "magcache-calibrate")


class _RatiosHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.sink: list[list[float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        head, _, tail = record.getMessage().partition(": ")
        if head == "MagCache Calibration Results":
            self.sink.append([float(x) for x in ast.literal_eval(tail)])


@contextlib.contextmanager
def _capture_mag_ratios() -> Iterator[list[list[float]]]:
    """Collect the ratios diffusers logs at the end of a calibration run (it also prints them)."""
    logger = logging.getLogger("diffusers.hooks.mag_cache")
    handler = _RatiosHandler()
    saved = (logger.level, logger.propagate)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler.sink
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
