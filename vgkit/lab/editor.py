"""The shot-card editor (``notebooks/shot_cards.ipynb``): every spec field as a widget, live checks.

    from vgkit.lab.editor import SpecEditor
    editor = SpecEditor.from_file("params/demo.yaml")   # relative to the repository root
    editor.widget            # display it; every change re-validates and re-plans
    editor.save()            # writes the YAML back (atomically), only while the spec is valid

The spec is held as a ruamel.yaml round-trip document, so saving keeps its comments, key order and
number formatting (``10`` stays ``10``). Validation and planning are the functions ``vgkit check``
uses, so the editor never saves a spec ``vgkit run`` would refuse; an error is shown next to its
field and in the status, and Save is disabled until it is fixed. Nothing is clamped: a value out of
range stays as typed and is named in the error. "Preview shot" runs that one shot at a few steps,
"Save and generate" the whole spec, both through ``vgkit.lab.notebook.generate`` (the supervised worker
``vgkit run`` uses). The spec's ``stitch:`` section (transition, overlap frames, colour matching and
its anchor, seam smoothing; choices from vgkit.spec.choices) is edited and checked the same way; a
section the file does not have is added only once a stitch field is changed.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from vgkit.errors import SpecError, VgkitError
from vgkit.records.artifacts import atomic_write_bytes
from vgkit.settings import repo_root
from vgkit.spec.choices import COLOUR_MODES, SEAM_MODES, TRANSITIONS
from vgkit.spec.schema import CAMERA_MOVES, MIN_SHOT_S

__all__ = ["PREVIEW_STEPS", "SpecEditor", "field_of_error", "with_shot_seed"]

GLOBAL_FIELDS = ("style", "era_location", "lighting", "lens", "aspect")
SHOT_TEXT_FIELDS = ("subject", "action", "environment", "negative_prompt")
PREVIEW_STEPS = 4  # "preview shot" runs one clip at this many steps (or fewer, if the spec asks fewer)
THUMB_PX = 160
_STYLE = {"description_width": "11em"}  # every field's label column
COLOUR_ANCHORS = ("first_clip", "reference_image")  # vgkit.spec.schema.StitchSpec.colour_anchor
_FIELD = re.compile(r"(?:^|: )((?:shots\[\d+\]\.)?[a-z_]+(?:\.[a-z_]+)?) = ")


def field_of_error(message: str) -> str | None:
    """The field a ``SpecError`` message names (``shots[2].duration_s``, ``overrides.steps``)."""
    found = _FIELD.search(message)
    return found.group(1) if found else None


def _load_yaml(text: str) -> tuple[Any, tuple[int, int]]:
    """A round-trip document of ``text`` (comments, order, quotes and number styles survive) and
    how it indents block sequences: (sequence indent, dash offset)."""
    from ruamel.yaml.util import load_yaml_guess_indent

    _, sequence_indent, dash_offset = load_yaml_guess_indent(text) if text.strip() else (None, 4, 2)
    indent = (sequence_indent, dash_offset)
    return _yaml(indent).load(text), indent


def _dump_yaml(doc: Any, indent: tuple[int, int]) -> bytes:
    buffer = io.StringIO()
    _yaml(indent).dump(doc, buffer)
    return buffer.getvalue().encode()


def _yaml(indent: tuple[int, int]) -> Any:
    """A round-trip YAML that writes block sequences the way the file had them."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=indent[0], offset=indent[1])
    return yaml


def with_shot_seed(path: Path, index: int, seed: int) -> bytes:
    """The spec file at ``path`` with ``shots[index].seed`` set to ``seed`` (``vgkit pick`` writes it):
    a YAML file keeps its comments, order and formatting; a JSON file is rewritten with that one value changed."""
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
        data["shots"][index]["seed"] = seed
        return (json.dumps(data, indent=2) + "\n").encode()
    doc, indent = _load_yaml(text)
    doc["shots"][index]["seed"] = seed
    return _dump_yaml(doc, indent)


def _plain_text(text: str) -> Any:
    """``text`` as a YAML scalar every reader takes for that text: quoted where a YAML 1.1 reader
    (PyYAML, which ``load_spec`` uses) would read another type (``off``, ``yes``, ``12``)."""
    import yaml
    from ruamel.yaml.scalarstring import SingleQuotedScalarString

    try:
        plain = yaml.safe_load(f"value: {text}")
    except yaml.YAMLError:
        plain = None
    return text if isinstance(plain, dict) and plain.get("value") == text else SingleQuotedScalarString(text)


def _thumbnail(path: Path) -> bytes:
    from PIL import Image

    with Image.open(path) as image:
        image.thumbnail((THUMB_PX, THUMB_PX))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


class SpecEditor:
    """Widgets over a spec document; ``status`` is the plan or the one-line error, ``valid`` says which."""

    def __init__(self, doc: Any, *, path: Path, model: str | None = None) -> None:
        import ipywidgets as w

        from vgkit.models import model_names

        self.doc = doc
        self.path = path
        self.model = model
        self.previews = repo_root() / "runs" / "previews"  # each preview's spec and run folder
        self.indent = (4, 2)  # how the file indents block sequences (from_file reads it)
        self.status = ""
        self.valid = False
        self._w = w
        self.inputs: dict[str, Any] = {}  # field ("seed", "globals.style", "shots[0].camera") -> its widget
        self.errors: dict[str, Any] = {}  # field -> its error label
        self.images: dict[str, Any] = {}  # field -> its thumbnail
        self.global_widgets = {key: self._text(("globals", key), key) for key in GLOBAL_FIELDS}
        self.run_widgets: dict[str, Any] = {
            "name": self._text(("name",), "name"),
            "model": self._choice(("model",), "model", ["auto", *model_names()]),
            "preset": self._choice(("preset",), "preset", ["auto", "4090", "80gb", "cpu"]),
            "seed": self._number(("seed",), "seed", w.IntText),
            "negative_prompt": self._text(("negative_prompt",), "negative prompt"),
            "steps": self._number(("overrides", "steps"), "steps", w.IntText, optional="the model's default"),
            "reference_image": self._text(("reference_image",), "reference image"),
        }
        self.stitch_widgets: dict[str, Any] = {
            "transition": self._choice(("stitch", "transition"), "transition", list(TRANSITIONS), default="cut"),
            "overlap_frames": self._number(
                ("stitch", "overlap_frames"), "overlap frames", w.IntText, optional="0 (a cut has none)"
            ),
            "colour": self._choice(("stitch", "colour"), "colour matching", list(COLOUR_MODES), default="off"),
            "colour_anchor": self._choice(
                ("stitch", "colour_anchor"), "colour anchor", list(COLOUR_ANCHORS), default="first_clip"
            ),
            "seam_smoothing": self._choice(
                ("stitch", "seam_smoothing"), "seam smoothing", list(SEAM_MODES), default="off"
            ),
        }
        self.shots_box = w.VBox()
        self.shot_widgets: list[dict[str, Any]] = []
        self.status_box = w.Textarea(layout={"width": "98%", "height": "12em"}, disabled=True)
        self.log = w.Output()
        self.save_button = w.Button(description="Save", button_style="primary", icon="save")
        self.save_button.add_class("vgkit-save")
        self.save_button.on_click(lambda _: self._clicked(self.save))
        self.generate_button = w.Button(description="Save and generate", icon="play")
        self.generate_button.on_click(lambda _: self._clicked(self.generate))
        add = w.Button(description="Add shot", icon="plus")
        add.on_click(lambda _: self.add_shot())
        self._rebuild_shots()
        self.widget = w.VBox(
            [
                w.HTML(f"<b>{self.path.name}</b> (YAML comments and formatting are kept on save)"),
                *self.run_widgets.values(),
                w.HTML("<b>Global constants</b> (every shot's prompt)"),
                *self.global_widgets.values(),
                w.HTML("<b>Stitch</b> (how the clips are joined; <code>vgkit stitch</code> flags can override it)"),
                *self.stitch_widgets.values(),
                self.shots_box,
                w.HBox([add, self.save_button, self.generate_button]),
                self.status_box,
                self.log,
            ]
        )
        self.refresh()

    @classmethod
    def from_file(cls, path: str | Path, *, model: str | None = None) -> SpecEditor:
        """Open a spec; a relative path is the repository's (as in ``vgkit check``), wherever the kernel runs."""
        spec_path = repo_root() / path  # an absolute path stays as it is
        if not spec_path.is_file():
            raise SpecError(f"spec = {str(path)!r}: no such file; fix: a path relative to the repository root")
        doc, indent = _load_yaml(spec_path.read_text())
        doc = doc or {}
        doc.setdefault("globals", {})
        doc.setdefault("shots", [])
        editor = cls(doc, path=spec_path, model=model)
        editor.indent = indent
        return editor

    # -- widgets bound to the document ---------------------------------------------------------
    def _get(self, keys: tuple[Any, ...]) -> Any:
        node = self.doc
        for key in keys:
            if not hasattr(node, "get") and not isinstance(node, list):
                return None
            node = node[key] if isinstance(node, list) else node.get(key)
        return node

    def _set(self, keys: tuple[Any, ...], value: Any) -> None:
        node = self.doc
        for key in keys[:-1]:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]
        if value is None or value == "":
            if isinstance(node, dict):
                node.pop(keys[-1], None)
        else:
            node[keys[-1]] = _plain_text(value) if isinstance(value, str) else value
        self.refresh()

    def _row(self, keys: tuple[Any, ...], widget: Any, convert: Callable[[Any], Any] = lambda value: value) -> Any:
        """``widget`` edits ``keys`` of the document (its value through ``convert``): a row with its error."""
        widget.observe(lambda change: self._set(keys, convert(change["new"])), names="value")
        field = ".".join(str(k) for k in keys if not isinstance(k, int))
        if keys[0] == "shots":
            field = f"shots[{keys[1]}].{keys[2]}"
        error = self._w.HTML(layout={"margin": "0 0 0 .5em"})
        error.add_class("vgkit-field-error")
        widget.add_class("vgkit-field-" + re.sub(r"\W+", "-", field))
        self.inputs[field] = widget
        self.errors[field] = error
        parts = [widget, error]
        if keys[-1] in ("reference_image", "source_image"):
            image = self._w.Image(format="png", layout={"max_width": f"{THUMB_PX}px"})
            self.images[field] = image
            parts.insert(1, image)
        return self._w.HBox(parts)

    def _text(self, keys: tuple[Any, ...], label: str) -> Any:
        value = self._get(keys)
        text = self._w.Text(value="" if value is None else str(value), description=label, style=_STYLE)
        text.layout.width = "60em"
        return self._row(keys, text)

    def _choice(self, keys: tuple[Any, ...], label: str, options: list[str], *, default: str = "auto") -> Any:
        """A drop-down; a value the file has that is not an option stays selectable (validation names it)."""
        value = str(self._get(keys) or default)
        drop = self._w.Dropdown(options=list(dict.fromkeys([*options, value])), value=value, description=label)
        drop.style = _STYLE
        return self._row(keys, drop)

    def _number(self, keys: tuple[Any, ...], label: str, kind: Any, *, optional: str = "") -> Any:
        """A number field; ``optional`` ones are text (empty removes the key; the placeholder says
        what empty means). Never clamped."""
        value = self._get(keys)
        if optional:
            box = self._w.Text(value="" if value is None else str(value), description=label, style=_STYLE)
            box.placeholder = optional

            def parse(text: str) -> Any:
                try:
                    return None if text.strip() == "" else json.loads(text)
                except ValueError:
                    return text  # kept as typed; validation names it

            return self._row(keys, box, parse)

        def store(number: Any) -> Any:
            return int(number) if float(number).is_integer() else number  # 10, not 10.0

        return self._row(keys, kind(value=value or 0, description=label, style=_STYLE), store)

    def add_shot(self) -> None:
        shots = self.doc["shots"]
        template = {k: shots[-1][k] for k in ("subject", "action", "environment") if shots and k in shots[-1]}
        shots.append({**template, "camera": "static", "duration_s": int(MIN_SHOT_S)})
        self._rebuild_shots()
        self.refresh()

    def remove_shot(self, index: int) -> None:
        del self.doc["shots"][index]
        self._rebuild_shots()
        self.refresh()

    def _rebuild_shots(self) -> None:
        w = self._w
        for field in [f for f in self.errors if f.startswith("shots[")]:
            self.errors.pop(field)
            self.inputs.pop(field)
            self.images.pop(field, None)
        self.shot_widgets, rows = [], []
        for i, shot in enumerate(self.doc["shots"]):
            widgets = {key: self._text(("shots", i, key), key.replace("_", " ")) for key in SHOT_TEXT_FIELDS}
            camera = w.Dropdown(options=list(CAMERA_MOVES), description="camera", style=_STYLE)
            camera.value = shot.get("camera", "static") if shot.get("camera") in CAMERA_MOVES else "static"
            widgets["camera"] = self._row(("shots", i, "camera"), camera)
            widgets["duration_s"] = self._number(("shots", i, "duration_s"), "duration (s)", w.FloatText)
            widgets["seed"] = self._number(("shots", i, "seed"), "seed", w.IntText, optional=f"run seed + {i}")
            widgets["source_image"] = self._text(("shots", i, "source_image"), "keyframe image")
            self.inputs[f"shots[{i}].source_image"].placeholder = "optional: the image this shot starts from"
            remove = w.Button(description=f"Remove shot {i}", icon="trash")
            remove.on_click(lambda _, i=i: self.remove_shot(i))
            preview = w.Button(description=f"Preview shot {i}", icon="eye")
            preview.tooltip = f"this shot alone, at {PREVIEW_STEPS} steps"
            preview.on_click(lambda _, i=i: self._clicked(lambda: self.preview_shot(i)))
            self.shot_widgets.append(widgets)
            rows.append(w.VBox([w.HTML(f"<b>Shot {i}</b>"), *widgets.values(), w.HBox([preview, remove])]))
        self.shots_box.children = tuple(rows)

    # -- validation and saving -----------------------------------------------------------------
    def plain(self) -> dict[str, Any]:
        """The document as plain data, image paths made absolute against the spec's folder."""
        data: dict[str, Any] = json.loads(json.dumps(self.doc))
        if data.get("reference_image"):
            data["reference_image"] = str((self.path.parent / str(data["reference_image"])).resolve())
        for shot in data.get("shots") or []:
            if isinstance(shot, dict) and shot.get("source_image"):
                shot["source_image"] = str((self.path.parent / str(shot["source_image"])).resolve())
        return data

    def _check(self, data: dict[str, Any]) -> str:
        """Plan ``data`` exactly as ``vgkit check`` would; errors name this spec, not the draft."""
        import yaml

        from vgkit.generate.runner import plan_job

        with tempfile.TemporaryDirectory(prefix="vgkit-editor-") as tmp:
            draft = Path(tmp) / self.path.name
            draft.write_text(yaml.safe_dump(data, sort_keys=False))
            try:
                _, choice, plan = plan_job(draft, model=self.model)
            except VgkitError as exc:
                raise type(exc)(str(exc).replace(str(draft), str(self.path))) from None
        prompts = "\n".join(f"prompt {c.index:03d}: {c.prompt}" for c in plan.clips)
        return f"{choice.announce()}\n{plan.summary()}\n{prompts}"

    def refresh(self) -> None:
        """Re-validate and re-plan; show the plan, or the error next to its field; Save follows."""
        for label in self.errors.values():
            label.value = ""
        try:
            self.status = self._check(self.plain())
            self.valid = True
        except VgkitError as exc:
            message = str(exc)
            self.status = f"error: {message}"
            self.valid = False
            if (field := field_of_error(message)) in self.errors:
                shown = escape(message[message.find(field) :])  # from its field on: no file path in front
                self.errors[field].value = f'<span style="color:#b00020">{shown}</span>'
        self._show_thumbnails()
        self.status_box.value = self.status
        self.save_button.disabled = self.generate_button.disabled = not self.valid

    def _show_thumbnails(self) -> None:
        for field, image in self.images.items():
            keys: tuple[Any, ...] = (field,)
            if field.startswith("shots["):
                index, key = re.match(r"shots\[(\d+)\]\.(\w+)", field).groups()  # type: ignore[union-attr]
                keys = ("shots", int(index), key)
            value = self._get(keys)
            path = self.path.parent / str(value) if value else None
            try:
                image.value = _thumbnail(path) if path is not None and path.is_file() else b""
            except OSError:
                image.value = b""
            image.layout.display = "" if image.value else "none"  # no broken-image icon

    def save(self, path: str | Path | None = None) -> Path:
        """Write the spec (comments and formatting kept, atomically); refuses while it is invalid."""
        if not self.valid:
            raise SpecError(f"not saved, the spec is invalid: {self.status}")
        dest = Path(path) if path is not None else self.path
        atomic_write_bytes(dest, _dump_yaml(self.doc, self.indent))
        return dest

    def preview_shot(self, index: int) -> Any:
        """Generate shot ``index`` alone (its keyframe, else the reference image) at a few steps."""
        from vgkit.lab.notebook import generate

        data = self.plain()
        shot = data["shots"][index]
        steps = min(int((data.get("overrides") or {}).get("steps") or PREVIEW_STEPS), PREVIEW_STEPS)
        data |= {"shots": [shot], "allow_any_length": True, "name": f"{data['name']}-shot{index}-preview"}
        data["overrides"] = {**(data.get("overrides") or {}), "steps": steps}
        spec = self.previews / f"{data['name']}.yaml"
        import yaml

        atomic_write_bytes(spec, yaml.safe_dump(data, sort_keys=False).encode())
        return generate(spec=str(spec), model=self.model or "auto", out=str(spec.with_suffix("")), show_clips=False)

    def generate(self) -> Any:
        """Save, then run the whole spec in the supervised worker (as the generate notebook does)."""
        from vgkit.lab.notebook import generate

        return generate(spec=str(self.save()), model=self.model or "auto", show_clips=True)

    def _clicked(self, action: Any) -> None:
        from vgkit.lab.notebook import error_line

        self.log.clear_output()
        with self.log:
            try:
                result = action()
                print(f"done: {result}")
            except (VgkitError, KeyboardInterrupt) as exc:
                print(error_line(exc))
