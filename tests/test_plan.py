"""Integer-frame planning: frame rules, final length, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from vgkit.errors import SpecError
from vgkit.models import adapter
from vgkit.models.base import FrameRule
from vgkit.spec.plan import MAX_FINAL_S, make_plan
from vgkit.spec.schema import RunSpec, load_spec


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


def test_more_than_one_frame_past_sixty_seconds_is_refused(tmp_path: Path) -> None:
    shots = [{**spec_dict()["shots"][0], "duration_s": 5} for _ in range(12)]
    shots[-1]["duration_s"] = 5.2  # 126 frames (interpolated: past Wan's 121): 1446 in all
    spec = load_spec(write_spec(tmp_path / "s.yaml", spec_dict(shots=shots, allow_any_length=False)))
    with pytest.raises(SpecError, match=r"60\.25 s \(1446 frames at 24 fps\), outside 30-60 s \(719-1441 frames\)"):
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


LIMITS = {  # model: (native frames, max frames, fps, frame rule) from the family files and FACTS.md
    "wan22": (121, 121, 24, "4k+1"),
    "hunyuan-i2v": (129, 129, 24, "4k+1"),
    "cogvideox15": (81, 161, 16, "8k+1"),
}


@pytest.mark.parametrize("model", sorted(LIMITS))
def test_each_family_states_its_clip_limits_and_the_twin_shares_them(model: str) -> None:
    real, tiny = adapter(model), adapter(f"{model}-tiny")
    limits = real.clip_limits
    assert (limits.native_frames, limits.max_frames, limits.fps, limits.frame_rule.describe()) == LIMITS[model]
    assert tiny.clip_limits == limits
    assert real.baseline.fps == tiny.baseline.fps == limits.fps


def _sixty_second_spec(tmp_path: Path, count: int, duration_s: float, **changes: object) -> RunSpec:
    shots = [{**spec_dict()["shots"][0], "duration_s": duration_s} for _ in range(count)]
    return load_spec(write_spec(tmp_path / "s.yaml", spec_dict(shots=shots, allow_any_length=False, **changes)))


# (model, shot seconds) -> (frames generated, frames in the clip) under the default long_shots: interpolate
LONG_SHOTS = {
    ("wan22-tiny", 10): (121, 241),  # 12 fps x 10 s + 1, interpolated x2
    ("wan22-tiny", 7.5): (93, 181),  # 12 fps: 91 -> 93 (4k+1)
    ("hunyuan-i2v-tiny", 10): (121, 241),
    ("hunyuan-i2v-tiny", 7.5): (93, 181),
    ("cogvideox15-tiny", 10): (81, 161),  # 8 fps x 10 s + 1 = the native 81
    ("cogvideox15-tiny", 7.5): (65, 121),  # 8 fps: 61 -> 65 (8k+1)
}


@pytest.mark.parametrize(("model", "duration_s"), sorted(LONG_SHOTS))
def test_long_shots_generate_within_the_native_frames_and_interpolate_up(
    tmp_path: Path, model: str, duration_s: float
) -> None:
    count = round(60 / duration_s)
    plan = make_plan(_sixty_second_spec(tmp_path, count, duration_s), adapter(model))
    assert {(c.generated_frames, c.num_frames) for c in plan.clips} == {LONG_SHOTS[(model, duration_s)]}
    assert max(c.generated_frames for c in plan.clips) <= adapter(model).clip_limits.native_frames
    assert plan.final_frames == MAX_FINAL_S * plan.fps + 1
    assert plan.long_shots is not None and plan.long_shots["interpolator_resolved"] in ("rife", "minterpolate")
    assert "generated at" in plan.summary() and "slower than the model paces it" in plan.summary()


def test_five_second_shots_are_not_interpolated(tmp_path: Path) -> None:
    plan = make_plan(_sixty_second_spec(tmp_path, 12, 5), adapter("wan22-tiny"))
    assert all(c.generated_frames == c.num_frames == 121 and c.long_shot == "native" for c in plan.clips)
    assert plan.long_shots is not None and plan.long_shots["interpolator_resolved"] is None


def test_refuse_mode_names_the_numbers(tmp_path: Path) -> None:
    spec = _sixty_second_spec(tmp_path, 6, 10, long_shots={"mode": "refuse"})
    with pytest.raises(
        SpecError,
        match=r"shots\[0\]\.duration_s = 10 s needs 241 frames at 24 fps, more than "
        r"wan22-tiny's native 121 \(maximum 121\); fix: shorten it to 5 s or less",
    ):
        make_plan(spec, adapter("wan22-tiny"))


def test_extend_mode_generates_the_native_frames(tmp_path: Path) -> None:
    plan = make_plan(_sixty_second_spec(tmp_path, 8, 7.5, long_shots={"mode": "extend"}), adapter("wan22-tiny"))
    assert {(c.generated_frames, c.num_frames, c.long_shot) for c in plan.clips} == {(121, 181, "extend")}
    assert "the native frames stretched" in plan.summary()


def test_generate_mode_stays_within_the_maximum(tmp_path: Path) -> None:
    """CogVideoX1.5 makes 161 frames (10 s): generate asks for them, and the plan states the cost."""
    plan = make_plan(_sixty_second_spec(tmp_path, 6, 10, long_shots={"mode": "generate"}), adapter("cogvideox15-tiny"))
    assert {(c.generated_frames, c.num_frames) for c in plan.clips} == {(161, 161)}
    assert "[long: 161 > the native 81; about 2.0-4.0x the time and memory" in plan.summary()


def test_generate_beyond_the_maximum_needs_the_override_and_states_its_cost(tmp_path: Path) -> None:
    spec = _sixty_second_spec(tmp_path, 6, 10, long_shots={"mode": "generate"})
    with pytest.raises(SpecError, match=r"241 frames would be 1\.99x the maximum, about 2\.0-4\.0x the time"):
        make_plan(spec, adapter("wan22-tiny"))
    spec = _sixty_second_spec(tmp_path, 6, 10, long_shots={"mode": "generate", "beyond_max_frames": True})
    plan = make_plan(spec, adapter("wan22-tiny"))
    assert {c.generated_frames for c in plan.clips} == {241}
    assert "1.99x its maximum 121" in plan.summary()


def test_crossfades_count_in_the_final_length(tmp_path: Path) -> None:
    """Found by hand: a 12-frame crossfade took the 30 s demo to 27.54 s without a word."""
    crossfade = {"transition": "crossfade", "overlap_frames": 12}
    spec = _sixty_second_spec(tmp_path, 6, 5, stitch=crossfade)
    with pytest.raises(
        SpecError,
        match=r"6 clips with 5 crossfades of 12 frames \(726 - 5 duplicated first frames - 5 x 12 crossfade overlap\): "
        r"the final video would be 27\.54 s \(661 frames at 24 fps\), outside 30-60 s",
    ):
        make_plan(spec, adapter("wan22-tiny"))
    plan = make_plan(_sixty_second_spec(tmp_path, 12, 5, stitch=crossfade), adapter("wan22-tiny"))
    assert (plan.joined_frames, plan.final_frames) == (1441, 1441 - 11 * 12)
    assert plan.to_dict()["stitch"]["overlap_frames"] == 12
    assert "crossfade over 12 frames" in plan.summary()


def test_stitch_section_is_checked_when_planned(tmp_path: Path) -> None:
    spec = _sixty_second_spec(tmp_path, 12, 5, stitch={"transition": "cut", "overlap_frames": 4})
    with pytest.raises(SpecError, match=r"stitch\.overlap_frames = 4: a cut has no overlap"):
        make_plan(spec, adapter("wan22-tiny"))


def test_long_shots_are_projected_at_the_frames_the_model_makes(tmp_path: Path) -> None:
    """The cost planner projects a 10 s shot as the 121 frames Wan generates, not the 241 in the clip."""
    from vgkit.cost.planner import plan_cost

    model = adapter("wan22")
    preset = model.preset("80gb")
    costs = [
        plan_cost(
            make_plan(_sixty_second_spec(tmp_path / name, count, seconds, overrides={}), model, preset=preset),
            model,
            preset,
            gpu="h100",
            clip_timeout_s=600.0,
            run_timeout_s=7200.0,
        )
        for name, count, seconds in (("long", 6, 10.0), ("native", 12, 5.0))
    ]
    long, native = (cost.clips[0].seconds_per_clip for cost in costs if cost is not None)
    assert long == native


def test_stitch_colour_anchor_reference_image_records_its_path(tmp_path: Path) -> None:
    stitch = {"colour": "mean_std", "colour_anchor": "reference_image", "seam_smoothing": "minterpolate"}
    spec = _sixty_second_spec(tmp_path, 12, 5, stitch=stitch)
    plan = make_plan(spec, adapter("wan22-tiny"))
    assert plan.stitch is not None and plan.stitch["colour_anchor_image"] == str(spec.reference_image)
    assert "seam smoothing minterpolate (frames re-made, count unchanged)" in plan.summary()
    assert plan.final_frames == plan.joined_frames == 1441
