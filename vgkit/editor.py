"""A shot-card editor for JupyterLab (ipywidgets): edit, see prompts and the plan live, save YAML.

    from vgkit.editor import SpecEditor
    editor = SpecEditor.from_file("params/demo.yaml")
    editor.widget            # display it; every change re-validates and re-plans
    editor.save()            # writes the YAML back (atomically), only if the spec is valid

The editor holds plain data (``SpecEditor.data``) and widgets bound to it; validation and planning
are the same functions ``vgkit check`` uses, so the editor can never save a spec ``vgkit run``
would refuse.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml

from vgkit.artifacts import atomic_write_bytes
from vgkit.errors import VgkitError
from vgkit.spec import CAMERA_MOVES, MAX_SHOT_S, MIN_SHOT_S, read_spec_data

__all__ = ["SpecEditor"]

GLOBAL_FIELDS = ("style", "era_location", "lighting", "lens", "aspect")
SHOT_TEXT_FIELDS = ("subject", "action", "environment")


class SpecEditor:
    """Widgets over a spec's data; ``status`` is the plan or the one-line error."""

    def __init__(self, data: dict[str, Any], *, path: Path, model: str | None = None) -> None:
        import ipywidgets as w

        self.data = copy.deepcopy(data)
        self.path = path
        self.model = model
        self.status = ""
        self.valid = False
        self._w = w
        self.global_widgets = {
            key: w.Text(value=str(self.data["globals"].get(key, "")), description=key, layout={"width": "95%"})
            for key in GLOBAL_FIELDS
        }
        self.shots_box = w.VBox()
        self.shot_widgets: list[dict[str, Any]] = []
        self.output = w.Textarea(layout={"width": "95%", "height": "14em"}, disabled=True)
        add = w.Button(description="add shot")
        add.on_click(lambda _: self.add_shot())
        save = w.Button(description="save", button_style="primary")
        save.on_click(lambda _: self._save_clicked())
        for key, widget in self.global_widgets.items():
            widget.observe(self._global_changed(key), names="value")
        self._rebuild_shots()
        self.widget = w.VBox(
            [
                w.HTML("<b>Global constants</b>"),
                *self.global_widgets.values(),
                self.shots_box,
                w.HBox([add, save]),
                self.output,
            ]
        )
        self.refresh()

    @classmethod
    def from_file(cls, path: str | Path, *, model: str | None = None) -> SpecEditor:
        spec_path = Path(path)
        data = read_spec_data(spec_path) if spec_path.read_text().strip() else {}
        data.setdefault("globals", {})
        data.setdefault("shots", [])
        return cls(data, path=spec_path, model=model)

    # -- edits --------------------------------------------------------------------------------
    def _global_changed(self, key: str) -> Any:
        def handler(change: dict[str, Any]) -> None:
            self.data["globals"][key] = change["new"]
            self.refresh()

        return handler

    def _shot_changed(self, index: int, key: str) -> Any:
        def handler(change: dict[str, Any]) -> None:
            self.data["shots"][index][key] = change["new"]
            self.refresh()

        return handler

    def add_shot(self) -> None:
        template = copy.deepcopy(self.data["shots"][-1]) if self.data["shots"] else {}
        template.pop("seed", None)
        template.setdefault("camera", "static")
        template.setdefault("duration_s", MIN_SHOT_S)
        self.data["shots"].append(template)
        self._rebuild_shots()
        self.refresh()

    def remove_shot(self, index: int) -> None:
        del self.data["shots"][index]
        self._rebuild_shots()
        self.refresh()

    def _rebuild_shots(self) -> None:
        w = self._w
        self.shot_widgets = []
        rows = []
        for i, shot in enumerate(self.data["shots"]):
            widgets: dict[str, Any] = {
                key: w.Text(value=str(shot.get(key, "")), description=key, layout={"width": "95%"})
                for key in SHOT_TEXT_FIELDS
            }
            widgets["camera"] = w.Dropdown(options=list(CAMERA_MOVES), value=shot.get("camera", "static"))
            widgets["duration_s"] = w.BoundedFloatText(
                value=float(shot.get("duration_s", MIN_SHOT_S)), min=MIN_SHOT_S, max=MAX_SHOT_S, step=0.5
            )
            for key, widget in widgets.items():
                widget.observe(self._shot_changed(i, key), names="value")
            remove = w.Button(description=f"remove shot {i}")
            remove.on_click(lambda _, i=i: self.remove_shot(i))
            self.shot_widgets.append(widgets)
            rows.append(
                w.VBox(
                    [
                        w.HTML(f"<b>Shot {i}</b>"),
                        *[widgets[k] for k in SHOT_TEXT_FIELDS],
                        w.HBox([widgets["camera"], widgets["duration_s"], remove]),
                    ]
                )
            )
        self.shots_box.children = tuple(rows)

    # -- validation and saving -----------------------------------------------------------------
    def _validate(self) -> str:
        """Plan the current data exactly as ``vgkit check`` would (spec written to a temp file)."""
        from vgkit.runner import plan_job

        with tempfile.TemporaryDirectory(prefix="vgkit-editor-") as tmp:
            draft = Path(tmp) / self.path.name
            data = copy.deepcopy(self.data)
            image = Path(str(data.get("reference_image", "")))
            if str(image) and not image.is_absolute():
                data["reference_image"] = str((self.path.parent / image).resolve())
            for shot in data.get("shots", []):
                key = shot.get("source_image")
                if key and not Path(key).is_absolute():
                    shot["source_image"] = str((self.path.parent / key).resolve())
            draft.write_text(yaml.safe_dump(data, sort_keys=False))
            _, choice, plan = plan_job(draft, model=self.model)
        prompts = "\n".join(f"prompt {c.index:03d}: {c.prompt}" for c in plan.clips)
        return f"{choice.announce()}\n{plan.summary()}\n{prompts}"

    def refresh(self) -> None:
        try:
            self.status = self._validate()
            self.valid = True
        except VgkitError as exc:
            self.status = f"error: {exc}"
            self.valid = False
        self.output.value = self.status

    def save(self, path: str | Path | None = None) -> Path:
        """Write the spec as YAML (keys in the data's order); refuses while it is invalid."""
        if not self.valid:
            raise ValueError(f"not saved, the spec is invalid: {self.status}")
        dest = Path(path) if path is not None else self.path
        atomic_write_bytes(dest, yaml.safe_dump(self.data, sort_keys=False, allow_unicode=True).encode())
        return dest

    def _save_clicked(self) -> None:
        try:
            self.output.value = f"saved {self.save()}\n{self.status}"
        except ValueError as exc:
            self.output.value = str(exc)
