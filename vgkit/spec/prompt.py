"""Prompt composition: global constants + one shot card -> the text a model receives.

The recipe is fixed and documented so two runs with the same spec send the same prompt:

    "{subject}, {action}. {environment}. Camera: {camera phrase}. {style}. {era_location}.
     {lighting}. {lens}. {aspect}."

Shot content comes first because the text encoders weigh early tokens most; the constants follow
in a fixed order. Whitespace is collapsed, each sentence starts with a capital, and a trailing
period is not doubled.
"""

from __future__ import annotations

from vgkit.spec.schema import GlobalConstants, ShotCard

__all__ = ["CAMERA_PHRASES", "compose_negative_prompt", "compose_prompt"]

CAMERA_PHRASES: dict[str, str] = {
    "static": "static locked-off camera, no camera movement",
    "pan": "slow smooth horizontal pan",
    "dolly": "slow smooth dolly move",
    "tilt": "slow smooth vertical tilt",
    "push-in": "slow smooth push-in toward the subject",
    "orbit": "slow smooth orbit around the subject",
}


def _sentence(text: str) -> str:
    text = " ".join(text.split()).rstrip(".")
    return f"{text[0].upper()}{text[1:]}." if text else ""


def compose_prompt(constants: GlobalConstants, shot: ShotCard) -> str:
    """The full prompt for one clip (see the module docstring for the recipe)."""
    parts = [
        f"{shot.subject.rstrip('.')}, {shot.action}",
        shot.environment,
        f"Camera: {CAMERA_PHRASES[shot.camera]}",
        constants.style,
        constants.era_location,
        constants.lighting,
        constants.lens,
        constants.aspect,
    ]
    return " ".join(s for s in (_sentence(p) for p in parts) if s)


def compose_negative_prompt(run_negative: str, shot: ShotCard) -> str:
    """The run's negative prompt, then the shot's own additions, comma-joined."""
    parts = [" ".join(p.split()).strip(", ") for p in (run_negative, shot.negative_prompt or "")]
    return ", ".join(p for p in parts if p)
