"""The resume key: every value that can change a clip's pixels is in it, so a re-run with any of
them changed regenerates the clip (and ignores its saved latents), and a re-run with nothing
changed reuses it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.generate.chain import _request_key
from vgkit.generate.runner import run_job
from vgkit.models import adapter
from vgkit.models.base import CPU_PRESET, Preset
from vgkit.records.events import Event
from vgkit.spec.plan import make_plan
from vgkit.spec.schema import load_spec

MODEL_RECORD: dict[str, Any] = {
    "name": "wan22-tiny",
    "repo_id": "vgkit-tests/wan22-tiny",
    "revision": "main",
    "snapshot": "0" * 40,
    "device": "cpu",
    "pipeline_class": "WanImageToVideoPipeline",
    "scheduler_class": "UniPCMultistepScheduler",
    "scheduler_config": {"flow_shift": 5.0, "solver_order": 2},
}
INPUT_SHA = "a" * 64


def _key(
    tmp: Path,
    *,
    spec_changes: dict[str, Any] | None = None,
    preset: Preset = CPU_PRESET,
    model: dict[str, Any] | None = None,
    input_sha256: str = INPUT_SHA,
) -> dict[str, Any]:
    spec_path = write_spec(tmp / "spec.yaml", spec_dict(**(spec_changes or {})))
    plan = make_plan(load_spec(spec_path), adapter("wan22-tiny"), preset=preset)
    return _request_key(plan, plan.clips[0], input_sha256, model=model or MODEL_RECORD)


def _shot_changed(**fields: Any) -> dict[str, Any]:
    shots = spec_dict()["shots"]
    shots[0] = {**shots[0], **fields}
    return {"shots": shots}


def _overrides(**fields: Any) -> dict[str, Any]:
    return {"overrides": {"width": 64, "height": 64, "steps": 2, **fields}}


SPEC_CHANGES: dict[str, dict[str, Any]] = {
    "prompt (subject)": _shot_changed(subject="a lighthouse"),
    "prompt (camera move)": _shot_changed(camera="static"),
    "prompt (globals)": {"globals": {**spec_dict()["globals"], "lighting": "night"}},
    "negative prompt": {"negative_prompt": "noise"},
    "seed": {"seed": 8},
    "num_frames": _shot_changed(duration_s=6),
    "steps": _overrides(steps=3),
    "guidance": _overrides(guidance_scale=3.0),
    "width": _overrides(width=96),
    "height": _overrides(height=96),
    "speed cache": {"speed": {"cache": "first-block"}},
    "speed cache threshold": {"speed": {"cache": "first-block", "cache_threshold": 0.2}},
    "speed attention backend": {"speed": {"attention_backend": "native"}},
    "speed compile": {"speed": {"compile": "regional"}},
}

PRESET_CHANGES: dict[str, dict[str, Any]] = {
    "preset name": {"name": "cpu-b"},
    "transformer dtype": {"transformer_dtype": "bfloat16"},
    "other dtype": {"other_dtype": "bfloat16"},
    "vae dtype": {"vae_dtype": "float16"},
    "fp8 layerwise": {"fp8_layerwise": True},
    "vae tiling": {"vae_tiling": True},
    "offload": {"offload": "group"},
}

MODEL_CHANGES: dict[str, dict[str, Any]] = {
    "model revision": {"revision": "refs/pr/1"},
    "snapshot": {"snapshot": "1" * 40},
    "repo": {"repo_id": "someone/wan22-tiny-fork"},
    "scheduler class": {"scheduler_class": "FlowMatchEulerDiscreteScheduler"},
    "scheduler config": {"scheduler_config": {"flow_shift": 3.0, "solver_order": 2}},
}


def test_nothing_changed_gives_the_same_key_as_a_written_log_reads_back(tmp_path: Path) -> None:
    key = _key(tmp_path)
    assert _key(tmp_path) == key
    # The chain compares the key with the one read back from log_NNN.json.
    assert json.loads(json.dumps(key)) == key


@pytest.mark.parametrize("name", sorted(SPEC_CHANGES))
def test_each_spec_value_that_changes_pixels_changes_the_key(tmp_path: Path, name: str) -> None:
    assert _key(tmp_path, spec_changes=SPEC_CHANGES[name]) != _key(tmp_path)


@pytest.mark.parametrize("name", sorted(PRESET_CHANGES))
def test_each_preset_field_changes_the_key(tmp_path: Path, name: str) -> None:
    changed = dataclasses.replace(CPU_PRESET, **PRESET_CHANGES[name])
    assert _key(tmp_path, preset=changed) != _key(tmp_path)


def test_preset_prose_does_not_change_the_key(tmp_path: Path) -> None:
    reworded = dataclasses.replace(CPU_PRESET, source="measured again, same numbers")
    assert _key(tmp_path, preset=reworded) == _key(tmp_path)


@pytest.mark.parametrize("name", sorted(MODEL_CHANGES))
def test_each_model_identity_field_changes_the_key(tmp_path: Path, name: str) -> None:
    assert _key(tmp_path, model={**MODEL_RECORD, **MODEL_CHANGES[name]}) != _key(tmp_path)


def test_input_image_changes_the_key(tmp_path: Path) -> None:
    assert _key(tmp_path, input_sha256="b" * 64) != _key(tmp_path)


def test_rerun_with_a_speed_option_added_regenerates_on_the_tiny_wan(tmp_path: Path) -> None:
    """End to end on the real tiny Wan: the same spec reuses its clip; adding
    ``speed: {cache: first-block}`` denoises it again instead of reusing the clip or its latents."""
    data = spec_dict()
    data["shots"] = data["shots"][:1]
    spec = write_spec(tmp_path / "spec.yaml", data)
    run_dir = tmp_path / "run"
    run_job(spec, out=run_dir, progress=lambda _: None)

    events: list[Event] = []
    run_job(spec, out=run_dir, progress=events.append)
    assert [e.stage for e in events if e.clip_index == 0] == ["clip-reused"], events

    write_spec(spec, {**data, "speed": {"cache": "first-block"}})
    events.clear()
    run_job(spec, out=run_dir, progress=events.append)
    stages = [e.stage for e in events if e.clip_index == 0 and e.stage != "denoise"]
    assert stages == ["clip-start", "decode", "encode", "clip-done"], events  # denoised again, not reused
    assert not any(e.figures.get("saved_latents") for e in events)
    log = json.loads((run_dir / "logs" / "log_000.json").read_text())
    assert log["request"]["speed"]["cache"] == "first-block"
