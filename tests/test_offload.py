"""Offloaded presets through vgkit's denoise and its separate decode, with a device boundary on CPU.

Model, sequential and group offload only matter when the execution device is not the CPU: the
offload hooks park weights on the CPU and move them (and the inputs) to the execution device for
each forward. A CPU-only machine has no second device, so these tests bring one: ``StandInDevice``
makes torch's ``meta`` device carry data. Every ``meta`` storage gets a CPU storage of the same
size behind it; each op on ``meta`` tensors runs on those CPU storages and returns ``meta``
tensors again, and an op that mixes a ``meta`` tensor with a CPU tensor (other than a 0-dim CPU
scalar, which CUDA accepts too) raises, as CUDA would. The offloading itself is the real code:
diffusers' ``enable_model_cpu_offload`` / ``enable_sequential_cpu_offload`` /
``enable_group_offload`` and accelerate's hooks, called with ``device="meta"`` through vgkit's
``apply_preset``.

Test-only shims sit where ``meta`` is not a backend like CUDA in torch itself: torch has no
``torch.meta`` device module (diffusers asks it to empty its cache, as it does ``torch.cuda``),
so the tests give it an empty one; the ``tensor.data = other`` setter refuses a CPU <-> meta swap
that it allows for CPU <-> CUDA (diffusers' group offload moves weights that way), so the tests
swap the tensor's contents instead for that one case; and ``StandInFunctions`` covers the two
calls that reach ``meta`` around dispatch (``.to("meta:0")``, ``torch.tensor(..., device=)``).

The stand-in device can also run out of memory (``fail_once_at``): the next given op on it raises
``torch.OutOfMemoryError``, as CUDA's allocator would for its output, inside the real decode.
"""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pytest

from tests.tiny_models import clip_request
from vgkit.errors import SpecError
from vgkit.generate.generator import ClipRequest, InProcessGenerator, decode_with_retries
from vgkit.hub.checkpoints import locate_checkpoint
from vgkit.models import ModelAdapter, adapter
from vgkit.models.base import CPU_PRESET, Preset

FAMILIES = ["wan22-tiny", "cogvideox15-tiny", "hunyuan-i2v-tiny"]
OFFLOADS = [mode for mode in Preset.offload_modes() if mode != "none"]
APPLIED = {
    "model": "model-cpu-offload",
    "sequential": "sequential-cpu-offload",
    "group": "group-offload-leaf",
    "group-block": "group-offload-block",
}
# Ops that CUDA also accepts with tensors on two devices (copies, and indexing with CPU indices).
_CROSS_DEVICE_OPS = {
    "aten::copy_",
    "aten::_to_copy",
    "aten::index.Tensor",
    "aten::index_put_",
    "aten::_index_put_impl_",
}


def _stand_in_device_class() -> type:
    """``StandInDevice``, built on first use so that collecting this module imports no torch."""
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten, tree_map

    meta = torch.device("meta")

    class StandInDevice(TorchDispatchMode):
        """While active, ``meta`` tensors hold data (see the module docstring)."""

        def __init__(self) -> None:
            super().__init__()
            self._data: dict[Any, torch.UntypedStorage] = {}  # meta storage -> its CPU storage
            self.calls: Counter[tuple[str, str]] = Counter()  # (op, device) -> count
            self._fail_at: str | None = None

        def fail_once_at(self, op: str) -> None:
            """The next ``op`` (e.g. ``aten::convolution``) on the device runs out of memory, as a CUDA
            allocator would when allocating its output: ``torch.OutOfMemoryError``."""
            self._fail_at = op

        def _cpu(self, tensor: torch.Tensor) -> torch.Tensor:
            if tensor.numel() == 0:  # no data to keep (some meta kernels give empty results a storage of their own)
                return torch.empty_strided(tensor.size(), tensor.stride(), dtype=tensor.dtype)
            storage = self._data.get(StorageWeakRef(tensor.untyped_storage()))
            if storage is None:
                raise RuntimeError(f"stand-in device: a meta tensor {tuple(tensor.shape)} made outside it has no data")
            view = torch.empty(0, dtype=tensor.dtype)
            return view.set_(storage, tensor.storage_offset(), tensor.size(), tensor.stride())

        def _meta(self, tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            shell = torch.empty(storage.nbytes(), dtype=torch.uint8, device=meta).untyped_storage()
            self._data[StorageWeakRef(shell)] = storage
            if len(self._data) % 1024 == 0:  # forget the storages of freed meta tensors
                for key in [key for key in self._data if key.expired()]:
                    del self._data[key]
            out = torch.empty(0, dtype=tensor.dtype, device=meta)
            return out.set_(shell, tensor.storage_offset(), tensor.size(), tensor.stride())

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            tensors = [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, torch.Tensor)]
            on_meta = any(t.device.type == "meta" for t in tensors)
            device = kwargs.get("device")
            to_meta = torch.device(device).type == "meta" if device is not None else on_meta
            name = func._schema.name
            self.calls[(name, "meta" if on_meta or to_meta else "cpu")] += 1
            if not (on_meta or to_meta):
                return func(*args, **kwargs)
            mixed = [t for t in tensors if t.device.type != "meta" and t.dim() > 0]
            if on_meta and mixed and name not in _CROSS_DEVICE_OPS:
                raise RuntimeError(
                    f"Expected all tensors to be on the same device, but found at least two devices, meta and "
                    f"{mixed[0].device}! ({func}: inputs and weights on different devices)"
                )
            if name == self._fail_at:
                self._fail_at = None
                raise torch.OutOfMemoryError(f"stand-in device: out of memory in {func}")
            returns = func._schema.returns
            if returns and all(r.alias_info is not None and not r.alias_info.is_write for r in returns):
                return func(*args, **kwargs)  # a view: the meta kernel shares the meta storage, so its data too
            cpu_args, cpu_kwargs = tree_map(
                lambda x: self._cpu(x) if isinstance(x, torch.Tensor) and x.device.type == "meta" else x,
                (args, kwargs),
            )
            if device is not None:
                cpu_kwargs["device"] = torch.device("cpu")
            out = func(*cpu_args, **cpu_kwargs)
            if returns and all(r.alias_info is not None and r.alias_info.is_write for r in returns):
                named = dict(zip((a.name for a in func._schema.arguments), args, strict=False)) | kwargs
                written = [named[a.name] for a in func._schema.arguments if a.alias_info and a.alias_info.is_write]
                return written[0] if len(returns) == 1 else tuple(written)  # in place: the tensors written to
            if not to_meta:
                return out
            return tree_map(lambda x: self._meta(x) if isinstance(x, torch.Tensor) else x, out)

    return StandInDevice


def _stand_in_functions_class() -> type:
    """``StandInFunctions``: the two calls that reach ``meta`` without passing through dispatch."""
    import torch
    from torch.overrides import TorchFunctionMode

    def on_meta(value: Any) -> bool:
        return isinstance(value, torch.device | str) and str(value).split(":")[0] == "meta"

    class StandInFunctions(TorchFunctionMode):
        """``tensor.to("meta:0")`` as ``tensor.to("meta")`` (meta tensors carry no index, and a
        copy would lose a Parameter's class where ``cuda:0`` to ``cuda:0`` is a no-op), and
        ``torch.tensor(data, device="meta")`` built on the CPU first (torch copies it to the device
        with Python dispatch switched off, which would drop the data)."""

        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            if func is torch.Tensor.to:
                args = tuple(torch.device("meta") if on_meta(a) else a for a in args)
                kwargs = {k: torch.device("meta") if on_meta(v) else v for k, v in kwargs.items()}
            elif func in (torch.tensor, torch.as_tensor) and on_meta(kwargs.get("device")):
                return func(*args, **{**kwargs, "device": "cpu"}).to("meta")
            return func(*args, **kwargs)

    return StandInFunctions


def _data_setter() -> Any:
    """``tensor.data = other``, also from CPU to meta and back (see the module docstring)."""
    import torch

    base = torch._C.TensorBase.__dict__["data"]

    class Data:
        def __get__(self, obj: Any, cls: Any = None) -> Any:
            return self if obj is None else base.__get__(obj, cls)

        def __set__(self, obj: torch.Tensor, value: torch.Tensor) -> None:
            if {obj.device.type, value.device.type} != {"cpu", "meta"}:
                base.__set__(obj, value)
                return
            alias = value.detach()  # shares value's storage, as .data = value would
            if isinstance(obj, torch.nn.Parameter):
                alias = torch.nn.Parameter(alias, requires_grad=obj.requires_grad)
            torch.utils.swap_tensors(obj, alias)

    return Data()


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The stand-in execution device ``meta`` (its shims in place); ``with stand_in:`` makes it live."""
    import torch

    monkeypatch.setattr(torch, "meta", types.ModuleType("torch.meta"), raising=False)
    monkeypatch.setattr(torch.Tensor, "data", _data_setter())
    torch.get_device_module.cache_clear()
    try:
        yield _stand_in_device_class()()
    finally:
        torch.get_device_module.cache_clear()


def _request(name: str) -> ClipRequest:
    """The smallest clip each family takes (32x32, 1 step, a short text budget)."""
    frames = 9 if name.startswith("cogvideox") else 5
    return replace(clip_request(name, frames, width=32, height=32), steps=1, max_sequence_length=64)


def _with_preset(model: ModelAdapter, preset: Preset) -> ModelAdapter:
    """``model`` with one more preset (the adapters are frozen data)."""
    return replace(model, presets=(*model.presets, preset))


@dataclass(frozen=True)
class Reference:
    """The same request with the same dtypes, nothing offloaded, all on the CPU."""

    latents: Any
    frames: np.ndarray


@pytest.fixture(scope="module")
def references() -> dict[tuple[str, ...], Reference]:
    """Reference runs by (model, dtypes), filled by ``_reference``."""
    return {}


def _reference(model: ModelAdapter, preset: Preset, cache: dict[tuple[str, ...], Reference]) -> Reference:
    key = (model.name, preset.transformer_dtype, preset.other_dtype, str(preset.vae_dtype), str(preset.fp8_layerwise))
    if key not in cache:
        plain = replace(preset, name="plain", device="cpu", offload="none")
        gen = InProcessGenerator(_with_preset(model, plain), locate_checkpoint(model), device="cpu", preset="plain")
        denoised = gen.denoise(_request(model.name))
        cache[key] = Reference(denoised.latents, gen.decode(denoised.latents, attempt="as_loaded"))
    return cache[key]


def _run_offloaded(
    model: ModelAdapter, preset: Preset, mode: Any, reference: Reference, *, fail_decode_at: str | None = None
) -> tuple[InProcessGenerator, np.ndarray, list[str]]:
    """Load with ``preset`` on the stand-in device and denoise (the latents must be the CPU run's);
    then decode the reference latents with vgkit's retries, counting the ops of the decode alone."""
    import torch

    with torch.no_grad(), mode, _stand_in_functions_class()():
        gen = InProcessGenerator(
            _with_preset(model, preset), locate_checkpoint(model), device="meta", preset=preset.name
        )
        assert gen.pipe._execution_device.type == "meta"
        denoised = gen.denoise(_request(model.name))
        assert denoised.latents.device.type == "cpu"  # kept on the host, to be saved before the decode
        # The same math on the same CPU; in bfloat16 (a few ulps) more than in float32 the roundings
        # differ where the hooks change an op's inputs' memory layout.
        tolerance = 1e-3 if preset.transformer_dtype == "float32" else 0.1
        torch.testing.assert_close(denoised.latents, reference.latents, rtol=tolerance, atol=tolerance)
        mode.calls.clear()
        if fail_decode_at is not None:
            mode.fail_once_at(fail_decode_at)
        frames, tried = decode_with_retries(gen, reference.latents, index=0)
    return gen, frames, tried


def _assert_decoded_on_the_stand_in(
    gen: InProcessGenerator, mode: Any, frames: np.ndarray, reference: Reference
) -> None:
    """The VAE's convolutions all ran on the execution device, and gave the CPU run's frames."""
    assert mode.calls[("aten::convolution", "meta")] > 0
    assert mode.calls[("aten::convolution", "cpu")] == 0
    assert frames.shape == reference.frames.shape
    # The same kernels on the same latents; one uint8 step where the hooks change an op's memory layout.
    assert np.abs(frames.astype(np.int16) - reference.frames).max() <= 1
    if "sequential-cpu-offload" not in gen.pipe.vgkit_preset["applied"]:
        # The VAE's weights rest on the CPU again after the decode (sequential offload keeps them on meta).
        assert {p.device.type for p in gen.pipe.vae.parameters()} == {"cpu"}


@pytest.mark.parametrize("offload", OFFLOADS)
@pytest.mark.parametrize("name", FAMILIES)
def test_each_offload_denoises_and_decodes_on_the_execution_device(
    name: str, offload: str, stand_in: Any, references: dict[tuple[str, ...], Reference]
) -> None:
    """Failed on the decode that moved the latents to ``vae.device`` (the CPU, under model offload)
    while the offload hook ran the VAE on the execution device: inputs and weights on two devices."""
    model = adapter(name)
    preset = replace(CPU_PRESET, name=f"stand-in-{offload}", device="meta", offload=offload)
    reference = _reference(model, preset, references)
    gen, frames, tried = _run_offloaded(model, preset, stand_in, reference)
    assert gen.pipeline_info()["preset_applied"]["applied"] == [APPLIED[offload]]
    assert tried == ["as_loaded"]
    _assert_decoded_on_the_stand_in(gen, stand_in, frames, reference)


def _offload_presets() -> list[Any]:
    return [
        pytest.param(name, preset.name, id=f"{name}-{preset.name}")
        for name in FAMILIES
        for preset in adapter(name).presets
        if preset.offload != "none"
    ]


@pytest.mark.parametrize(("name", "preset_name"), _offload_presets())
def test_each_familys_offload_preset_runs_as_published_on_the_execution_device(
    name: str, preset_name: str, stand_in: Any, references: dict[tuple[str, ...], Reference]
) -> None:
    """The families' own offload presets (dtypes, fp8, VAE tiling included) on the stand-in device."""
    model = adapter(name)
    preset = replace(model.preset(preset_name), name=f"{preset_name}-stand-in", device="meta")
    reference = _reference(model, preset, references)
    gen, frames, tried = _run_offloaded(model, preset, stand_in, reference)
    assert tried == ["as_loaded"]
    assert set(gen.pipeline_info()["preset_applied"]["applied"]) >= {APPLIED[preset.offload], "vae-tiling"}
    _assert_decoded_on_the_stand_in(gen, stand_in, frames, reference)


def test_a_decode_out_of_memory_on_the_execution_device_is_retried_with_tiling(
    stand_in: Any, references: dict[tuple[str, ...], Reference]
) -> None:
    model = adapter("wan22-tiny")
    preset = replace(CPU_PRESET, name="stand-in-model", device="meta", offload="model")
    reference = _reference(model, preset, references)
    gen, frames, tried = _run_offloaded(model, preset, stand_in, reference, fail_decode_at="aten::convolution")
    assert tried == ["as_loaded", "vae_tiling"]
    assert not gen.pipe.vae.use_tiling  # the leaner mode was for that decode only
    _assert_decoded_on_the_stand_in(gen, stand_in, frames, reference)


def test_offload_modes_are_checked_and_only_accelerator_offloads_are_blocked_on_cpu() -> None:
    with pytest.raises(ValueError, match=r"preset 'x': offload = 'disk', not one of"):
        Preset(name="x", device="cuda", offload="disk")
    blockers = {mode: Preset(name="x", device="cuda", offload=mode).cpu_blocker() for mode in Preset.offload_modes()}
    assert blockers == {
        "none": None,
        "model": "preset 'x': enable_model_cpu_offload needs an accelerator (CUDA)",
        "sequential": "preset 'x': enable_sequential_cpu_offload needs an accelerator (CUDA)",
        "group": None,
        "group-block": None,
    }

    model = _with_preset(adapter("wan22-tiny"), Preset(name="seq", device="cuda", offload="sequential"))
    with pytest.raises(SpecError, match=r"enable_sequential_cpu_offload needs an accelerator .*fix: run on a CUDA GPU"):
        model.resolve_preset("seq", device="cpu")
