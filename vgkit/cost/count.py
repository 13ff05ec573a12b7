"""Count a real component's FLOPs, parameters and activation memory without weights or a GPU.

Each component is built from its real diffusers/transformers class and config on the ``meta``
device (shapes only: a 5-13 B parameter transformer builds in about a second) and run once under
``torch.utils.flop_counter.FlopCounterMode`` and a live-bytes tracker:

- FLOPs: the counter's total. On ``meta``, ``scaled_dot_product_attention`` takes its math path,
  so attention is counted as the two ``bmm`` of QK^T and PV (4 x L^2 x d per layer and batch row),
  next to the linear layers (2 x params x tokens). Tests hold both against hand formulas.
- Activation peak: the largest sum of live tensors the call allocates, beyond its weights and
  inputs. Attention is tracked as a fused kernel would run it (flash / memory-efficient SDPA on a
  GPU): its output only, never the L x L score matrix that the math path makes on ``meta``.

Results are cached per (class, config, input shapes, dtype) in memory and on disk
(``settings.cost_cache_dir()``), keyed by the torch, diffusers and transformers versions too (their
public versions: a CPU and a CUDA build of torch count alike on ``meta``); the counts of the presets'
native sizes, of the fixes a refusal of them projects, and the VAEs' tile geometry ship in
``counts.json`` (``python -m vgkit.cost.fit --write-counts`` remakes it), so a projection found
there imports neither torch nor diffusers.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["Counted", "cached_record", "count_call"]

Build = Callable[[], Any]  # makes the module (on meta)
MakeInputs = Callable[[Any], dict[str, Any]]  # module -> the keyword inputs of one call
Run = Callable[[Any, dict[str, Any]], Any]  # (module, inputs) -> runs the call


@dataclass(frozen=True)
class Counted:
    """One call of one component."""

    flops: float
    linear_flops: float  # addmm/mm/linear
    attention_flops: float  # bmm (the math-path attention on meta)
    other_flops: float  # convolutions and the rest
    params: int
    activation_peak_bytes: int
    input_bytes: int


class _LiveBytes:
    """Tracks the bytes of tensors created inside a dispatch mode until Python frees them."""

    def __init__(self, external: set[int]) -> None:
        self.external = external  # storages that existed before (weights, inputs): not activations
        self.refs: dict[int, int] = {}
        self.live = 0
        self.peak = 0
        self.paused = 0

    def track(self, tensor: Any) -> None:
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in self.external:
            return
        if key not in self.refs:
            self.refs[key] = 0
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
        self.refs[key] += 1
        weakref.finalize(tensor, self._release, key, storage.nbytes())

    def _release(self, key: int, nbytes: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            del self.refs[key]
            self.live -= nbytes


def _modes(tracker: _LiveBytes) -> tuple[Any, Any]:
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Dispatch(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            if not tracker.paused:
                for leaf in tree_leaves(out):
                    if isinstance(leaf, torch.Tensor):
                        tracker.track(leaf)
            return out

    class FusedAttention(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if func is not F.scaled_dot_product_attention:
                return func(*args, **(kwargs or {}))
            tracker.paused += 1
            try:
                out = func(*args, **(kwargs or {}))
            finally:
                tracker.paused -= 1
            tracker.track(out)
            return out

    return Dispatch(), FusedAttention()


_MEMO: dict[str, dict[str, Any]] = {}  # by cache key: the records found or computed in this process
# Records shipped with vgkit (fit.write_packaged_counts): the counts of the presets' native clips and
# of a refusal's fixes of them, and the VAEs' tile geometry, under the pinned versions, so that
# `vgkit models`, `vgkit check` and a refused `vgkit run` answer at once; a key under other versions
# misses and recounts.
PACKAGED = Path(__file__).with_name("counts.json")


@cache
def _packaged() -> dict[str, dict[str, Any]]:
    try:
        data: dict[str, dict[str, Any]] = json.loads(PACKAGED.read_text())
    except (OSError, ValueError):
        return {}
    return data


@cache
def _library_versions() -> dict[str, str]:
    """The versions a count depends on, from the installed metadata (nothing imported), without a
    build's local label: on ``meta`` the CPU wheel (2.13.0+cpu) counts what a CUDA one (2.13.0,
    2.13.0+cu128) counts, so the counts packaged on a CPU machine serve a GPU rental."""
    from importlib.metadata import version

    return {name: version(name).split("+")[0] for name in ("torch", "diffusers", "transformers")}


def _cache_key(parts: dict[str, Any]) -> str:
    blob = json.dumps({**parts, **_library_versions(), "schema": 1}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def count_call(key_parts: dict[str, Any], build: Build, call: MakeInputs, run: Run, *, dtype: str) -> Counted:
    """Build a module with ``build()`` on ``meta`` in ``dtype``, make its inputs with ``call``, and
    count ``run(module, inputs)``. Cached by ``key_parts`` (which must name everything that
    shapes the count) in memory and on disk."""
    record = cached_record(
        {**key_parts, "dtype": dtype},
        lambda: asdict(_count(build, call, run, dtype=dtype)),
        keys=tuple(f.name for f in fields(Counted)),
    )
    return Counted(**record)


def cached_record(key_parts: dict[str, Any], compute: Callable[[], dict[str, Any]], *, keys: tuple[str, ...]) -> Any:
    """``compute()``'s record (a JSON object with exactly ``keys``), found by ``key_parts`` and the
    library versions in memory, then in the packaged ``counts.json``, then in the on-disk cache;
    computed and written there when none holds a well-formed one."""
    from vgkit.settings import cost_cache_dir

    key = _cache_key(key_parts)
    record: Any = _MEMO.get(key) or _packaged().get(key)
    if not _well_formed(record, keys):
        path = cost_cache_dir() / f"{key}.json"
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = None
        if not _well_formed(record, keys):
            record = compute()
            from vgkit.records.artifacts import atomic_write_json

            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_json(path, record)
            except OSError:
                pass  # a read-only cache only costs a recount
    _MEMO[key] = record
    return record


def _well_formed(record: Any, keys: tuple[str, ...]) -> bool:
    return isinstance(record, dict) and sorted(record) == sorted(keys)


def _count(build: Build, call: MakeInputs, run: Run, *, dtype: str) -> Counted:
    import torch
    from torch.utils._pytree import tree_leaves
    from torch.utils.flop_counter import FlopCounterMode

    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))  # .to(dtype) on a meta model is not needed this way
    try:
        with torch.device("meta"):
            module = build().eval()
            inputs = call(module)
    finally:
        torch.set_default_dtype(previous)
    tensors = [t for t in tree_leaves(inputs) if isinstance(t, torch.Tensor)]
    weights = [*module.parameters(), *module.buffers()]
    tracker = _LiveBytes({int(t.untyped_storage()._cdata) for t in tensors + weights})
    dispatch, attention = _modes(tracker)
    with FlopCounterMode(display=False) as counter, torch.no_grad(), attention, dispatch:
        out = run(module, inputs)
    del out
    by_op = {str(op).split(".")[-1]: float(n) for op, n in counter.get_flop_counts()["Global"].items()}
    linear = sum(n for op, n in by_op.items() if op in ("addmm", "mm", "linear"))
    attention_flops = by_op.get("bmm", 0.0) + by_op.get("baddbmm", 0.0)
    total = float(counter.get_total_flops())
    return Counted(
        flops=total,
        linear_flops=linear,
        attention_flops=attention_flops,
        other_flops=total - linear - attention_flops,
        params=int(sum(p.numel() for p in module.parameters())),
        activation_peak_bytes=int(tracker.peak),
        input_bytes=int(sum(t.numel() * t.element_size() for t in tensors)),
    )
