"""``vgkit diff``: which effective values differ between two runs."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import spec_dict, write_spec
from vgkit.artifacts import RunLayout, atomic_write_json
from vgkit.diff import diff_runs, format_diff
from vgkit.models import adapter
from vgkit.plan import make_plan
from vgkit.spec import load_spec


def _planned_run(tmp: Path, name: str, **changes: object) -> Path:
    data = spec_dict(**changes)
    plan = make_plan(load_spec(write_spec(tmp / f"{name}.yaml", data)), adapter("wan22-tiny"))
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


def test_plan_records_baseline_and_differences(tmp_path: Path) -> None:
    plan = make_plan(load_spec(write_spec(tmp_path / "s.yaml", spec_dict())), adapter("wan22-tiny"))
    record = plan.to_dict()
    assert record["baseline"]["steps"] == 4
    assert record["differs_from_baseline"] == {"width": 64, "height": 64, "steps": 2}
