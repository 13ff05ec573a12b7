"""GPU telemetry sampled while a clip (or a sweep's whole job) runs, through NVML (``nvidia-ml-py``,
module ``pynvml``, pinned): vgkit's one GPU sampler; nothing polls ``nvidia-smi``.

The sampler never breaks a run. Each way NVML can fail ends in the summary instead:

- ``pynvml`` not importable, or NVML not usable at start (library not found, driver not loaded,
  no permission, no such GPU): no samples, ``{"available": false, "reason": ...}``. Every
  CPU-only run ends here.
- a query that this GPU does not support (``NVMLError_NotSupported``: temperature, power or
  utilisation on some boards, vGPUs and MIG slices): that metric is left out from then on and
  named in ``unsupported``; the other metrics go on.
- any other error of a query: that value is missing from that sample, counted in ``errors``.
- the GPU falls off the bus mid-run (``NVMLError_GpuIsLost``): sampling stops, the samples taken
  so far are kept and ``lost`` says when.
"""

from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import Any

from vgkit.settings import visible_gpu

__all__ = ["METRICS", "GpuSampler"]

# What one sample holds, by the NVML query that reads it (``compute_apps``: processes computing on
# the GPU; more than one while a job runs means another job overlaps it).
METRICS = ("utilization_pct", "memory_used_bytes", "temperature_c", "power_w", "compute_apps")


class GpuSampler:
    """``with GpuSampler() as s: ...`` then ``s.summary()``: utilisation, memory, temperature, power.

    Samples once on entry, every ``interval_s`` in a daemon thread, and once on exit.
    """

    def __init__(self, *, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.samples: list[dict[str, float | int]] = []
        self.reason: str | None = None
        self.unsupported: list[str] = []
        self.errors = 0
        self.lost: str | None = None
        self._started = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: Any = None
        self._handle: Any = None

    def __enter__(self) -> GpuSampler:
        self._started = time.perf_counter()
        try:
            import pynvml
        except ImportError:
            self.reason = "pynvml not installed (fix: pip install nvidia-ml-py, pinned in requirements.txt)"
            return self
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound / _DriverNotLoaded / _NoPermission / ...
            self.reason = f"NVML unavailable: {_describe(exc)}"
            return self
        gpu = visible_gpu()  # an index, or a UUID (GPU-..., MIG-...)
        try:
            by = pynvml.nvmlDeviceGetHandleByIndex if gpu.isdigit() else pynvml.nvmlDeviceGetHandleByUUID
            self._handle = by(int(gpu) if gpu.isdigit() else gpu)
        except Exception as exc:
            self.reason = f"NVML has no GPU {gpu!r}: {_describe(exc)}"
            with contextlib.suppress(Exception):
                pynvml.nvmlShutdown()
            return self
        self._nvml = pynvml
        self._sample()
        if self.lost is None:
            self._thread = threading.Thread(target=self._loop, name="vgkit-gpu-sampler", daemon=True)
            self._thread.start()
        return self

    def _read(self, metric: str) -> float | int:
        nvml, handle = self._nvml, self._handle
        if metric == "utilization_pct":
            return int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        if metric == "memory_used_bytes":
            return int(nvml.nvmlDeviceGetMemoryInfo(handle).used)
        if metric == "temperature_c":
            return int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        if metric == "compute_apps":
            return len(nvml.nvmlDeviceGetComputeRunningProcesses(handle))
        return round(nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0, 1)  # milliwatts

    def _sample(self) -> None:
        if self.lost is not None:
            return
        nvml = self._nvml
        sample: dict[str, float | int] = {"t_s": round(time.perf_counter() - self._started, 3)}
        for metric in METRICS:
            if metric in self.unsupported:
                continue
            try:
                sample[metric] = self._read(metric)
            except nvml.NVMLError_NotSupported:
                self.unsupported.append(metric)
            except nvml.NVMLError_GpuIsLost as exc:
                self.lost = f"GPU lost after {len(self.samples)} samples, at {sample['t_s']} s: {_describe(exc)}"
                self._stop.set()
                return
            except Exception:  # a transient NVML error (timeout, unknown): this value only
                self.errors += 1
        if len(sample) > 1:
            self.samples.append(sample)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._nvml is not None:
            self._sample()
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()

    def summary(self) -> dict[str, Any]:
        """The clip log's ``gpu_telemetry``: means and peaks of what was sampled, and what went wrong.

        A metric that was never read (unsupported, or every read failed) is None.
        """
        if not self.samples:
            unread = "this GPU supports none of the NVML queries" if len(self.unsupported) == len(METRICS) else None
            reason = self.reason or self.lost or unread or "no samples"
            return {"available": False, "reason": reason, "unsupported": list(self.unsupported)}

        def values(metric: str) -> list[float | int]:
            return [s[metric] for s in self.samples if metric in s]

        def peak(metric: str) -> float | int | None:
            return max(values(metric), default=None)

        def mean(metric: str) -> float | None:
            found = values(metric)
            return round(sum(found) / len(found), 1) if found else None

        return {
            "available": True,
            "samples": len(self.samples),
            "interval_s": self.interval_s,
            "utilization_pct_mean": mean("utilization_pct"),
            "utilization_pct_max": peak("utilization_pct"),
            "memory_used_bytes_max": peak("memory_used_bytes"),
            "temperature_c_max": peak("temperature_c"),
            "power_w_mean": mean("power_w"),
            "power_w_max": peak("power_w"),
            "compute_apps_max": peak("compute_apps"),
            "unsupported": list(self.unsupported),
            "errors": self.errors,
            "lost": self.lost,
        }


def _describe(exc: BaseException) -> str:
    """``NVMLError_DriverNotLoaded: Driver Not Loaded``: the class says which failure, str() says it in words."""
    return f"{type(exc).__name__}: {exc}"
