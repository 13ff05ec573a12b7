"""Strict pydantic building blocks of the spec: no silent coercion ("12" is not 12), no unknown keys."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Strict

__all__ = ["Bool", "Float", "Int", "StrictModel", "Text"]

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]


class StrictModel(BaseModel):
    """Frozen, unknown keys refused, text stripped."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
