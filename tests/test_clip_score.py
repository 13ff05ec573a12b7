"""Prompt match as a checkpoint like the video models: prefetched from a local Hub stand-in
(tests/hub_server.py, the real huggingface_hub client), checked and loaded offline, its twin
carrying the real repo's metadata, and the documented 0-10 mapping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.hub_server import HubRepo, HubServer
from vgkit.errors import ModelUnavailableError
from vgkit.evaluate.clip_score import (
    CLIP,
    CLIP_TINY,
    COSINE_MATCH,
    COSINE_UNRELATED,
    ClipScorer,
    cosine_to_score,
    load_scorer,
    score_run,
)
from vgkit.hub.checkpoints import locate_checkpoint
from vgkit.hub.prefetch import check_models, prefetch, wanted
from vgkit.models.tiny import reference_dir

# Keys the twin may change: widths, depths, vocabulary, projection size.
SIZE_KEYS = {"hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "vocab_size"}
SIZE_KEYS |= {"projection_dim"}
WRITER_KEYS = {"_name_or_path", "transformers_version", "dtype", "torch_dtype"}


def _flat(data: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key.endswith("_config"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_the_twin_has_the_real_file_names_and_config_values_but_the_sizes() -> None:
    snap = locate_checkpoint(CLIP_TINY)
    real_files = set(json.loads((reference_dir("clip") / "files.json").read_text()))
    assert {p.name for p in snap.iterdir()} == real_files
    assert all(wanted(f) for f in real_files)  # prefetch keeps every file the loader reads
    real = _flat(json.loads((reference_dir("clip") / "config.json").read_text()))
    twin = _flat(json.loads((snap / "config.json").read_text()))
    assert set(real) - WRITER_KEYS <= set(twin)
    differ = {k for k in real if k not in WRITER_KEYS and twin[k] != real[k]}
    assert differ and {k.rsplit(".", 1)[-1] for k in differ} <= SIZE_KEYS
    assert twin["vision_config.hidden_size"] < real["vision_config.hidden_size"]  # type: ignore[operator]
    preprocessor = json.loads((snap / "preprocessor_config.json").read_text())
    assert preprocessor == json.loads((reference_dir("clip") / "preprocessor_config.json").read_text())


def test_the_mapping_to_ten_is_clamped_and_monotonic() -> None:
    assert cosine_to_score(COSINE_UNRELATED) == 0.0 and cosine_to_score(-0.4) == 0.0
    assert cosine_to_score(COSINE_MATCH) == 10.0 and cosine_to_score(0.9) == 10.0
    middle = (COSINE_UNRELATED + COSINE_MATCH) / 2
    assert cosine_to_score(middle) == pytest.approx(5.0)
    assert cosine_to_score(0.2) < cosine_to_score(0.25) < cosine_to_score(0.3)


def test_the_twin_scores_frames_against_a_prompt_deterministically() -> None:
    scorer = load_scorer("clip-tiny")
    frames = np.random.default_rng(0).integers(0, 255, (9, 48, 64, 3), dtype=np.uint8)
    first = scorer.cosine(frames, "a boat sails on the sea")
    assert first == scorer.cosine(frames, "a boat sails on the sea")
    assert first != scorer.cosine(frames, "a red car in a city")  # the prompt is read
    assert first != scorer.cosine(frames[:, ::-1], "a boat sails on the sea")  # the frames are read


def test_without_cached_clip_weights_scoring_is_recorded_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="vgkit prefetch --model clip"):
        load_scorer("clip")
    record = score_run(tmp_path, model="clip")  # no clips: says so, does not raise
    assert record["status"] == "no clips" and record["run_score"] is None
    assert json.loads((tmp_path / "prompt_match.json").read_text()) == record


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """The CLIP repo id at the pinned commit, holding the twin's files plus pickle/TF weights and a
    README (which prefetch must skip); the client points at it; caches in tmp."""
    import huggingface_hub.constants as hf_constants

    files = HubRepo.from_dir(CLIP.repo_id, locate_checkpoint(CLIP_TINY)).files
    files |= {"pytorch_model.bin": b"pickle" * 50, "tf_model.h5": b"h5" * 50, "README.md": b"# clip\n"}
    with HubServer([HubRepo(CLIP.repo_id, files, commit=CLIP.revision)]) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "home" / "token"))
        yield server


def test_prefetch_model_clip_fetches_the_pinned_commit_verified_then_scores_offline(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "vgkit", "prefetch", "--model", "clip"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"openai/clip-vit-base-patch32@{CLIP.revision[:12]}" in done.stdout and "True" in done.stdout
    from vgkit.hub.cache import snapshot_dir

    snap = snapshot_dir(CLIP.repo_id, CLIP.revision, required_file="config.json")
    assert snap is not None
    assert {p.name for p in snap.iterdir()} == set(json.loads((reference_dir("clip") / "files.json").read_text()))
    assert not any(p.endswith((".bin", ".h5", "README.md")) for p in hub.downloads())

    before = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (status,) = check_models(["clip"], verify=True)
    assert status.complete and status.commit == CLIP.revision
    scorer = load_scorer("clip")  # offline, from the cache, the same twin weights as served
    assert isinstance(scorer, ClipScorer) and scorer.commit == CLIP.revision
    frames = np.zeros((5, 32, 32, 3), dtype=np.uint8)
    assert scorer.cosine(frames, "a boat") == pytest.approx(load_scorer("clip-tiny").cosine(frames, "a boat"))
    assert len(hub.requests) == before  # nothing after the prefetch touched the network
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert prefetch("clip", progress=lambda _: None).downloaded == 0  # complete: nothing fetched again


def test_prefetch_all_includes_clip() -> None:
    """`vgkit prefetch --check --all` (offline) lists the prompt-match checkpoint with the models."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "vgkit", "prefetch", "--check", "--all"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    names = [line.split()[0] for line in done.stdout.splitlines()[1:]]
    assert "clip" in names and "clip-tiny" in names and "wan22" in names
