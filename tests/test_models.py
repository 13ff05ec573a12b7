"""Model registry, model choice, the tiny Wan checkpoint and kwargs filtering (no mocks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from vgkit.errors import ModelUnavailableError, SpecError
from vgkit.hub.cache import snapshot_dir
from vgkit.hub.checkpoints import locate_checkpoint, tiny_commit, write_snapshot
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
    assert index["_class_name"] == "WanPipeline"  # as the real repo: text-only class, I2V components
    assert "image_encoder" not in index and index["transformer_2"] == [None, None]
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


def test_every_model_has_a_locked_baseline_file_in_the_package_that_fits_its_rules() -> None:
    import vgkit
    from vgkit.models import model_names
    from vgkit.models.baselines import baseline_path

    package = Path(vgkit.__file__).resolve().parent
    for name in model_names():
        model = adapter(name)
        assert baseline_path(name) == package / "models" / "baselines" / f"{name}.yaml"
        assert baseline_path(name).is_file(), name
        model.check_size(model.baseline.width, model.baseline.height, field_name=f"baselines/{name}.yaml")
        assert model.baseline.steps >= 1 and model.baseline.fps > 0


def test_baseline_files_are_package_data() -> None:
    """pyproject's package-data ships every baseline file (a non-editable install reads them)."""
    import fnmatch
    import tomllib

    from vgkit.models.baselines import BASELINES_DIR

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    files = sorted(BASELINES_DIR.glob("*.yaml"))
    assert len(files) >= 6
    for path in files:
        assert any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns["vgkit.models.baselines"]), path


def test_malformed_baseline_file_is_one_clear_line(tmp_path: Path) -> None:
    from vgkit.models.baselines import read_baseline

    path = tmp_path / "x.yaml"
    path.write_text("fps: '24'\nwidth: 64\nheight: 64\nsteps: 2\n")
    with pytest.raises(SpecError, match=r"missing fields \['guidance_scale', 'max_sequence_length'\]"):
        read_baseline(path)
    path.write_text("fps: '24'\nwidth: 64\nheight: 64\nsteps: 2\nguidance_scale: 5.0\nmax_sequence_length: 8\n")
    with pytest.raises(SpecError, match="fps = '24' has the wrong type; fix: write a int"):
        read_baseline(path)
    with pytest.raises(ModelUnavailableError, match=r"y\.yaml is missing; fix: reinstall vgkit"):
        read_baseline(tmp_path / "y.yaml")


def _wan_snapshot_copy(tmp_path: Path, *, weights: bool, **index_changes: object) -> Path:
    """A copy of the tiny Wan twin (weights optional) with model_index.json entries changed."""
    import shutil

    snap = tmp_path / "snap"
    shutil.copytree(locate_checkpoint(adapter("wan22-tiny")), snap)
    if not weights:
        for path in snap.rglob("*.safetensors"):
            path.unlink()
    index = json.loads((snap / "model_index.json").read_text())
    index.update(index_changes)
    for key in [k for k, v in index_changes.items() if v is None]:
        del index[key]
    (snap / "model_index.json").unlink()  # a symlink into the cache's blobs: replace, do not write through
    (snap / "model_index.json").write_text(json.dumps(index))
    return snap


def test_wan_twin_naming_wan_pipeline_loads_and_runs_image_to_video() -> None:
    """The real repo's index names the text-only WanPipeline (diffusers #13258): the twin does too,
    and vgkit builds WanImageToVideoPipeline from it; the image really conditions the clip."""
    from dataclasses import replace

    import numpy as np

    from tests.tiny_models import clip_request, tiny_generator

    gen = tiny_generator("wan22-tiny")
    assert json.loads((gen.snapshot / "model_index.json").read_text())["_class_name"] == "WanPipeline"
    assert type(gen.pipe).__name__ == "WanImageToVideoPipeline"
    request = clip_request("wan22-tiny", 9)
    frames = gen.generate(request).frames_fhwc
    assert frames.shape == (9, 64, 64, 3)
    other_image = np.full_like(request.image_hwc, 200)
    other = gen.generate(replace(request, image_hwc=other_image))
    assert not np.array_equal(other.frames_fhwc, frames)


def test_a_snapshot_saved_by_the_image_to_video_class_loads_too(tmp_path: Path) -> None:
    snap = _wan_snapshot_copy(tmp_path, weights=True, _class_name="WanImageToVideoPipeline", image_encoder=[None, None])
    assert type(adapter("wan22").load(snap, device="cpu")).__name__ == "WanImageToVideoPipeline"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"_class_name": "CogVideoXPipeline"},
            "names 'CogVideoXPipeline', not 'WanPipeline' (layout mismatch): this is a CogVideoXPipeline "
            "checkpoint, not a Wan 2.2 TI2V-5B one; fix: point vgkit at a Wan-AI/Wan2.2-TI2V-5B-Diffusers snapshot",
        ),
        (
            {"transformer_2": ["diffusers", "WanTransformer3DModel"]},
            "has a `transformer_2` component (WanTransformer3DModel) that the Wan 2.2 TI2V-5B repo has not "
            "(layout mismatch): this is another model's checkpoint; fix: point vgkit at a",
        ),
        (
            {"transformer": ["diffusers", "WanVACETransformer3DModel"]},
            "names transformer class 'WanVACETransformer3DModel', not 'WanTransformer3DModel' (layout mismatch): "
            "this is not a Wan 2.2 TI2V-5B checkpoint; fix: point vgkit at a",
        ),
        ({"vae": None}, "has no `vae` component (incomplete download); fix: re-download with `vgkit prefetch"),
        (
            {"scheduler": ["diffusers", "NoSuchScheduler"]},
            "names scheduler class 'NoSuchScheduler', which diffusers",
        ),
    ],
)
def test_layout_mismatches_say_what_is_wrong_before_any_weights_load(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    """Checked for the real adapter on a copy of the twin without weights: the index check runs
    first, and only an incomplete download is told to re-download."""
    snap = _wan_snapshot_copy(tmp_path, weights=False, **changes)
    with pytest.raises(ModelUnavailableError) as raised:
        adapter("wan22").load(snap, device="cpu")
    assert message in str(raised.value)
    assert ("re-download" in str(raised.value)) == ("vae" in changes)


# ---- choose_model asks torch too, not only nvidia-smi (tests.fake_gpu: stand-in nvidia-smi on PATH;
# torch's view is this machine's real CPU wheel unless a stand-in probe is named) ----


@pytest.fixture
def gpu_torch_cannot_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from tests.fake_gpu import nvidia_smi_script
    from tests.stand_ins import stand_in_gpu

    monkeypatch.setenv("PATH", f"{stand_in_gpu(tmp_path, nvidia_smi_script('550.54.15'))}:{os.environ['PATH']}")
    monkeypatch.delenv("VGKIT_FORCE_CPU")


@pytest.mark.usefixtures("gpu_torch_cannot_use")
def test_auto_falls_back_to_the_tiny_model_and_says_torch_cannot_use_the_gpu() -> None:
    choice = choose_model("auto")
    assert (choice.model.name, choice.device) == ("wan22-tiny", "cpu")
    assert choice.reason.startswith("auto: nvidia-smi shows NVIDIA GeForce RTX 4090, but torch ")
    assert "is a CPU-only build; fix: bash setup.sh" in choice.reason
    tiny = choose_model("wan22-tiny")
    assert tiny.device == "cpu" and "CPU-only build" in tiny.reason


@pytest.mark.usefixtures("gpu_torch_cannot_use")
def test_an_explicit_real_model_is_refused_when_torch_cannot_use_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelUnavailableError, match=r"^model 'wan22' needs a CUDA GPU torch can use: nvidia-smi"):
        choose_model("wan22")
    monkeypatch.setenv("VGKIT_TORCH_PROBE", "tests.fake_gpu:torch_built_for_a_newer_cuda")  # PyPI's cu130 wheel
    with pytest.raises(ModelUnavailableError) as refused:
        choose_model("cogvideox15")
    assert "torch 2.13.0 is built for CUDA 13.0, which needs an NVIDIA driver >= 580.65.06; " in str(refused.value)
    assert "this host's 550.54.15 supports CUDA 12.4" in str(refused.value)
    assert choose_model("cogvideox15", planning_only=True).model.name == "cogvideox15"  # planning loads nothing


@pytest.mark.usefixtures("gpu_torch_cannot_use")
def test_a_gpu_torch_can_use_keeps_the_gpu_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VGKIT_TORCH_PROBE", "tests.fake_gpu:torch_sees_the_gpu")
    choice = choose_model("auto")
    assert choice.reason.startswith("auto: GPU NVIDIA GeForce RTX 4090 but no downloaded weights")
    assert choose_model("wan22-tiny").device == "cuda"


def test_the_generic_stages_name_no_model_family() -> None:
    """What differs per family lives in its module behind the adapter's hooks: the generator and the
    speed features name none of the families' pipeline, transformer or VAE classes."""
    from vgkit.models import model_names

    classes: set[str] = set()
    for name in model_names():
        model = adapter(name)
        components = model.expected_components()
        classes |= {model.pipeline_class, model.repo_pipeline_class}
        classes |= {cls for part, (_, cls) in components.items() if part.startswith(("transformer", "vae"))}
    assert "HunyuanVideoTransformer3DModel" in classes
    for module in ("vgkit/generate/generator.py", "vgkit/models/speed.py"):
        source = (REPO / module).read_text()
        assert not [cls for cls in classes if cls in source], module
