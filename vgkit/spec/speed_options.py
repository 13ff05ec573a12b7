"""The spec's ``speed:`` section: optional speed features, all off by default (vgkit.models.speed applies them).

One type from the spec to the pipeline: the spec holds it, the plan records it, the generator and
Ray workers receive it. Loading checks types only; ``check`` (run by the plan, before any folder
is touched) checks the values and names the field, the value and the fix.
"""

from __future__ import annotations

import math
from typing import Any

from vgkit.errors import SpecError
from vgkit.spec.strict import Float, StrictModel, Text

__all__ = ["ATTENTION_BACKENDS", "CACHES", "DEFAULT_THRESHOLDS", "SpeedOptions"]

CACHES = ("off", "first-block", "magcache", "magcache-calibrate")
COMPILE_MODES = ("off", "regional")
# diffusers' own config defaults (FirstBlockCacheConfig.threshold, MagCacheConfig.threshold).
DEFAULT_THRESHOLDS = {"first-block": 0.05, "magcache": 0.06}

# Every name diffusers 0.42.1 accepts (AttentionBackendName); kept here so `check` needs no torch.
ATTENTION_BACKENDS = (
    "flash", "flash_hub", "flash_varlen", "flash_varlen_hub", "flash_4_hub", "_flash_3", "_flash_varlen_3",
    "_flash_3_hub", "_flash_3_varlen_hub", "aiter_fa2_hub", "flex", "native", "_native_cudnn",
    "_native_efficient", "_native_flash", "_native_math", "_native_npu", "_native_xla", "sage", "sage_hub",
    "sage_blackwell_hub", "sage_varlen", "_sage_qk_int8_pv_fp8_cuda", "_sage_qk_int8_pv_fp8_cuda_sm90",
    "_sage_qk_int8_pv_fp16_cuda", "_sage_qk_int8_pv_fp16_triton", "xformers",
)  # fmt: skip


class SpeedOptions(StrictModel):
    """Which speed features to apply to a pipeline's transformer; the defaults change nothing.

    ``cache``: one of ``CACHES``. ``cache_threshold``: None takes ``DEFAULT_THRESHOLDS`` (diffusers'
    own defaults). ``mag_ratios``: per-step magnitude ratios for ``magcache`` (from a
    ``magcache-calibrate`` run of the same checkpoint; interpolated by diffusers to the step count).
    ``attention_backend``: ``"default"`` leaves diffusers' choice (native SDPA unless the
    ``DIFFUSERS_ATTN_BACKEND`` environment variable says otherwise), else one of
    ``ATTENTION_BACKENDS``. ``compile``: ``"off"`` or ``"regional"``.
    """

    cache: Text = "off"
    cache_threshold: Float | None = None
    mag_ratios: tuple[Float, ...] | None = None
    attention_backend: Text = "default"
    compile: Text = "off"

    def check(self) -> None:
        """Raise ``SpecError`` (field, value, fix) for a value no device could run."""
        if self.cache not in CACHES:
            raise SpecError(f"speed.cache = {self.cache!r}: unknown cache; fix: use one of {', '.join(CACHES)}")
        threshold = self.cache_threshold
        if threshold is not None:
            if self.cache not in DEFAULT_THRESHOLDS:
                raise SpecError(
                    f"speed.cache_threshold = {threshold!r}: cache {self.cache!r} takes no threshold; "
                    f"fix: remove cache_threshold or set cache to first-block or magcache"
                )
            if not (math.isfinite(threshold) and threshold >= 0):
                raise SpecError(
                    f"speed.cache_threshold = {threshold!r}: must be a finite number >= 0; "
                    f"fix: omit it for the default {DEFAULT_THRESHOLDS[self.cache]}"
                )
        self._validate_mag_ratios()
        if self.attention_backend != "default" and self.attention_backend not in ATTENTION_BACKENDS:
            raise SpecError(
                f"speed.attention_backend = {self.attention_backend!r}: not a diffusers attention backend; "
                f"fix: use 'default' or one of {', '.join(ATTENTION_BACKENDS)}"
            )
        if self.compile not in COMPILE_MODES:
            raise SpecError(
                f"speed.compile = {self.compile!r}: unknown mode; fix: use one of {', '.join(COMPILE_MODES)}"
            )

    def _validate_mag_ratios(self) -> None:
        ratios = self.mag_ratios
        if self.cache == "magcache" and ratios is None:
            raise SpecError(
                "speed.mag_ratios = None: magcache needs magnitude ratios calibrated for this checkpoint and "
                "vgkit ships none; fix: run once with cache: magcache-calibrate and copy the recorded ratios"
            )
        if ratios is None:
            return
        if self.cache != "magcache":
            raise SpecError(
                f"speed.mag_ratios: set but cache is {self.cache!r}; fix: remove mag_ratios or set cache: magcache"
            )
        if len(ratios) < 2 or not all(math.isfinite(r) and r > 0 for r in ratios):
            raise SpecError(
                f"speed.mag_ratios = {list(ratios)!r}: need at least 2 positive finite numbers (one per step); "
                f"fix: copy them from a magcache-calibrate run"
            )

    @property
    def threshold(self) -> float | None:
        """The threshold in effect: the given one, or diffusers' default for this cache."""
        return self.cache_threshold if self.cache_threshold is not None else DEFAULT_THRESHOLDS.get(self.cache)

    def to_record(self) -> dict[str, Any]:
        record = self.model_dump()
        record["mag_ratios"] = list(self.mag_ratios) if self.mag_ratios is not None else None
        record["threshold_in_effect"] = self.threshold
        return record
