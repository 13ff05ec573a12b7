"""Locked baseline configs: one YAML file per model beside this module (package data).

The files are the single source of a model's baseline (fps, size, steps, guidance, token budget,
scheduler and dtype, as documentation of what the checkpoint brings). They ship inside the
package, so an installed vgkit (``pip install .``) finds them wherever it runs. They are read on
first use, not at import, so the registry stays importable with the standard library alone.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from vgkit.errors import ModelUnavailableError, SpecError

__all__ = ["BASELINES_DIR", "Baseline", "baseline_path", "read_baseline"]

BASELINES_DIR = Path(__file__).resolve().parent


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


# Each field's accepted YAML types (a float field takes an int too).
_TYPES: dict[str, tuple[type, ...]] = {
    name: (int, float) if hint is float else (hint,) for name, hint in typing.get_type_hints(Baseline).items()
}


def baseline_path(name: str) -> Path:
    """Where vgkit's own model ``name`` keeps its baseline: ``vgkit/models/baselines/<name>.yaml``."""
    return BASELINES_DIR / f"{name}.yaml"


def read_baseline(path: Path) -> Baseline:
    """Read and check a baseline file (the fields of ``Baseline``, each of its type)."""
    import yaml

    if not path.is_file():
        raise ModelUnavailableError(
            f"baseline file {path} is missing; fix: reinstall vgkit (or restore the file from git in a checkout)"
        )
    data: Any = yaml.safe_load(path.read_text())
    example = baseline_path("wan22")
    if not isinstance(data, dict):
        raise SpecError(f"{path}: must be a mapping of baseline fields; fix: see {example}")
    unknown = sorted(set(data) - set(_TYPES))
    missing = sorted({f.name for f in dataclasses.fields(Baseline) if f.default is dataclasses.MISSING} - set(data))
    if unknown or missing:
        raise SpecError(f"{path}: unknown fields {unknown}, missing fields {missing}; fix: match {example}")
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, _TYPES[key]):
            raise SpecError(f"{path}: {key} = {value!r} has the wrong type; fix: write a {_TYPES[key][0].__name__}")
    return Baseline(**data)
