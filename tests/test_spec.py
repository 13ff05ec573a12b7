"""Spec loading and planning: valid specs load; each bad one is one clear line that writes nothing."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from tests.conftest import REPO, spec_dict, write_spec
from tests.test_images import write_corrupt_pixels_png, write_huge_png_header
from vgkit.errors import SpecError
from vgkit.generate.runner import plan_job
from vgkit.spec.schema import load_spec


def test_demo_spec_loads_and_resolves_image_against_spec_dir() -> None:
    spec = load_spec(REPO / "params" / "demo.yaml")
    assert spec.reference_image == (REPO / "params" / "images" / "lighthouse.png").resolve()
    assert len(spec.shots) == 6
    assert spec.shot_seed(2) == spec.seed + 2


def test_json_spec_loads(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "s.json", spec_dict()))
    assert spec.shots[0].camera == "pan"


def test_shot_seed_overrides_run_seed(tmp_path: Path) -> None:
    data = spec_dict()
    data["shots"][1]["seed"] = 99
    spec = load_spec(write_spec(tmp_path / "s.yaml", data))
    assert [spec.shot_seed(i) for i in range(3)] == [7, 99, 9]


def test_keyframe_image_resolves_against_spec_dir(tmp_path: Path) -> None:
    Image.new("RGB", (128, 96), (10, 20, 30)).save(tmp_path / "key.png")
    data = spec_dict()
    data["shots"][2]["source_image"] = "key.png"
    spec = load_spec(write_spec(tmp_path / "s.yaml", data))
    assert spec.shots[2].source_image == (tmp_path / "key.png").resolve()


Edit = Callable[[dict[str, Any], Path], None]


def _set(path: str, value: Any) -> Edit:
    """An edit that sets a dotted path (``shots.1.camera``) to ``value``."""

    def edit(data: dict[str, Any], _: Path) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[int(last) if last.isdigit() else last] = value

    return edit


def _drop(path: str) -> Edit:
    def edit(data: dict[str, Any], _: Path) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return edit


def _image(size: tuple[int, int], field: str = "reference_image") -> Edit:
    def edit(data: dict[str, Any], tmp: Path) -> None:
        Image.new("RGB", size).save(tmp / "img.png")
        _set(field, str(tmp / "img.png"))(data, tmp)

    return edit


def _not_an_image(data: dict[str, Any], tmp: Path) -> None:
    (tmp / "fake.png").write_bytes(b"\x89PNG but not really")
    data["reference_image"] = str(tmp / "fake.png")


def _odd_image(kind: str) -> Edit:
    """A reference image that is a corrupt PNG, a bomb, a 300-character name, a FIFO or a device."""

    def edit(data: dict[str, Any], tmp: Path) -> None:
        if kind == "corrupt":
            path = write_corrupt_pixels_png(tmp / "bad.png")
        elif kind == "bomb":
            path = write_huge_png_header(tmp / "huge.png")
        elif kind == "long name":
            path = tmp / ("a" * 300 + ".png")
        elif kind == "fifo":
            path = tmp / "pipe.png"
            os.mkfifo(path)
        else:
            path = Path("/dev/zero")
        data["reference_image"] = str(path)

    return edit


def _shots(count: int) -> Edit:
    def edit(data: dict[str, Any], _: Path) -> None:
        data["shots"] = [copy.deepcopy(data["shots"][0]) for _ in range(count)]

    return edit


def _strict_length(data: dict[str, Any], _: Path) -> None:
    data["allow_any_length"] = False


def _both(*edits: Edit) -> Edit:
    def edit(data: dict[str, Any], tmp: Path) -> None:
        for one in edits:
            one(data, tmp)

    return edit


# (label, edit, text the one-line message must contain)
BAD_SPECS: list[tuple[str, Edit, str]] = [
    ("unknown top key", _set("colour", "red"), "colour"),
    ("missing globals", _drop("globals"), "globals"),
    ("missing name", _drop("name"), "name"),
    ("missing shots", _drop("shots"), "shots"),
    ("missing reference image", _drop("reference_image"), "reference_image"),
    ("name with slash", _set("name", "my/run"), "name"),
    ("empty name", _set("name", ""), "name"),
    ("name too long", _set("name", "n" * 65), "name"),
    ("negative seed", _set("seed", -1), "seed"),
    ("quoted seed", _set("seed", "7"), "seed"),
    ("fractional seed", _set("seed", 1.5), "seed"),
    ("unknown model", _set("model", "wan3"), "model = 'wan3'"),
    ("flag as text", _set("allow_any_length", "yes"), "allow_any_length"),
    ("negative prompt as number", _set("negative_prompt", 5), "negative_prompt"),
    ("globals as list", _set("globals", ["style"]), "globals"),
    ("globals missing lighting", _drop("globals.lighting"), "globals.lighting"),
    ("globals extra key", _set("globals.mood", "calm"), "globals.mood"),
    ("globals empty style", _set("globals.style", " "), "globals.style"),
    ("shots as mapping", _set("shots", {"subject": "x"}), "shots"),
    ("empty shot list", _set("shots", []), "shots"),
    ("too many shots", _shots(65), "shots"),
    ("shot missing subject", _drop("shots.1.subject"), "shots[1].subject"),
    ("shot extra key", _set("shots.1.lens", "50mm"), "shots[1].lens"),
    ("two camera moves", _set("shots.1.camera", "pan, tilt"), "shots[1].camera"),
    ("camera moves as list", _set("shots.1.camera", ["pan", "tilt"]), "shots[1].camera"),
    ("unknown camera move", _set("shots.1.camera", "zoom"), "shots[1].camera"),
    ("duration too short", _set("shots.1.duration_s", 2), "shots[1].duration_s"),
    ("duration too long", _set("shots.1.duration_s", 12), "shots[1].duration_s"),
    ("quoted duration", _set("shots.1.duration_s", "5"), "shots[1].duration_s"),
    ("missing duration", _drop("shots.1.duration_s"), "shots[1].duration_s"),
    ("negative shot seed", _set("shots.1.seed", -3), "shots[1].seed"),
    ("empty subject", _set("shots.1.subject", "  "), "shots[1].subject"),
    ("action as number", _set("shots.1.action", 42), "shots[1].action"),
    ("unknown override", _set("overrides.fps", 30), "overrides.fps"),
    ("unknown long-shot mode", _set("long_shots.mode", "stretch"), "long_shots.mode = 'stretch'"),
    ("unknown interpolator", _set("long_shots.interpolator", "dain"), "long_shots.interpolator"),
    ("override flag as text", _set("long_shots.beyond_max_frames", "yes"), "long_shots.beyond_max_frames"),
    ("unknown transition", _set("stitch.transition", "wipe"), "stitch.transition = 'wipe'"),
    ("negative overlap", _set("stitch.overlap_frames", -2), "stitch.overlap_frames"),
    ("unknown seam smoothing", _set("stitch.seam_smoothing", "optical"), "stitch.seam_smoothing"),
    ("stitch extra key", _set("stitch.fade", 3), "stitch.fade"),
    ("zero steps", _set("overrides.steps", 0), "overrides.steps"),
    ("too many steps", _set("overrides.steps", 500), "overrides.steps"),
    ("negative guidance", _set("overrides.guidance_scale", -1.0), "overrides.guidance_scale"),
    ("width the model would round", _set("overrides.width", 100), "overrides.width = 100"),
    ("width below minimum", _set("overrides.width", 16), "overrides.width"),
    ("missing image file", _set("reference_image", "nope.png"), "reference_image"),
    ("unreadable image", _not_an_image, "not a readable image"),
    ("image too small", _image((32, 32)), "32x32 px"),
    ("image too large", _image((9000, 100)), "9000x100 px"),
    ("corrupt pixel stream", _odd_image("corrupt"), "reference_image = '"),
    ("decompression bomb", _odd_image("bomb"), "too large to decode safely"),
    ("300-character file name", _odd_image("long name"), "refuses a name this long"),
    ("FIFO as image", _odd_image("fifo"), "is a FIFO (named pipe), not an image file"),
    ("device as image", _odd_image("device"), "reference_image = '/dev/zero': is a character device"),
    ("missing keyframe", _set("shots.0.source_image", "gone.png"), "shots[0].source_image"),
    ("tiny keyframe", _image((16, 16), field="shots.2.source_image"), "shots[2].source_image"),
    ("plan under 30 s", _strict_length, "outside 30-60 s"),
    ("plan over 60 s", _both(_shots(13), _strict_length), "outside 30-60 s"),
]


@pytest.mark.parametrize(("label", "edit", "expected"), BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_is_one_clear_line_and_writes_nothing(tmp_path: Path, label: str, edit: Edit, expected: str) -> None:
    data = spec_dict()
    edit(data, tmp_path)
    path = write_spec(tmp_path / "spec.yaml", data)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SpecError) as err:
        plan_job(path)
    message = str(err.value)
    assert "\n" not in message
    assert expected in message
    assert "fix:" in message
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("s.yaml", "name: [unclosed\n", "not valid YAML"),
        ("s.json", '{"name": "x",}', "not valid JSON"),
        ("s.yaml", "- just\n- a list\n", "not a mapping"),
        ("s.yaml", "", "not a mapping"),
    ],
)
def test_unparseable_spec(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError, match=expected) as err:
        load_spec(path)
    assert "fix:" in str(err.value)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "absent.yaml")


def test_table_covers_at_least_forty_bad_specs() -> None:
    assert len({label for label, _, _ in BAD_SPECS}) >= 40


def test_16_bit_reference_image_is_accepted(tmp_path: Path) -> None:
    import numpy as np

    Image.fromarray(np.full((96, 128), 30000, dtype=np.uint16)).save(tmp_path / "g16.png")
    spec = load_spec(write_spec(tmp_path / "s.yaml", spec_dict(reference_image="g16.png")))
    assert spec.reference_image == (tmp_path / "g16.png").resolve()


def _yaml_with(tmp_path: Path, prefix: str, replace: tuple[str, str] = ("", "")) -> Path:
    """The valid test spec as YAML text, with ``prefix`` lines on top and one text replacement."""
    text = yaml.safe_dump(spec_dict(), sort_keys=False).replace(*replace)
    path = tmp_path / "spec.yaml"
    path.write_text(prefix + text)
    return path


def _alias_bomb() -> str:
    """A 504-byte "billion laughs": nine levels of nine aliases, 9**9 strings once expanded."""
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * 9) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_while_reading_with_a_short_line(tmp_path: Path) -> None:
    """Before: minutes and gigabytes (the validation error repr()ed the expanded value)."""
    path = _yaml_with(tmp_path, _alias_bomb(), ("negative_prompt: blur", "negative_prompt: *l8"))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "expands to more than 20000 values (YAML aliases count at every use)" in message
    assert "fix:" in message and len(message) < 300


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path: Path, suffix: str) -> None:
    path = write_spec(tmp_path / f"spec{suffix}", spec_dict())
    deep = "[" * 5000 + "]" * 5000
    path.write_text(path.read_text().replace('"blur"' if suffix == ".json" else "blur", deep, 1))
    with pytest.raises(SpecError, match="nested more than 32 levels deep; fix: write the values out plainly"):
        load_spec(path)


def test_alias_inside_its_own_value_is_refused(tmp_path: Path) -> None:
    path = _yaml_with(tmp_path, "loop: &loop [1, *loop]\n")
    with pytest.raises(SpecError, match=r"line 1: alias \*loop is used inside the value it names"):
        load_spec(path)


def test_duplicate_key_is_refused_naming_both_values_and_lines(tmp_path: Path) -> None:
    """Before: the spec loaded with the last value, silently."""
    path = _yaml_with(tmp_path, "", ("seed: 7\n", "seed: 7\nseed: 8\n"))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert "spec.yaml: seed is given twice: '7' on line 4, '8' on line 5; fix: keep one of them" in str(err.value)


def test_duplicate_key_inside_a_shot_names_its_path(tmp_path: Path) -> None:
    text = yaml.safe_dump(spec_dict(), sort_keys=False)
    second_shot = text.index("- subject: boat 1")
    text = text[:second_shot] + text[second_shot:].replace("  camera: pan\n", "  camera: pan\n  camera: tilt\n", 1)
    (tmp_path / "spec.yaml").write_text(text)
    with pytest.raises(SpecError, match=r"shots\[1\]\.camera is given twice: 'pan' on line \d+, 'tilt' on line"):
        load_spec(tmp_path / "spec.yaml")


def test_duplicate_key_in_json_is_refused(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "spec.json", spec_dict())
    path.write_text(path.read_text().replace('"camera": "pan"', '"camera": "pan", "camera": "orbit"', 1))
    with pytest.raises(SpecError, match=r"shots\[0\]\.camera is given twice .*fix: keep one of them"):
        load_spec(path)


def test_anchors_aliases_and_merge_overrides_still_load(tmp_path: Path) -> None:
    data = spec_dict()
    data["shots"] = data.pop("shots")  # last, so a shot can be appended to the text
    text = yaml.safe_dump(data, sort_keys=False)
    text = text.replace("  style: photoreal\n", "  style: &look photoreal\n")
    text = text.replace("- subject: boat 0\n", "- &first\n  subject: boat 0\n", 1)
    text += "- <<: *first\n  camera: orbit\n  negative_prompt: *look\n"
    (tmp_path / "spec.yaml").write_text(text)
    spec = load_spec(tmp_path / "spec.yaml")
    assert spec.shots[-1].subject == "boat 0" and spec.shots[-1].camera == "orbit"
    assert spec.shots[-1].negative_prompt == "photoreal"


def test_spec_size_and_kind_are_checked_before_reading(tmp_path: Path) -> None:
    big = _yaml_with(tmp_path, "# " + "x" * (256 * 1024) + "\n")
    with pytest.raises(SpecError, match="is over 262144 bytes"):
        load_spec(big)
    os.mkfifo(tmp_path / "pipe.yaml")  # reading it would block: it must be refused unread
    with pytest.raises(SpecError, match=r"is a FIFO \(named pipe\), not a spec file; fix:"):
        load_spec(tmp_path / "pipe.yaml")
    with pytest.raises(SpecError, match="is a folder, not a spec file"):
        load_spec(tmp_path)


def test_error_values_are_shown_short(tmp_path: Path) -> None:
    path = write_spec(tmp_path / "spec.yaml", spec_dict(negative_prompt=[["x" * 500] * 50] * 50))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    shown = message.split("negative_prompt = ", 1)[1].split(": Input should be", 1)[0]
    assert shown.startswith("[[") and len(shown) <= 80
