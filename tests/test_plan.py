"""Integer-frame planning: frame rules, final length, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from vgkit.errors import SpecError
from vgkit.models import adapter
from vgkit.models.base import FrameRule
from vgkit.plan import make_plan
from vgkit.spec import load_spec


def test_frame_rule_nearest() -> None:
    rule = FrameRule(modulus=4, remainder=1)
    assert rule.nearest(121) == 121
    assert rule.nearest(176) == 177  # 7.3 s at 24 fps -> 176.2 + 1
    assert rule.nearest(123) == 125  # tie goes up
    assert rule.nearest(1) == 5
    assert all(rule.is_valid(rule.nearest(n)) for n in range(1, 400))


def test_demo_plan_is_thirty_seconds_of_integer_frames() -> None:
    spec = load_spec(REPO / "params" / "demo.yaml")
    plan = make_plan(spec, adapter("wan22-tiny"))
    assert [c.num_frames for c in plan.clips] == [121] * 6
    assert plan.final_frames == 6 * 121 - 5
    assert float(plan.final_seconds) >= 30


def test_plan_under_thirty_seconds_is_refused(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "s.yaml", spec_dict(allow_any_length=False)))
    with pytest.raises(SpecError, match="outside 30-60 s"):
        make_plan(spec, adapter("wan22-tiny"))


def test_size_the_model_would_round_is_refused(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "s.yaml", spec_dict(overrides={"width": 100, "height": 64})))
    with pytest.raises(SpecError, match=r"overrides.width = 100: .* multiples of 32; fix: use 96 or 128"):
        make_plan(spec, adapter("wan22-tiny"))


def test_overrides_are_recorded(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path / "s.yaml", spec_dict()))
    plan = make_plan(spec, adapter("wan22-tiny"))
    assert plan.overrides == {"width": 64, "height": 64, "steps": 2}
    assert (plan.width, plan.height, plan.steps) == (64, 64, 2)
    assert plan.guidance_scale == adapter("wan22-tiny").baseline.guidance_scale
