"""``vgkit diff``: which effective values differ between two runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.conftest import spec_dict, write_spec
from vgkit.evaluate.diff import diff_runs, format_diff
from vgkit.models import adapter
from vgkit.models.base import CPU_PRESET, Preset
from vgkit.records.artifacts import RunLayout, atomic_write_json
from vgkit.spec.plan import make_plan
from vgkit.spec.schema import load_spec


def _planned_run(tmp: Path, name: str, *, preset: Preset | None = None, **changes: object) -> Path:
    data = spec_dict(**changes)
    plan = make_plan(load_spec(write_spec(tmp / f"{name}.yaml", data)), adapter("wan22-tiny"), preset=preset)
    layout = RunLayout(tmp / name)
    layout.make_dirs()
    atomic_write_json(layout.plan, plan.to_dict())
    return layout.root


def test_one_changed_variable_is_named(tmp_path: Path) -> None:
    a = _planned_run(tmp_path, "a")
    b = _planned_run(tmp_path, "b", overrides={"width": 64, "height": 64, "steps": 3})
    changes = diff_runs(a, b)
    assert changes == [("steps", 2, 3)]
    assert format_diff(a, b, changes).endswith("one variable changed: steps")


def test_seed_change_shows_per_clip(tmp_path: Path) -> None:
    a = _planned_run(tmp_path, "a")
    b = _planned_run(tmp_path, "b", seed=100)
    changes = diff_runs(a, b)
    assert [k for k, _, _ in changes] == ["clip[0].seed", "clip[1].seed", "clip[2].seed"]
    assert format_diff(a, b, changes).endswith("one variable changed: seed")


def test_identical_runs(tmp_path: Path) -> None:
    a = _planned_run(tmp_path, "a")
    b = _planned_run(tmp_path, "b")
    assert diff_runs(a, b) == []
    assert "identical" in format_diff(a, b, [])


def test_preset_difference_is_named(tmp_path: Path) -> None:
    a = _planned_run(tmp_path, "a")
    b = _planned_run(tmp_path, "b", preset=dataclasses.replace(CPU_PRESET, transformer_dtype="bfloat16"))
    changes = diff_runs(a, b)
    assert changes == [("preset.transformer_dtype", "float32", "bfloat16")]
    assert format_diff(a, b, changes).endswith("one variable changed: preset")


def test_speed_difference_is_named(tmp_path: Path) -> None:
    a = _planned_run(tmp_path, "a")
    b = _planned_run(tmp_path, "b", speed={"cache": "first-block"})
    changes = diff_runs(a, b)
    assert ("speed.cache", "off", "first-block") in changes
    assert {k for k, _, _ in changes} <= {"speed.cache", "speed.threshold_in_effect"}
    assert format_diff(a, b, changes).endswith("one variable changed: speed")


def test_output_size_difference_is_named(tmp_path: Path) -> None:
    """A half-size preset generates both 128x128 and 96x96 at 64x64: only the output size differs."""
    half = dataclasses.replace(CPU_PRESET, size_scale=0.5)
    a = _planned_run(tmp_path, "a", preset=half, overrides={"width": 128, "height": 128, "steps": 2})
    b = _planned_run(tmp_path, "b", preset=half, overrides={"width": 96, "height": 96, "steps": 2})
    changes = diff_runs(a, b)
    assert changes == [("output_width", 128, 96), ("output_height", 128, 96)]
    assert format_diff(a, b, changes).endswith("one variable changed: size")


def test_plan_records_baseline_and_differences(tmp_path: Path) -> None:
    plan = make_plan(load_spec(write_spec(tmp_path / "s.yaml", spec_dict())), adapter("wan22-tiny"))
    record = plan.to_dict()
    assert record["baseline"]["steps"] == 4
    assert record["differs_from_baseline"] == {"width": 64, "height": 64, "steps": 2}
