"""Integer-frame planning: frame rules, final length, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from vgkit.errors import SpecError
from vgkit.models import adapter
from vgkit.models.base import FrameRule
from vgkit.plan import MAX_FINAL_S, make_plan
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


@pytest.mark.parametrize("model", ["wan22-tiny", "cogvideox15-tiny", "hunyuan-i2v-tiny"])
@pytest.mark.parametrize(("count", "duration_s"), [(12, 5), (6, 10), (8, 7.5)])
def test_shot_lists_adding_to_exactly_sixty_seconds_plan(
    tmp_path: Path, model: str, count: int, duration_s: float
) -> None:
    """They end one frame past 60 s (the first frame of every chained clip is dropped, not the
    last): accepted as within one frame of the bound (they were refused at 60.04 s)."""
    shots = [{**spec_dict()["shots"][0], "duration_s": duration_s} for _ in range(count)]
    spec = load_spec(write_spec(tmp_path / "s.yaml", spec_dict(shots=shots, allow_any_length=False)))
    plan = make_plan(spec, adapter(model))
    assert plan.final_frames == MAX_FINAL_S * plan.fps + 1


def test_one_frame_more_than_that_is_refused(tmp_path: Path) -> None:
    shots = [{**spec_dict()["shots"][0], "duration_s": 5} for _ in range(12)]
    shots[-1]["duration_s"] = 5.2  # 125 frames: 1445 in all
    spec = load_spec(write_spec(tmp_path / "s.yaml", spec_dict(shots=shots, allow_any_length=False)))
    with pytest.raises(SpecError, match=r"60\.21 s .*outside 30-60 s"):
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
