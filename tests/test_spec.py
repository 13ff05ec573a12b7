"""Spec loading: valid specs load; each bad one is a one-line SpecError naming field and fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from vgkit.errors import SpecError
from vgkit.spec import load_spec


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


def _shot(**changes: Any) -> dict[str, Any]:
    data = spec_dict()
    data["shots"][1].update(changes)
    return data


BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown top key", spec_dict(colour="red"), "colour"),
    ("missing globals", {k: v for k, v in spec_dict().items() if k != "globals"}, "globals"),
    ("two camera moves", _shot(camera="pan and tilt"), "shots[1].camera"),
    ("unknown camera move", _shot(camera="zoom"), "shots[1].camera"),
    ("duration too short", _shot(duration_s=2), "shots[1].duration_s"),
    ("duration too long", _shot(duration_s=12), "shots[1].duration_s"),
    ("duration not a number", _shot(duration_s="five"), "shots[1].duration_s"),
    ("extra shot key", _shot(lens="50mm"), "shots[1].lens"),
    ("empty subject", _shot(subject="  "), "shots[1].subject"),
    ("negative seed", spec_dict(seed=-1), "seed"),
    ("empty shot list", spec_dict(shots=[]), "shots"),
    ("bad run name", spec_dict(name="my run/1"), "name"),
    ("missing image", spec_dict(reference_image="nope.png"), "reference_image"),
]


@pytest.mark.parametrize(("label", "data", "field"), BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_is_one_clear_line(tmp_path: Path, label: str, data: dict[str, Any], field: str) -> None:
    path = write_spec(tmp_path / "spec.yaml", data)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert "\n" not in message
    assert field in message
    assert "fix:" in message
    assert sorted(tmp_path.rglob("*")) == before


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid yaml"):
        load_spec(path)


def test_unreadable_image(tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"not an image")
    with pytest.raises(SpecError, match="not a readable image"):
        load_spec(write_spec(tmp_path / "s.yaml", spec_dict(reference_image=str(fake))))


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "absent.yaml")
