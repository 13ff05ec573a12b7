"""The shot-card editor round-trips a spec and validates live."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from vgkit.editor import SpecEditor
from vgkit.spec import load_spec


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "params" / "images", tmp_path / "images")
    return Path(shutil.copy(REPO / "params" / "demo.yaml", tmp_path / "demo.yaml"))


def test_load_edit_save_load_round_trip(demo_copy: Path, tmp_path: Path) -> None:
    editor = SpecEditor.from_file(demo_copy)
    assert editor.valid, editor.status
    editor.global_widgets["lighting"].value = "overcast, soft light"
    editor.shot_widgets[1]["camera"].value = "orbit"
    editor.shot_widgets[2]["duration_s"].value = 7.5
    editor.add_shot()
    editor.shot_widgets[6]["subject"].value = "a lighthouse keeper"
    saved = editor.save(tmp_path / "edited.yaml")

    spec = load_spec(saved)
    original = load_spec(demo_copy)
    assert spec.globals.lighting == "overcast, soft light"
    assert spec.shots[1].camera == "orbit"
    assert spec.shots[2].duration_s == 7.5
    assert len(spec.shots) == 7 and spec.shots[6].subject == "a lighthouse keeper"
    assert spec.shots[0] == original.shots[0]
    assert spec.reference_image == original.reference_image


def test_live_status_shows_plan_or_the_error(demo_copy: Path) -> None:
    editor = SpecEditor.from_file(demo_copy)
    assert "final: 721 frames" in editor.status
    assert "Camera: slow smooth push-in" in editor.status
    editor.remove_shot(0)  # 5 shots: 25 s, under the 30 s minimum
    assert not editor.valid
    assert "outside 30-60 s" in editor.status
    with pytest.raises(ValueError, match="invalid"):
        editor.save()
    assert load_spec(demo_copy).shots[0].subject == "a small sailing boat with a white sail"
