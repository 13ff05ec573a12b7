"""A fourth family from one module (tests/toy_family.py) runs end to end through the normal run path.

Nothing in vgkit/ names the toy: ``register_model`` is the only call, and spec -> plan -> chained
clips (denoise, latents on disk, the family's own decode) -> stitch -> manifest -> bundle all run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import toy_family
from tests.conftest import spec_dict, write_spec
from vgkit.errors import SpecError
from vgkit.finish.encode import count_frames
from vgkit.generate.generator import ClipRequest, InProcessGenerator
from vgkit.generate.runner import JobResult, run_job
from vgkit.hub.checkpoints import locate_checkpoint
from vgkit.models import ModelAdapter, adapter, model_names
from vgkit.records.artifacts import RunLayout, sha256_file

NAME = toy_family.TOY.name


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobResult]:
    """One run of the toy family, registered for that run only (other tests see vgkit's three)."""
    tmp = tmp_path_factory.mktemp("toy")
    shots = spec_dict()["shots"][:2]  # two 5 s shots: 21 frames at 4 fps each
    spec = write_spec(tmp / "spec.yaml", spec_dict(name="toy", model=NAME, shots=shots, overrides={}))
    toy_family.register()
    try:
        result = run_job(spec, out=tmp / "run", progress=lambda _: None)
    finally:
        toy_family.unregister()
    yield result


def _logs(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((run_dir / "logs").glob("log_*.json"))]


def test_registration_is_one_call_and_is_undone() -> None:
    with pytest.raises(SpecError, match=f"model = '{NAME}': unknown model"):
        adapter(NAME)
    toy_family.register()
    try:
        assert adapter(NAME) is toy_family.TOY and NAME in model_names()
        with pytest.raises(ValueError, match="already registered"):
            toy_family.register()
    finally:
        toy_family.unregister()
    assert NAME not in model_names()
    with pytest.raises(ValueError, match="was not added by register_model"):
        from vgkit.models import unregister_model

        unregister_model("wan22")


def test_the_toy_family_runs_spec_to_stitched_video(toy_run: JobResult) -> None:
    layout = RunLayout(toy_run.run_dir)
    assert toy_run.model == NAME
    assert [count_frames(layout.clip(i)) for i in range(2)] == [21, 21]
    assert count_frames(toy_run.final_video) == toy_run.final_frames
    assert toy_run.bundle.is_file()
    manifest = json.loads(toy_run.manifest.read_text())
    assert NAME in json.dumps(manifest)


def test_its_clips_chain_and_decode_through_the_familys_own_hook(toy_run: JobResult) -> None:
    logs = _logs(toy_run.run_dir)
    assert len(logs) == 2
    for log in logs:
        assert log["model"]["pipeline_class"] == "SkyReelsV2ImageToVideoPipeline"
        assert log["call_kwargs"]["output_type"] == "latent"  # denoised apart, latents kept on disk
        assert log["effective"]["decode_attempt"] == "as_loaded"  # then ToySkyReelsAdapter.decode_latents
        assert (log["effective"]["width"], log["effective"]["height"]) == (48, 32)  # the toy's baseline
    assert logs[0]["input"]["source"] == "reference_image"
    handed_over = logs[0]["artifacts"]["last_frame"]
    assert logs[1]["input"]["source"] == handed_over["path"]  # clip 1 starts from clip 0's last frame
    assert logs[1]["input"]["sha256"] == handed_over["sha256"] == sha256_file(toy_run.run_dir / handed_over["path"])


@dataclasses.dataclass(frozen=True)
class _NoDecodeHooks(toy_family.ToySkyReelsAdapter):
    """The toy without its decode hooks: ``ModelAdapter``'s defaults (the pipeline decodes in its call)."""

    decodes_separately = ModelAdapter.decodes_separately
    decode_latents = ModelAdapter.decode_latents


def test_the_familys_decode_hook_matches_the_pipelines_own_decode() -> None:
    toy = toy_family.TOY
    snapshot = locate_checkpoint(toy)
    request = ClipRequest(
        index=0,
        image_hwc=np.full((32, 32, 3), 120, dtype=np.uint8),
        prompt="a boat sails at dawn",
        negative_prompt="blur",
        seed=3,
        num_frames=5,
        width=32,
        height=32,
        steps=1,
        guidance_scale=5.0,
        max_sequence_length=toy.baseline.max_sequence_length,
    )
    separate = InProcessGenerator(toy, snapshot, device="cpu").generate(request)
    plain = _NoDecodeHooks(**{f.name: getattr(toy, f.name) for f in dataclasses.fields(toy)})
    inline = InProcessGenerator(plain, snapshot, device="cpu")
    denoised = inline.denoise(request)
    assert separate.call_kwargs["output_type"] == "latent" and denoised.call_kwargs["output_type"] == "np"
    assert denoised.latents is None and denoised.frames_fhwc is not None  # nothing to keep on disk
    assert separate.frames_fhwc is not None and separate.frames_fhwc.shape == (5, 32, 32, 3)
    assert np.abs(separate.frames_fhwc.astype(int) - denoised.frames_fhwc.astype(int)).max() <= 1
