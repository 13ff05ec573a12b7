"""Run specs: global constants + shot cards, loaded from YAML or JSON and validated strictly.

A spec is where a user's mistakes enter, so every problem becomes one ``SpecError`` line that
names the field path (``shots[2].camera``), the bad value and the fix, before any model loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator

from vgkit.errors import SpecError

__all__ = [
    "CAMERA_MOVES",
    "GenerationOverrides",
    "GlobalConstants",
    "RunSpec",
    "ShotCard",
    "SpeedSpec",
    "load_spec",
]

CameraMove = Literal["static", "pan", "dolly", "tilt", "push-in", "orbit"]
CAMERA_MOVES: tuple[str, ...] = ("static", "pan", "dolly", "tilt", "push-in", "orbit")

MIN_SHOT_S = 5.0
MAX_SHOT_S = 10.0
MIN_IMAGE_PX = 64
MAX_IMAGE_PX = 8192


# Numbers and flags must be written as such: "5" is not a duration and 1 is not ``true``.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class GlobalConstants(_Strict):
    """What stays fixed for a whole run; every clip's prompt starts with these."""

    style: Text = Field(min_length=1, description="style and realism level")
    era_location: Text = Field(min_length=1, description="era, location and environment constraints")
    lighting: Text = Field(min_length=1, description="lighting and visibility constraints")
    lens: Text = Field(min_length=1, description="lens language and camera style")
    aspect: Text = Field(min_length=1, description="aspect ratio and composition constraints")


class ShotCard(_Strict):
    """One clip: what is seen, what moves, where, at most one camera move, how long."""

    subject: Text = Field(min_length=1)
    action: Text = Field(min_length=1)
    environment: Text = Field(min_length=1)
    camera: CameraMove = "static"
    duration_s: Float = Field(ge=MIN_SHOT_S, le=MAX_SHOT_S)
    seed: Int | None = Field(default=None, ge=0, lt=2**63)
    negative_prompt: Text | None = None
    source_image: Path | None = Field(
        default=None, description="keyframe-first: start this clip from this image, not the previous last frame"
    )


class GenerationOverrides(_Strict):
    """Run-level changes to the model's baseline config; logged as differences from baseline."""

    steps: Int | None = Field(default=None, ge=1, le=200)
    guidance_scale: Float | None = Field(default=None, ge=0.0, le=30.0)
    width: Int | None = Field(default=None, ge=32, le=4096)
    height: Int | None = Field(default=None, ge=32, le=4096)


class SpeedSpec(_Strict):
    """Optional speed features (vgkit.models.speed), all off by default; each has a quality cost."""

    cache: Literal["off", "first-block", "magcache", "magcache-calibrate"] = "off"
    cache_threshold: Float | None = Field(default=None, ge=0.0)
    mag_ratios: list[Float] | None = None
    attention_backend: Text = "default"
    compile: Literal["off", "regional"] = "off"


class RunSpec(_Strict):
    """A whole job: reference image, global constants, shot cards, seed and optional overrides."""

    name: Text = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    model: Text = "auto"
    preset: Text = Field(
        default="auto", min_length=1, description="memory/speed preset (4090, 80gb, cpu); auto picks by device"
    )
    reference_image: Path
    seed: Int = Field(default=0, ge=0, lt=2**63)
    globals: GlobalConstants
    negative_prompt: Text = ""
    shots: list[ShotCard] = Field(min_length=1, max_length=64)
    overrides: GenerationOverrides = GenerationOverrides()
    speed: SpeedSpec = SpeedSpec()
    allow_any_length: Bool = Field(default=False, description="accept a final video outside 30-60 s (tests, previews)")
    clip_timeout_s: Float = Field(default=600.0, gt=0, description="deadline for one clip (denoise + decode + encode)")
    run_timeout_s: Float | None = Field(
        default=None, gt=0, description="deadline for the run; default clips x clip_timeout_s"
    )

    @field_validator("reference_image")
    @classmethod
    def _image_is_a_path(cls, value: Path) -> Path:
        if str(value).strip() == "":
            raise ValueError("must name an image file")
        return value

    def shot_seed(self, index: int) -> int:
        """The seed of clip ``index``: the shot's own, else the run seed plus the index."""
        own = self.shots[index].seed
        return own if own is not None else self.seed + index


_FIXES = {
    "missing": "add this field",
    "extra_forbidden": "remove it or fix its spelling",
    "literal_error": "use one of the values listed",
    "greater_than_equal": "raise it",
    "less_than_equal": "lower it",
    "greater_than": "raise it",
    "less_than": "lower it",
    "too_short": "add at least the minimum",
    "too_long": "shorten it",
    "string_too_short": "give it a non-empty value",
    "string_pattern_mismatch": "use letters, digits, '.', '_' and '-' only",
    "int_type": "write a whole number without quotes",
    "float_type": "write a number without quotes",
    "bool_type": "write true or false",
    "string_type": "write text (quote it if YAML reads it as a number or date)",
    "model_type": "write a mapping of fields (key: value lines)",
    "list_type": "write a list (lines starting with '- ')",
    "path_type": "write a file path",
}


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _one_line(source: str, err: ValidationError) -> SpecError:
    first = err.errors()[0]
    field = _field_path(tuple(first["loc"]))
    value = first.get("input")
    shown = "" if first["type"] == "missing" else f" = {value!r}"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    fix = _FIXES.get(first["type"], "correct the value")
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return SpecError(f"{source}: {field}{shown}: {first['msg']}; fix: {fix}{more}")


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SpecError(f"spec {str(path)!r} does not exist; fix: pass the path of a .yaml or .json spec")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        detail = " ".join(str(exc).split())
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise SpecError(f"{path}: not valid {kind}: {detail}; fix: check indentation and quoting there") from None
    if not isinstance(data, dict):
        raise SpecError(
            f"{path}: (top level) is {type(data).__name__}, not a mapping of fields; "
            "fix: start with `name:`, `reference_image:`, `globals:`, `shots:` (see params/demo.yaml)"
        )
    return data


def _check_image(source: str, field: str, path: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise SpecError(f"{source}: {field} = '{path}': file not found; fix: give a path relative to the spec")
    try:
        with Image.open(path) as img:
            width, height = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise SpecError(f"{source}: {field} = '{path}': not a readable image ({exc}); fix: use PNG or JPEG") from None
    if min(width, height) < MIN_IMAGE_PX or max(width, height) > MAX_IMAGE_PX:
        raise SpecError(
            f"{source}: {field} = '{path}': {width}x{height} px is outside {MIN_IMAGE_PX}-{MAX_IMAGE_PX} px; "
            "fix: resize the image"
        )


def load_spec(path: str | Path) -> RunSpec:
    """Read, validate and return the spec at ``path``; relative image paths resolve against it."""
    spec_path = Path(path)
    data = _read_mapping(spec_path)
    try:
        spec = RunSpec.model_validate(data)
    except ValidationError as err:
        raise _one_line(str(spec_path), err) from None
    image = _resolve(spec_path, spec.reference_image)
    _check_image(str(spec_path), "reference_image", image)
    shots = list(spec.shots)
    for i, shot in enumerate(shots):
        if shot.source_image is not None:
            keyframe = _resolve(spec_path, shot.source_image)
            _check_image(str(spec_path), f"shots[{i}].source_image", keyframe)
            shots[i] = shot.model_copy(update={"source_image": keyframe})
    return spec.model_copy(update={"reference_image": image, "shots": shots})


def _resolve(spec_path: Path, path: Path) -> Path:
    return path if path.is_absolute() else (spec_path.parent / path).resolve()
