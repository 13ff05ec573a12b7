"""The shot-card editor: every field bound to the spec, errors next to their field, Save only while
valid, and a saved file that keeps its comments and number formatting."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from vgkit.errors import SpecError
from vgkit.lab.editor import SpecEditor, field_of_error
from vgkit.spec.schema import load_spec


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "params" / "images", tmp_path / "images")
    return Path(shutil.copy(REPO / "params" / "demo.yaml", tmp_path / "demo.yaml"))


def test_edits_of_every_kind_save_with_comments_and_formatting_kept(demo_copy: Path, tmp_path: Path) -> None:
    editor = SpecEditor.from_file(demo_copy)
    assert editor.valid, editor.status
    assert editor.save(tmp_path / "unchanged.yaml").read_text() == demo_copy.read_text()  # byte for byte
    editor.inputs["globals.lighting"].value = "overcast, soft light"
    editor.inputs["seed"].value = 99
    editor.inputs["negative_prompt"].value = "blurry, text"
    editor.inputs["overrides.steps"].value = "12"
    editor.inputs["shots[1].camera"].value = "orbit"
    editor.inputs["shots[2].duration_s"].value = 7.5
    editor.inputs["shots[3].duration_s"].value = 10.0
    editor.inputs["shots[0].seed"].value = "5"
    editor.inputs["shots[0].source_image"].value = "images/lighthouse.png"
    editor.add_shot()
    editor.inputs["shots[6].subject"].value = "a lighthouse keeper"
    assert editor.valid, editor.status
    saved = editor.save(tmp_path / "edited.yaml")

    spec = load_spec(saved)
    assert spec.globals.lighting == "overcast, soft light" and spec.seed == 99
    assert spec.negative_prompt == "blurry, text"
    assert spec.overrides.steps == 12 and spec.shots[1].camera == "orbit" and spec.shots[2].duration_s == 7.5
    assert spec.shots[0].seed == 5 and spec.shots[0].source_image is not None
    assert len(spec.shots) == 7 and spec.shots[6].subject == "a lighthouse keeper"
    text = saved.read_text()
    original = demo_copy.read_text()
    assert text.splitlines()[:2] == original.splitlines()[:2]  # the comment lines on top
    assert "\n    duration_s: 10\n" in text and "duration_s: 10.0" not in text  # 10 stays 10, indent kept
    assert bytes(editor.images["shots[0].source_image"].value)[:4] == b"\x89PNG"  # keyframe thumbnail
    assert bytes(editor.images["reference_image"].value)[:4] == b"\x89PNG"


def test_an_invalid_value_is_kept_as_typed_named_next_to_its_field_and_blocks_save(demo_copy: Path) -> None:
    editor = SpecEditor.from_file(demo_copy)
    editor.inputs["shots[0].duration_s"].value = 3  # below the 5 s minimum: not clamped
    assert not editor.valid and editor.save_button.disabled and editor.generate_button.disabled
    assert editor.doc["shots"][0]["duration_s"] == 3
    assert "shots[0].duration_s = 3" in editor.errors["shots[0].duration_s"].value
    assert str(demo_copy) in editor.status and "vgkit-editor-" not in editor.status  # no temp path
    with pytest.raises(SpecError, match="invalid"):
        editor.save()
    editor.inputs["shots[0].duration_s"].value = 6
    assert editor.valid and not editor.save_button.disabled and editor.errors["shots[0].duration_s"].value == ""


def test_stitch_fields_offer_the_choices_and_check_each_edit_next_to_its_field(tmp_path: Path) -> None:
    from vgkit.spec.choices import COLOUR_MODES, SEAM_MODES, TRANSITIONS

    shutil.copytree(REPO / "params" / "images", tmp_path / "images")
    spec = Path(shutil.copy(REPO / "params" / "preview.yaml", tmp_path / "preview.yaml"))  # no stitch section
    editor = SpecEditor.from_file(spec)
    assert editor.inputs["stitch.transition"].options == TRANSITIONS
    assert editor.inputs["stitch.colour"].options == COLOUR_MODES
    assert editor.inputs["stitch.seam_smoothing"].options == SEAM_MODES
    assert editor.inputs["stitch.transition"].value == "cut" and "stitch" not in editor.doc  # added only on a change
    editor.inputs["stitch.transition"].value = "crossfade"  # with no overlap yet
    assert not editor.valid and editor.save_button.disabled
    assert "stitch.overlap_frames = 0: a crossfade needs" in editor.errors["stitch.overlap_frames"].value
    editor.inputs["stitch.overlap_frames"].value = "twelve"  # kept as typed, named
    assert (
        not editor.valid
        and "stitch.overlap_frames = &#x27;twelve&#x27;" in editor.errors["stitch.overlap_frames"].value
    )
    editor.inputs["stitch.overlap_frames"].value = "12"
    editor.inputs["stitch.seam_smoothing"].value = "minterpolate"  # bridges cuts only
    assert not editor.valid and "only bridges hard cuts" in editor.errors["stitch.seam_smoothing"].value
    assert editor.errors["stitch.overlap_frames"].value == ""
    editor.inputs["stitch.seam_smoothing"].value = "off"
    editor.inputs["stitch.colour"].value = "mean_std"
    editor.inputs["stitch.colour_anchor"].value = "reference_image"
    assert editor.valid and not editor.save_button.disabled, editor.status
    assert "crossfade" in editor.status  # the plan counts the overlaps
    saved = editor.save()
    stitch = load_spec(saved).stitch
    assert (stitch.transition, stitch.overlap_frames, stitch.colour, stitch.colour_anchor) == (
        "crossfade",
        12,
        "mean_std",
        "reference_image",
    )
    text = saved.read_text()
    assert text.startswith("# A quick three-shot preview") and "\n  overlap_frames: 12\n" in text  # 12, not 12.0
    reopened = SpecEditor.from_file(saved)
    assert reopened.inputs["stitch.transition"].value == "crossfade"
    assert reopened.inputs["stitch.overlap_frames"].value == "12"


def test_live_status_shows_plan_or_the_length_error(demo_copy: Path) -> None:
    editor = SpecEditor.from_file(demo_copy)
    assert "final: 721 frames" in editor.status
    assert "Camera: slow smooth push-in" in editor.status
    editor.remove_shot(0)  # 5 shots: 25 s, under the 30 s minimum
    assert not editor.valid and "outside 30-60 s" in editor.status
    assert load_spec(demo_copy).shots[0].subject == "a small sailing boat with a white sail"


def test_relative_paths_are_the_repositorys_wherever_the_kernel_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO / "notebooks")
    editor = SpecEditor.from_file("params/demo.yaml")
    assert editor.path == REPO / "params" / "demo.yaml" and editor.valid
    with pytest.raises(SpecError, match="no such file"):
        SpecEditor.from_file("params/nope.yaml")


def test_field_of_error_reads_the_field_a_message_names() -> None:
    assert field_of_error("/x/s.yaml: shots[2].duration_s = 3: too short") == "shots[2].duration_s"
    assert field_of_error("/x/s.yaml: globals.style = '': empty") == "globals.style"
    assert field_of_error("final video 25.0 s outside 30-60 s") is None


@pytest.mark.slow
def test_preview_generates_one_shot_alone_at_a_few_steps(tmp_path: Path) -> None:
    from tests.conftest import spec_dict, write_spec
    from vgkit.lab.editor import PREVIEW_STEPS

    spec = write_spec(tmp_path / "s.yaml", spec_dict(overrides={"width": 32, "height": 32, "steps": 8}))
    editor = SpecEditor.from_file(spec)
    editor.previews = tmp_path / "previews"
    result = editor.preview_shot(1)
    assert result.final_frames == 121  # one 5 s shot
    plan = (result.run_dir / "plan.json").read_text()
    assert result.run_dir == tmp_path / "previews" / "t-shot1-preview" and f'"steps": {PREVIEW_STEPS},' in plan
    assert [p.name for p in (result.run_dir / "clips").glob("clip_*.mp4")] == ["clip_000.mp4"]
    preview = load_spec(tmp_path / "previews" / "t-shot1-preview.yaml")  # the spec the preview ran
    assert [s.subject for s in preview.shots] == ["boat 1"] and preview.overrides.steps == PREVIEW_STEPS


def test_with_shot_seed_changes_one_value_and_keeps_the_rest(demo_copy: Path, tmp_path: Path) -> None:
    import json

    from vgkit.lab.editor import with_shot_seed

    text = with_shot_seed(demo_copy, 2, 555).decode()
    original = demo_copy.read_text()
    assert text.splitlines()[:2] == original.splitlines()[:2]  # the comments on top
    demo_copy.write_text(text)
    spec = load_spec(demo_copy)
    assert spec.shots[2].seed == 555 and [s.seed for i, s in enumerate(spec.shots) if i != 2] == [None] * 5
    as_json = tmp_path / "demo.json"
    as_json.write_text(json.dumps({**json.loads(json.dumps(spec.model_dump(mode="json"))), "name": "j"}))
    assert json.loads(with_shot_seed(as_json, 0, 7))["shots"][0]["seed"] == 7
