"""Locked baseline configs, one YAML file per model in ``params/models/<name>.yaml``.

The files are the single source of a model's baseline (fps, size, steps, guidance, token budget,
scheduler and dtype, as documentation of what the checkpoint brings). They are read on first use,
not at import, so the registry stays importable with the standard library alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from vgkit.errors import ModelUnavailableError, SpecError
from vgkit.settings import repo_root

__all__ = ["Baseline", "baseline_path", "load_baseline"]


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The locked baseline generation config of a model; a run changes it only by overrides."""

    fps: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    max_sequence_length: int
    scheduler: str = ""
    dtype: str = ""


_TYPES: dict[str, tuple[type, ...]] = {
    "fps": (int,),
    "width": (int,),
    "height": (int,),
    "steps": (int,),
    "guidance_scale": (int, float),
    "max_sequence_length": (int,),
    "scheduler": (str,),
    "dtype": (str,),
}


def baseline_path(name: str) -> Path:
    return repo_root() / "params" / "models" / f"{name}.yaml"


def load_baseline(name: str) -> Baseline:
    """Read and check ``params/models/<name>.yaml``."""
    import yaml

    path = baseline_path(name)
    if not path.is_file():
        raise ModelUnavailableError(f"model {name!r}: baseline file {path} is missing; fix: restore it from git")
    data: Any = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise SpecError(f"{path}: must be a mapping of baseline fields; fix: see params/models/wan22.yaml")
    unknown = sorted(set(data) - set(_TYPES))
    missing = sorted({f.name for f in dataclasses.fields(Baseline) if f.default is dataclasses.MISSING} - set(data))
    if unknown or missing:
        raise SpecError(
            f"{path}: unknown fields {unknown}, missing fields {missing}; fix: match params/models/wan22.yaml"
        )
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, _TYPES[key]):
            raise SpecError(f"{path}: {key} = {value!r} has the wrong type; fix: write a {_TYPES[key][0].__name__}")
    return Baseline(**data)
