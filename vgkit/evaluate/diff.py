"""Compare two runs' effective configs, so "one variable at a time" can be checked.

Reads each run's ``plan.json`` (and the model record of its first log when present) and lists
every value that differs, run-level first, then per clip. The preset and the speed options are
compared field by field (``preset.transformer_dtype``, ``speed.cache``); the verdict counts each
of them, and the size (generation and output), as one variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vgkit.errors import ArtifactError
from vgkit.records.artifacts import RunLayout
from vgkit.records.schema import read_log, read_plan

__all__ = ["diff_runs", "format_diff"]

RUN_KEYS = (
    "model",
    "fps",
    "width",
    "height",
    "output_width",
    "output_height",
    "steps",
    "guidance_scale",
    "max_sequence_length",
    "clip_count",
)
# Compared field by field; the preset's prose (``source``) and summary (``describe``) are not values.
RECORD_KEYS = {"preset": ("source", "describe"), "speed": ()}
CLIP_KEYS = ("prompt", "negative_prompt", "seed", "camera", "num_frames")
SIZE_KEYS = ("width", "height", "output_width", "output_height")


def run_config(run_dir: Path) -> dict[str, Any]:
    """The flat effective config of a run: ``{"steps": 50, "clip[2].seed": 9, ...}``."""
    layout = RunLayout(run_dir)
    if not layout.plan.is_file():
        raise ArtifactError(f"{run_dir}: no plan.json; fix: give a run directory made by `vgkit run`")
    plan = read_plan(run_dir).model_dump()
    config: dict[str, Any] = {key: plan.get(key) for key in RUN_KEYS}
    for name, skipped in RECORD_KEYS.items():
        record = plan.get(name) or {}
        config.update({f"{name}.{field}": value for field, value in record.items() if field not in skipped})
    model = read_log(layout.log(0), root=run_dir).model if layout.log(0).is_file() else None
    if model is not None:
        config["model_revision"] = model.revision
        config["pipeline_class"] = model.pipeline_class
        config["scheduler_class"] = model.scheduler_class
    for clip in plan["clips"]:
        for key in CLIP_KEYS:
            config[f"clip[{clip['index']}].{key}"] = clip.get(key)
    return config


def diff_runs(run_a: Path, run_b: Path) -> list[tuple[str, Any, Any]]:
    """Every key whose value differs between the two runs, in a stable order."""
    a, b = run_config(run_a), run_config(run_b)
    keys = list(a) + [k for k in b if k not in a]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def format_diff(run_a: Path, run_b: Path, changes: list[tuple[str, Any, Any]]) -> str:
    if not changes:
        return f"{run_a} and {run_b}: identical configs"
    lines = [f"{len(changes)} value(s) differ between {run_a} and {run_b}:"]
    lines += [f"  {key}: {va!r} -> {vb!r}" for key, va, vb in changes]
    variables = {_variable(key) for key, _, _ in changes}
    verdict = "one variable changed" if len(variables) == 1 else f"{len(variables)} variables changed"
    lines.append(f"{verdict}: {', '.join(sorted(variables))}")
    return "\n".join(lines)


def _variable(key: str) -> str:
    """The variable a changed key belongs to: ``clip[2].seed`` -> seed, ``speed.cache`` -> speed,
    ``output_width`` -> size."""
    if key.startswith("clip["):
        return key.split(".")[-1]
    if key in SIZE_KEYS:
        return "size"
    return key.split(".")[0]
