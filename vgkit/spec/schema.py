"""Run specs: global constants + shot cards, loaded from YAML or JSON and validated strictly.

A spec is where a user's mistakes enter, so every problem becomes one ``SpecError`` line that
names the field path (``shots[2].camera``), the bad value and the fix, before any model loads.

The text is read within a budget, so a hostile spec is refused in about a second at worst, not
after minutes and gigabytes: a regular file (a FIFO or device is refused unread) of at most
``MAX_SPEC_BYTES``, nesting at most ``MAX_SPEC_DEPTH`` levels and at most ``MAX_SPEC_NODES`` values
once YAML aliases are expanded (an alias counts at every use, so a "billion laughs" alias bomb stops
early); an alias inside the value it names is refused, and so is a key given twice in one mapping
(YAML and JSON would silently keep the last). Values shown in errors are cut short.
"""

from __future__ import annotations

import json
import os
import reprlib
import stat
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from vgkit.errors import SpecError
from vgkit.spec.choices import CAMERA_MOVES, CameraMove, ColourMode, SeamMode, Transition
from vgkit.spec.speed_options import SpeedOptions
from vgkit.spec.strict import Bool, Float, Int, StrictModel, Text

__all__ = [
    "CAMERA_MOVES",
    "GlobalConstants",
    "LongShotSpec",
    "RunSpec",
    "ShotCard",
    "StitchSpec",
    "load_spec",
    "read_spec_data",
]

MIN_SHOT_S = 5.0
MAX_SHOT_S = 10.0
MIN_IMAGE_PX = 64
MAX_IMAGE_PX = 8192
MAX_SPEC_BYTES = 256 * 1024  # a 64-shot spec with long prompts is ~100 KB
MAX_SPEC_DEPTH = 32
MAX_SPEC_NODES = 20_000  # values, aliases expanded; a 64-shot spec has ~1,000


# Numbers and flags must be written as such: "5" is not a duration and 1 is not ``true``.


class GlobalConstants(StrictModel):
    """What stays fixed for a whole run; every clip's prompt starts with these."""

    style: Text = Field(min_length=1, description="style and realism level")
    era_location: Text = Field(min_length=1, description="era, location and environment constraints")
    lighting: Text = Field(min_length=1, description="lighting and visibility constraints")
    lens: Text = Field(min_length=1, description="lens language and camera style")
    aspect: Text = Field(min_length=1, description="aspect ratio and composition constraints")


class ShotCard(StrictModel):
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


class GenerationOverrides(StrictModel):
    """Run-level changes to the model's baseline config; logged as differences from baseline."""

    steps: Int | None = Field(default=None, ge=1, le=200)
    guidance_scale: Float | None = Field(default=None, ge=0.0, le=30.0)
    width: Int | None = Field(default=None, ge=32, le=4096)
    height: Int | None = Field(default=None, ge=32, le=4096)


class LongShotSpec(StrictModel):
    """How a shot longer than the model's native clip is made (vgkit.spec.plan; README "Clip lengths")."""

    mode: Literal["interpolate", "extend", "generate", "refuse"] = Field(
        default="interpolate",
        description="interpolate: generate at a lower frame rate within the native frames, interpolate up; "
        "extend: generate the native frames, stretch them by interpolation; generate: ask the model for every "
        "frame (up to its maximum); refuse: stop with the numbers",
    )
    interpolator: Literal["auto", "rife", "minterpolate"] = Field(
        default="auto", description="auto: RIFE when installed, else ffmpeg minterpolate"
    )
    beyond_max_frames: Bool = Field(
        default=False, description="generate mode only: allow more than the model's maximum frames (costly)"
    )


class StitchSpec(StrictModel):
    """How the clips are joined; ``vgkit stitch`` flags override it (vgkit.finish.stitch)."""

    transition: Transition = "cut"
    overlap_frames: Int = Field(default=0, ge=0, le=240, description="crossfade length in frames (0 for a cut)")
    colour: ColourMode = "off"
    colour_anchor: Literal["first_clip", "reference_image"] = "first_clip"
    seam_smoothing: SeamMode = Field(
        default="off", description="re-make a few frames either side of each cut by interpolation"
    )


class RunSpec(StrictModel):
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
    speed: SpeedOptions = SpeedOptions()
    long_shots: LongShotSpec = LongShotSpec()
    stitch: StitchSpec = StitchSpec()
    allow_any_length: Bool = Field(default=False, description="accept a final video outside 30-60 s (tests, previews)")
    clip_timeout_s: Float = Field(default=600.0, gt=0, description="deadline for one clip (denoise + decode + encode)")
    run_timeout_s: Float | None = Field(
        default=None, gt=0, description="deadline for the run; default clips x clip_timeout_s"
    )

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


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 76, 76


def _one_line(source: str, err: ValidationError) -> SpecError:
    first = err.errors()[0]
    field = _field_path(tuple(first["loc"]))
    value = first.get("input")
    shown = "" if first["type"] == "missing" else f" = {_SHORT.repr(value)}"  # bounded: never repr it whole
    if len(shown) > 80:
        shown = shown[:77] + "..."
    fix = _FIXES.get(first["type"], "correct the value")
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return SpecError(f"{source}: {field}{shown}: {first['msg']}; fix: {fix}{more}")


_FLATTEN = "write the values out plainly: no deep nesting, no chains of YAML aliases"
_KEEP_ONE = "keep one of them"
_TOO_BIG = "a spec needs a few hundred values; pass the spec itself, not a data file"


class _OverBudget(Exception):
    """The spec text breaks a reading rule (size, depth, alias, duplicate key): where, and the fix."""

    def __init__(self, what: str, fix: str = _FLATTEN) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader that measures each value as it is composed: nesting depth and size
    with aliases expanded (a value's size is counted at every use of its alias)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._composed = 0
        self._open_anchors: set[str] = set()
        self._measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth), aliases expanded

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1
        self._composed += 1  # every value and alias as written, so a long flat list stops early too
        if self._composed > MAX_SPEC_NODES:
            raise _OverBudget(f"line {line}: more than {MAX_SPEC_NODES} values", _TOO_BIG)
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise _OverBudget(f"line {line}: alias *{event.anchor} is used inside the value it names (a loop)")
            return super().compose_node(parent, index)
        if self._depth >= MAX_SPEC_DEPTH:
            raise _OverBudget(f"line {line}: nested more than {MAX_SPEC_DEPTH} levels deep")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open_anchors.discard(anchor or "")
        if node is not None:
            self._measure(node, line)
        return node

    def _measure(self, node: yaml.Node, line: int) -> None:
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        sizes = [self._measured[id(child)] for child in children]
        values = 1 + sum(size for size, _ in sizes)
        depth = 1 + max((d for _, d in sizes), default=0)
        if values > MAX_SPEC_NODES:
            raise _OverBudget(
                f"line {line}: expands to more than {MAX_SPEC_NODES} values (YAML aliases count at every use)"
            )
        if depth > MAX_SPEC_DEPTH:
            raise _OverBudget(f"line {line}: nested more than {MAX_SPEC_DEPTH} levels deep once aliases expand")
        self._measured[id(node)] = (values, depth)


def _scalar_text(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return _SHORT.repr(node.value)
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"


def _yaml_duplicate(root: yaml.Node) -> str | None:
    """The first key given twice in one mapping (document order), as ``path: ... lines``; else None."""
    stack: list[tuple[yaml.Node, tuple[int | str, ...]]] = [(root, ())]
    seen: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        children: list[tuple[yaml.Node, tuple[int | str, ...]]] = []
        if isinstance(node, yaml.MappingNode):
            first: dict[str, tuple[int, yaml.Node]] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue  # a `<<:` merge is YAML's way to override on purpose
                line = key.start_mark.line + 1
                if key.value in first:
                    first_line, first_value = first[key.value]
                    return (
                        f"{_field_path((*loc, key.value))} is given twice: {_scalar_text(first_value)} on line "
                        f"{first_line}, {_scalar_text(value)} on line {line}"
                    )
                first[key.value] = (line, value)
                children.append((value, (*loc, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, (*loc, i)) for i, item in enumerate(node.value)]
        stack.extend(reversed(children))
    return None


class _JsonObject(dict[str, Any]):
    """A JSON object that remembers a key given twice (``json`` would keep only the last)."""

    duplicate: str | None = None


def _json_object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject()
    for key, value in pairs:
        if key in obj and obj.duplicate is None:
            obj.duplicate = key
        obj[key] = value
    return obj


def _json_problem(data: Any) -> tuple[str, str] | None:
    """A duplicate key or over-deep nesting in parsed JSON (with its field path) and the fix; else None."""
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if len(loc) >= MAX_SPEC_DEPTH:
            return f"{_field_path(loc)}: nested more than {MAX_SPEC_DEPTH} levels deep", _FLATTEN
        if isinstance(value, _JsonObject):
            if value.duplicate is not None:
                return f"{_field_path((*loc, value.duplicate))} is given twice (the last one would win)", _KEEP_ONE
            stack.extend((item, (*loc, key)) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((item, (*loc, i)) for i, item in reversed(list(enumerate(value))))
    return None


def _parse(text: str, *, is_json: bool) -> Any:
    """Parse within the budget; ``_OverBudget`` or the parser's own error on a problem."""
    if is_json:
        try:
            data = json.loads(text, object_pairs_hook=_json_object)
        except RecursionError:
            raise _OverBudget(f"nested more than {MAX_SPEC_DEPTH} levels deep") from None
        if problem := _json_problem(data):
            raise _OverBudget(*problem)
        return data
    loader = _SpecLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if duplicate := _yaml_duplicate(root):
            raise _OverBudget(duplicate, _KEEP_ONE)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _read_text(path: Path) -> str:
    """The spec's text: a regular file (anything else is refused unread) of at most ``MAX_SPEC_BYTES``."""
    from vgkit.spec.images import file_kind

    source = f"spec {str(path)!r}"
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise SpecError(
                f"{source} is {file_kind(mode)}, not a spec file; fix: pass the path of a .yaml or .json spec"
            )
        with open(path, "rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"{source} does not exist; fix: pass the path of a .yaml or .json spec") from None
    except OSError as exc:
        raise SpecError(f"{source} cannot be read ({exc.strerror}); fix: check the path and its permissions") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(
            f"{source} is over {MAX_SPEC_BYTES} bytes, far more than any spec needs; "
            "fix: pass the spec file itself (a few KB of YAML or JSON)"
        )
    return raw.decode("utf-8", errors="replace")


def read_spec_data(path: Path) -> dict[str, Any]:
    """The spec at ``path`` as plain data (not yet validated), read within the budget and refusing
    duplicate keys; every problem is one ``SpecError`` line. Use this, not ``yaml.safe_load``,
    wherever a user's spec file is read."""
    text = _read_text(path)
    is_json = path.suffix.lower() == ".json"
    kind = "JSON" if is_json else "YAML"
    try:
        data = _parse(text, is_json=is_json)
    except _OverBudget as exc:
        raise SpecError(f"{path}: {exc.what}; fix: {exc.fix}") from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        detail = " ".join(str(exc).split())
        detail = detail if len(detail) <= 300 else detail[:297] + "..."
        raise SpecError(f"{path}: not valid {kind}: {detail}; fix: check indentation and quoting there") from None
    if not isinstance(data, dict):
        raise SpecError(
            f"{path}: (top level) is {type(data).__name__}, not a mapping of fields; "
            "fix: start with `name:`, `reference_image:`, `globals:`, `shots:` (see params/demo.yaml)"
        )
    return dict(data)


def _checked_image(spec_path: Path, field: str, path: Path) -> Path:
    """``path`` resolved against the spec's folder, opened and fully decoded now, so a bad image never
    reaches model loading."""
    from vgkit.spec.images import load_rgb

    resolved = path if path.is_absolute() else (spec_path.parent / path).resolve()
    load_rgb(resolved, field=f"{spec_path}: {field}", min_side=MIN_IMAGE_PX, max_side=MAX_IMAGE_PX)
    return resolved


def load_spec(path: str | Path) -> RunSpec:
    """Read, validate and return the spec at ``path``; relative image paths resolve against it."""
    spec_path = Path(path)
    data = read_spec_data(spec_path)
    try:
        spec = RunSpec.model_validate(data)
    except ValidationError as err:
        raise _one_line(str(spec_path), err) from None
    image = _checked_image(spec_path, "reference_image", spec.reference_image)
    shots = list(spec.shots)
    for i, shot in enumerate(shots):
        if shot.source_image is not None:
            keyframe = _checked_image(spec_path, f"shots[{i}].source_image", shot.source_image)
            shots[i] = shot.model_copy(update={"source_image": keyframe})
    return spec.model_copy(update={"reference_image": image, "shots": shots})
