"""Prompt composition follows the documented recipe."""

from __future__ import annotations

from vgkit.spec.prompt import CAMERA_PHRASES, compose_negative_prompt, compose_prompt
from vgkit.spec.schema import CAMERA_MOVES, GlobalConstants, ShotCard

CONSTANTS = GlobalConstants(
    style="photoreal", era_location="1920s harbour", lighting="bright day", lens="35mm.", aspect="16:9"
)


def test_shot_first_then_constants_in_fixed_order() -> None:
    shot = ShotCard(subject="a tug", action="pulls a barge", environment="  grey   water ", camera="pan", duration_s=5)
    assert compose_prompt(CONSTANTS, shot) == (
        "A tug, pulls a barge. Grey water. Camera: slow smooth horizontal pan. Photoreal. "
        "1920s harbour. Bright day. 35mm. 16:9."
    )


def test_every_camera_move_has_a_phrase() -> None:
    assert set(CAMERA_PHRASES) == set(CAMERA_MOVES)


def test_negative_prompt_merges_run_and_shot() -> None:
    shot = ShotCard(subject="s", action="a", environment="e", duration_s=5, negative_prompt="rain")
    assert compose_negative_prompt("blur, text", shot) == "blur, text, rain"
    bare = ShotCard(subject="s", action="a", environment="e", duration_s=5)
    assert compose_negative_prompt("", bare) == ""
