"""GPU telemetry sampled while a clip generates, through NVML when it is present.

``pynvml`` is optional: without it, or without an NVIDIA driver (every CPU run), the sampler
records ``{"available": false, "reason": ...}`` and never raises.
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType
from typing import Any

from vgkit.settings import visible_gpu

__all__ = ["GpuSampler"]


class GpuSampler:
    """``with GpuSampler() as s: ...`` then ``s.summary()``: utilisation, memory, temperature."""

    def __init__(self, *, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[int, int, int]] = []
        self.reason: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: Any = None
        self._handle: Any = None

    def __enter__(self) -> GpuSampler:
        try:
            import pynvml

            pynvml.nvmlInit()
            index = int(visible_gpu()) if visible_gpu().isdigit() else 0
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self._nvml = pynvml
        except ImportError:
            self.reason = "pynvml not installed"
            return self
        except Exception as exc:
            self.reason = f"NVML unavailable: {exc}"
            return self
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="vgkit-gpu-sampler", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        nvml, handle = self._nvml, self._handle
        try:
            util = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            memory = nvml.nvmlDeviceGetMemoryInfo(handle).used
            temperature = nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
        except Exception:
            return
        self.samples.append((int(util), int(memory), int(temperature)))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._sample()
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"available": False, "reason": self.reason or "no samples"}
        utils, memories, temperatures = zip(*self.samples, strict=True)
        return {
            "available": True,
            "samples": len(self.samples),
            "interval_s": self.interval_s,
            "utilization_pct_mean": round(sum(utils) / len(utils), 1),
            "utilization_pct_max": max(utils),
            "memory_used_bytes_max": max(memories),
            "temperature_c_max": max(temperatures),
        }
