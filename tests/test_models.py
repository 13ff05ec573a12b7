"""Model registry, model choice, the tiny Wan checkpoint and kwargs filtering (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vgkit.cache import snapshot_dir, write_snapshot
from vgkit.checkpoints import locate_checkpoint, tiny_commit
from vgkit.errors import ModelUnavailableError, SpecError
from vgkit.models import adapter, choose_model
from vgkit.models.base import filter_call_kwargs


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(
        SpecError,
        match="unknown model; fix: use one of wan22, wan22-tiny, cogvideox15, cogvideox15-tiny, "
        "hunyuan-i2v, hunyuan-i2v-tiny, auto",
    ):
        adapter("wan3")


def test_auto_without_gpu_is_tiny_on_cpu() -> None:
    choice = choose_model("auto")
    assert (choice.model.name, choice.device) == ("wan22-tiny", "cpu")
    assert choice.announce().startswith("vgkit: model wan22-tiny on cpu (auto: no CUDA GPU found")


def test_explicit_real_model_without_weights_names_prefetch(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"fix: run `vgkit prefetch --model wan22`"):
        choose_model("wan22", cache_dir=tmp_path)


def test_explicit_real_model_with_weights_but_no_gpu_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model_index.json").write_text("{}")
    write_snapshot("Wan-AI/Wan2.2-TI2V-5B-Diffusers", "a" * 40, src, cache_dir=tmp_path / "hub")
    with pytest.raises(ModelUnavailableError, match="needs a CUDA GPU"):
        choose_model("wan22", cache_dir=tmp_path / "hub")


def test_write_snapshot_uses_hub_layout(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "vae").mkdir(parents=True)
    (src / "model_index.json").write_text('{"a": 1}')
    (src / "vae" / "config.json").write_text('{"b": 2}')
    snap = write_snapshot("org/name", "b" * 40, src, cache_dir=tmp_path / "hub")
    repo = tmp_path / "hub" / "models--org--name"
    assert snap == repo / "snapshots" / ("b" * 40)
    assert (repo / "refs" / "main").read_text() == "b" * 40
    assert (snap / "vae" / "config.json").is_symlink()
    assert json.loads((snap / "vae" / "config.json").read_text()) == {"b": 2}
    assert snapshot_dir("org/name", "main", cache_dir=tmp_path / "hub") == snap
    assert snapshot_dir("org/name", "c" * 40, cache_dir=tmp_path / "hub") is None


def test_tiny_wan_checkpoint_is_the_real_architecture_in_hub_layout(hub_cache: Path) -> None:
    model = adapter("wan22-tiny")
    snap = locate_checkpoint(model)
    assert snap == hub_cache / "models--vgkit-tiny--Wan2.2-TI2V-5B-Diffusers-tiny" / "snapshots" / tiny_commit(model)
    index = json.loads((snap / "model_index.json").read_text())
    assert index["_class_name"] == "WanImageToVideoPipeline"
    assert index["expand_timesteps"] is True
    assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]
    vae = json.loads((snap / "vae" / "config.json").read_text())
    assert (vae["z_dim"], vae["scale_factor_spatial"], vae["is_residual"]) == (48, 16, True)
    assert not list(snap.rglob("*.bin")), "weights must be safetensors only"
    assert locate_checkpoint(model) == snap  # second call reuses the cached build


def test_tiny_pipeline_loads_and_kwargs_are_filtered_by_signature() -> None:
    model = adapter("wan22-tiny")
    pipe = model.load(locate_checkpoint(model), device="cpu")
    assert type(pipe).__name__ == "WanImageToVideoPipeline"
    kept, dropped = filter_call_kwargs(pipe, {"prompt": "x", "num_frames": 5, "fps": 24, "use_dynamic_cfg": True})
    assert kept == {"prompt": "x", "num_frames": 5}
    assert dropped == ["fps", "use_dynamic_cfg"]


def test_layout_without_model_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match=r"no model_index\.json"):
        adapter("wan22-tiny").load(tmp_path, device="cpu")


def test_every_model_has_a_locked_baseline_file_that_fits_its_rules() -> None:
    from vgkit.models import model_names
    from vgkit.models.baselines import baseline_path

    for name in model_names():
        model = adapter(name)
        assert baseline_path(name).is_file(), name
        model.check_size(model.baseline.width, model.baseline.height, field_name=f"params/models/{name}.yaml")
        assert model.baseline.steps >= 1 and model.baseline.fps > 0


def test_malformed_baseline_file_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vgkit.models import baselines

    (tmp_path / "params" / "models").mkdir(parents=True)
    (tmp_path / "params" / "models" / "x.yaml").write_text("fps: '24'\nwidth: 64\nheight: 64\nsteps: 2\n")
    monkeypatch.setattr(baselines, "repo_root", lambda: tmp_path)
    with pytest.raises(SpecError, match=r"missing fields \['guidance_scale', 'max_sequence_length'\]"):
        baselines.load_baseline("x")
    (tmp_path / "params" / "models" / "x.yaml").write_text(
        "fps: '24'\nwidth: 64\nheight: 64\nsteps: 2\nguidance_scale: 5.0\nmax_sequence_length: 8\n"
    )
    with pytest.raises(SpecError, match="fps = '24' has the wrong type; fix: write a int"):
        baselines.load_baseline("x")
