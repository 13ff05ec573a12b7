"""GPU telemetry: every way NVML fails ends in the summary, never in the run.

No NVIDIA driver here, so a real NVML query cannot run. "Library not found" is the real thing
(``pynvml.nvmlInit()`` on this machine). The other failures are stubbed at the ``pynvml`` module
boundary only: ``FakeNvml`` replaces the module's NVML functions (``nvmlInit``,
``nvmlDeviceGet...``) and raises pynvml's own exception classes, built from NVML return codes by
``pynvml.NVMLError(code)`` as the real binding does; the sampler, its thread and its summary are
the real ones.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from vgkit.supervise.telemetry import METRICS, GpuSampler

pynvml = pytest.importorskip("pynvml")

QUERIES = {
    "utilization_pct": "nvmlDeviceGetUtilizationRates",
    "memory_used_bytes": "nvmlDeviceGetMemoryInfo",
    "temperature_c": "nvmlDeviceGetTemperature",
    "power_w": "nvmlDeviceGetPowerUsage",
    "compute_apps": "nvmlDeviceGetComputeRunningProcesses",
}


class FakeNvml:
    """One GPU behind pynvml's function names: 70 % busy, 5 GiB used, 60 C, 250 W.

    ``fail[query] = code`` makes that query return the NVML error ``code``; ``lose_after = n``
    makes every query after the first ``n`` calls of a query return ``NVML_ERROR_GPU_IS_LOST``.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: dict[str, int] = {}
        self.fail: dict[str, int] = {}
        self.init_error: int | None = None
        self.lose_after: int | None = None
        self.shutdowns = 0
        self.handles: list[Any] = []
        values = {
            "nvmlDeviceGetUtilizationRates": types.SimpleNamespace(gpu=70, memory=40),
            "nvmlDeviceGetMemoryInfo": types.SimpleNamespace(used=5 * 2**30, total=24 * 2**30),
            "nvmlDeviceGetTemperature": 60,
            "nvmlDeviceGetPowerUsage": 250_000,  # milliwatts
            "nvmlDeviceGetComputeRunningProcesses": [types.SimpleNamespace(pid=4242)],
        }
        for name, value in values.items():
            monkeypatch.setattr(pynvml, name, self._query(name, value))
        monkeypatch.setattr(pynvml, "nvmlInit", self._init)
        monkeypatch.setattr(pynvml, "nvmlShutdown", self._shutdown)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda index: self._handle(("index", index)))
        monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByUUID", lambda uuid: self._handle(("uuid", uuid)))

    def _init(self) -> None:
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)

    def _shutdown(self) -> None:
        self.shutdowns += 1

    def _handle(self, key: tuple[str, Any]) -> Any:
        if key not in (("index", 0), ("uuid", "GPU-5f1c")):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self.handles.append(key)
        return key

    def _query(self, name: str, value: Any) -> Any:
        def query(handle: Any, *args: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.lose_after is not None and self.calls[name] > self.lose_after:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            if name in self.fail:
                raise pynvml.NVMLError(self.fail[name])
            return value

        return query


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return FakeNvml(monkeypatch)


def _run(*, interval_s: float = 3600.0) -> GpuSampler:
    """A sampler over an empty job: with the default interval, exactly the entry and exit samples."""
    with GpuSampler(interval_s=interval_s) as sampler:
        pass
    return sampler


def test_library_not_found_is_the_reason_on_a_machine_without_the_driver() -> None:
    """The real ``nvmlInit`` (no stub): this machine has no libnvidia-ml."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("NVML loads on this machine")
    summary = _run().summary()
    assert summary == {
        "available": False,
        "reason": "NVML unavailable: NVMLError_LibraryNotFound: NVML Shared Library Not Found",
        "unsupported": [],
    }


def test_without_pynvml_the_reason_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    summary = _run().summary()
    assert summary["available"] is False
    assert "pip install nvidia-ml-py" in summary["reason"]


def test_driver_not_loaded_at_init_is_the_reason(nvml: FakeNvml) -> None:
    nvml.init_error = pynvml.NVML_ERROR_DRIVER_NOT_LOADED
    summary = _run().summary()
    assert summary["available"] is False
    assert summary["reason"] == "NVML unavailable: NVMLError_DriverNotLoaded: Driver Not Loaded"
    assert nvml.calls == {}


def test_a_healthy_gpu_gives_means_and_peaks_of_every_metric(nvml: FakeNvml) -> None:
    summary = _run().summary()
    assert summary == {
        "available": True,
        "samples": 2,
        "interval_s": 3600.0,
        "utilization_pct_mean": 70.0,
        "utilization_pct_max": 70,
        "memory_used_bytes_max": 5 * 2**30,
        "temperature_c_max": 60,
        "power_w_mean": 250.0,
        "power_w_max": 250.0,
        "compute_apps_max": 1,
        "unsupported": [],
        "errors": 0,
        "lost": None,
    }
    assert nvml.shutdowns == 1


@pytest.mark.parametrize("metric", ["temperature_c", "power_w", "utilization_pct"])
def test_a_query_the_gpu_does_not_support_is_dropped_and_the_rest_go_on(nvml: FakeNvml, metric: str) -> None:
    nvml.fail[QUERIES[metric]] = pynvml.NVML_ERROR_NOT_SUPPORTED
    sampler = _run()
    summary = sampler.summary()
    assert summary["available"] is True
    assert summary["unsupported"] == [metric]
    assert nvml.calls[QUERIES[metric]] == 1  # asked once, not at every sample
    assert all(metric not in sample for sample in sampler.samples)
    others = [m for m in METRICS if m != metric]
    assert all(set(sample) == {"t_s", *others} for sample in sampler.samples)
    dropped = {"temperature_c": ["temperature_c_max"], "power_w": ["power_w_mean", "power_w_max"]}.get(
        metric, ["utilization_pct_mean", "utilization_pct_max"]
    )
    assert all(summary[key] is None for key in dropped)
    assert summary["memory_used_bytes_max"] == 5 * 2**30


def test_a_transient_query_error_loses_that_value_only(nvml: FakeNvml) -> None:
    nvml.fail["nvmlDeviceGetPowerUsage"] = pynvml.NVML_ERROR_TIMEOUT
    summary = _run().summary()
    assert (summary["available"], summary["errors"], summary["unsupported"]) == (True, 2, [])
    assert summary["power_w_max"] is None
    assert summary["temperature_c_max"] == 60


def test_a_gpu_lost_mid_run_stops_sampling_and_keeps_the_samples_taken(nvml: FakeNvml) -> None:
    nvml.lose_after = 3  # three samples, then the GPU falls off the bus
    with GpuSampler(interval_s=0.001) as sampler:
        assert sampler._stop.wait(timeout=60), "the sampler thread never saw the GPU lost"
    summary = sampler.summary()
    assert summary["available"] is True
    assert summary["samples"] == 3
    assert summary["lost"].startswith("GPU lost after 3 samples, at ")
    assert summary["lost"].endswith("NVMLError_GpuIsLost: GPU is lost")
    assert nvml.calls["nvmlDeviceGetUtilizationRates"] == 4  # nothing asked after the loss, not even on exit
    assert nvml.shutdowns == 1


def test_a_gpu_lost_before_the_first_sample_is_the_reason(nvml: FakeNvml) -> None:
    nvml.lose_after = 0
    summary = _run().summary()
    assert summary["available"] is False
    assert summary["reason"].startswith("GPU lost after 0 samples")


def test_the_sampled_gpu_is_the_first_visible_one_by_index_or_uuid(
    nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-5f1c,GPU-aaaa")
    assert _run().summary()["available"] is True
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # no such GPU
    summary = _run().summary()
    assert summary["available"] is False
    assert summary["reason"] == "NVML has no GPU '3': NVMLError_InvalidArgument: Invalid Argument"
    assert nvml.handles == [("uuid", "GPU-5f1c")]
    assert nvml.shutdowns == 2  # shut down after the refused handle too


def test_a_gpu_that_supports_no_query_says_so(nvml: FakeNvml) -> None:
    for query in QUERIES.values():
        nvml.fail[query] = pynvml.NVML_ERROR_NOT_SUPPORTED
    summary = _run().summary()
    assert summary == {
        "available": False,
        "reason": "this GPU supports none of the NVML queries",
        "unsupported": list(METRICS),
    }
