"""The model registry and model choice. Importing this imports no torch.

A model family is one module holding a ``ModelAdapter`` subclass (its hooks) and its instances
(``wan22.py``, ``cogvideox15.py``, ``hunyuan.py``), plus its baseline files in ``baselines/``.
Adding one to vgkit means that module and one line in ``_ADAPTERS``; a family defined outside
vgkit joins with ``register_model`` (tests/toy_family.py does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vgkit.errors import ModelUnavailableError, SpecError
from vgkit.hub.cache import snapshot_dir
from vgkit.models.base import Baseline, FrameRule, ModelAdapter, Preset
from vgkit.models.cogvideox15 import COGVIDEOX15, COGVIDEOX15_TINY
from vgkit.models.hunyuan import HUNYUAN_I2V, HUNYUAN_I2V_TINY
from vgkit.models.wan22 import WAN22, WAN22_TINY
from vgkit.settings import cuda_gpu_memory_gib, cuda_gpu_name, hub_cache_dir, other_hub_caches

__all__ = [
    "Baseline",
    "FrameRule",
    "ModelAdapter",
    "ModelChoice",
    "Preset",
    "adapter",
    "choose_model",
    "model_names",
    "register_model",
    "unregister_model",
]

_ADAPTERS: dict[str, ModelAdapter] = {
    a.name: a for a in (WAN22, WAN22_TINY, COGVIDEOX15, COGVIDEOX15_TINY, HUNYUAN_I2V, HUNYUAN_I2V_TINY)
}
_BUILT_IN = frozenset(_ADAPTERS)
_AUTO_ORDER = ("wan22",)  # real models tried by "auto", best first; the tiny twin is the fallback


def model_names() -> list[str]:
    return list(_ADAPTERS)


def register_model(model: ModelAdapter) -> None:
    """Make ``model`` known by its name to every part of vgkit in this process (specs, ``--model``,
    runs). Its name must be new: replacing a registered model is refused (``ValueError``)."""
    if model.name in _ADAPTERS or model.name == "auto":
        raise ValueError(f"model {model.name!r} is already registered; fix: give the adapter another name")
    _ADAPTERS[model.name] = model


def unregister_model(name: str) -> ModelAdapter:
    """Forget a model added by ``register_model`` and return it (vgkit's own models stay)."""
    if name not in _ADAPTERS or name in _BUILT_IN:
        raise ValueError(f"model {name!r} was not added by register_model; fix: pass a name it registered")
    return _ADAPTERS.pop(name)


def adapter(name: str) -> ModelAdapter:
    """The adapter called ``name``, or a ``SpecError`` listing the known names."""
    try:
        return _ADAPTERS[name]
    except KeyError:
        known = ", ".join([*_ADAPTERS, "auto"])
        raise SpecError(f"model = {name!r}: unknown model; fix: use one of {known}") from None


@dataclass(frozen=True)
class ModelChoice:
    """Which model a run uses, on which device, and why (printed as the run's first line)."""

    model: ModelAdapter
    device: str
    reason: str
    gpu_memory_gib: float | None = field(default=None, kw_only=True)

    def preset(self, requested: str | None) -> Preset:
        """The preset this run uses: ``requested`` by name, else the default for this device."""
        return self.model.resolve_preset(requested, device=self.device, gpu_memory_gib=self.gpu_memory_gib)

    def announce(self) -> str:
        return f"vgkit: model {self.model.name} on {self.device} ({self.reason})"


def _found_elsewhere(model: ModelAdapter, cache_dir: Path | None) -> str:
    """``""``, or a clause saying in which other known HF cache ``model``'s weights are, with the fix.

    Weights land elsewhere when prefetch and the run resolved ``HF_HOME`` differently (one saw
    a setting the other did not); vgkit does not silently load from a cache it was not told about.
    """
    if cache_dir is not None:
        return ""
    for other in other_hub_caches():
        if snapshot_dir(model.repo_id, model.revision, cache_dir=other) is not None:
            current = hub_cache_dir()
            return (
                f"the {model.name} weights are in {other}, not in the HF cache this run uses ({current}); "
                f"fix: export HF_HUB_CACHE={other}, or move them into {current}, then re-run"
            )
    return ""


def _torch_refusal(gpu: str) -> str | None:
    """None when torch can use the GPU ``nvidia-smi`` shows (or torch is not installed yet: the
    stdlib-only quick-start announcement), else why not, with the fix."""
    from vgkit.host.cuda_builds import DriverError, read_driver
    from vgkit.host.gpu import torch_view

    view = torch_view()
    if view.usable or view.version is None:
        return None
    try:
        driver = read_driver()
    except DriverError:
        driver = None
    return f"nvidia-smi shows {gpu}, but {view.why_not(driver)}"


def choose_model(requested: str | None, *, cache_dir: Path | None = None, planning_only: bool = False) -> ModelChoice:
    """Resolve ``requested`` ("auto", None or a name) to a model and device, checking weights.

    "auto" picks the first real model whose weights are cached when a CUDA GPU is present and
    torch can use it, else the tiny Wan 2.2 checkpoint on CPU, saying why. An explicit real model
    without weights, without a GPU, or with a GPU torch cannot use is an error that names the fix;
    there is no silent fallback. With ``planning_only`` (``vgkit check``) an explicit model is
    accepted without weights or GPU, since nothing will be loaded.
    """
    gpu = cuda_gpu_name()
    memory = cuda_gpu_memory_gib() if gpu is not None else None
    refusal = _torch_refusal(gpu) if gpu is not None and not planning_only else None
    if refusal is not None and requested not in (None, "", "auto") and not adapter(requested).tiny:
        chosen = adapter(requested)
        raise ModelUnavailableError(
            f"model {chosen.name!r} needs a CUDA GPU torch can use: {refusal}; or use --model {chosen.name}-tiny"
        )
    if refusal is not None:
        gpu, memory = None, None
    if requested in (None, "", "auto"):
        if refusal is not None:
            return ModelChoice(WAN22_TINY, "cpu", f"auto: {refusal}; until then the tiny random-weight checkpoint")
        if gpu is not None:
            for name in _AUTO_ORDER:
                real = _ADAPTERS[name]
                if snapshot_dir(real.repo_id, real.revision, cache_dir=cache_dir):
                    return ModelChoice(real, "cuda", f"auto: weights cached, GPU {gpu}", gpu_memory_gib=memory)
            elsewhere = "; ".join(filter(None, (_found_elsewhere(_ADAPTERS[n], cache_dir) for n in _AUTO_ORDER)))
            if elsewhere:
                why = f"auto: GPU {gpu}, but {elsewhere}; until then the tiny random-weight checkpoint"
            else:
                why = f"auto: GPU {gpu} but no downloaded weights; `vgkit prefetch --model wan22` fetches them"
        else:
            why = "auto: no CUDA GPU found; tiny random-weight checkpoint"
        return ModelChoice(WAN22_TINY, "cpu", why)
    chosen = adapter(requested)
    if chosen.tiny:
        why = "requested" if refusal is None else f"requested; {refusal}; on CPU until then"
        return ModelChoice(chosen, "cuda" if gpu else "cpu", why, gpu_memory_gib=memory)
    if planning_only:
        cached = snapshot_dir(chosen.repo_id, chosen.revision, cache_dir=cache_dir) is not None
        state = "weights cached" if cached else f"weights not cached: `vgkit prefetch --model {chosen.name}`"
        return ModelChoice(chosen, "cuda", f"planning only; {state}", gpu_memory_gib=memory)
    if snapshot_dir(chosen.repo_id, chosen.revision, cache_dir=cache_dir) is None:
        if elsewhere := _found_elsewhere(chosen, cache_dir):
            raise ModelUnavailableError(f"model {chosen.name!r} ({chosen.repo_id}): {elsewhere}")
        raise ModelUnavailableError(
            f"model {chosen.name!r}: weights for {chosen.repo_id} are not in the local HF cache "
            f"({cache_dir or hub_cache_dir()}); fix: run `vgkit prefetch --model {chosen.name}` "
            f"(about {chosen.download_gb:.0f} GB), or use --model {chosen.name}-tiny"
        )
    if gpu is None:
        raise ModelUnavailableError(
            f"model {chosen.name!r} needs a CUDA GPU and none was found; "
            f"fix: run on a GPU instance, or use --model {chosen.name}-tiny"
        )
    return ModelChoice(chosen, "cuda", f"requested, GPU {gpu}", gpu_memory_gib=memory)
