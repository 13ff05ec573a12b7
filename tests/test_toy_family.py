"""A fourth family from one module (tests/toy_family.py) runs end to end through the normal run path.

Nothing in vgkit/ names the toy: ``register_model`` is the only call, and spec -> plan -> chained
clips (denoise, latents on disk, the family's own decode) -> stitch -> manifest -> bundle all run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import toy_family
from tests.conftest import spec_dict, write_spec
from vgkit.errors import SpecError
from vgkit.finish.encode import count_frames
from vgkit.generate.runner import JobResult, run_job
from vgkit.models import adapter, model_names
from vgkit.records.artifacts import RunLayout, sha256_file

NAME = toy_family.TOY.name


@pytest.fixture(scope="module")
def registered() -> Iterator[None]:
    toy_family.register()
    yield
    toy_family.unregister()


@pytest.fixture(scope="module")
def toy_run(registered: None, tmp_path_factory: pytest.TempPathFactory) -> JobResult:
    tmp = tmp_path_factory.mktemp("toy")
    shots = spec_dict()["shots"][:2]  # two 5 s shots: 21 frames at 4 fps each
    spec = write_spec(tmp / "spec.yaml", spec_dict(name="toy", model=NAME, shots=shots, overrides={}))
    return run_job(spec, out=tmp / "run", progress=lambda _: None)


def _logs(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((run_dir / "logs").glob("log_*.json"))]


def test_registration_is_the_only_change_and_is_undone() -> None:
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
        assert (log["effective"]["width"], log["effective"]["height"]) == (64, 48)  # the toy's baseline
    assert logs[0]["input"]["source"] == "reference_image"
    handed_over = logs[0]["artifacts"]["last_frame"]
    assert logs[1]["input"]["source"] == handed_over["path"]  # clip 1 starts from clip 0's last frame
    assert logs[1]["input"]["sha256"] == handed_over["sha256"] == sha256_file(toy_run.run_dir / handed_over["path"])
