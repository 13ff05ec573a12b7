"""Speed features on the three tiny twins: what runs, what changes the output, what is refused."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from tests.conftest import REPO
from tests.tiny_models import clip_request, tiny_generator
from vgkit.errors import GenerationError, SpecError
from vgkit.generate.generator import ClipRequest, InProcessGenerator
from vgkit.hub.checkpoints import locate_checkpoint
from vgkit.models import adapter
from vgkit.models.speed import (
    ATTENTION_BACKENDS,
    CPU_ATTENTION_BACKENDS,
    DEFAULT_THRESHOLDS,
    QUALITY_COST,
    SpeedOptions,
    apply_speed,
    denoise_context,
    transformer_blocks,
)

MODELS = ("wan22-tiny", "cogvideox15-tiny", "hunyuan-i2v-tiny")
STEPS = 3
# The smallest clip each frame rule allows (Wan and Hunyuan 4k+1, CogVideoX 8k+1) and a short T5 prompt
# budget (the tiny text encoder dominates a call at 512 tokens): keeps each call around a second.
FRAMES = {"wan22-tiny": 5, "cogvideox15-tiny": 9, "hunyuan-i2v-tiny": 5}
TOKENS = {"wan22-tiny": 32, "cogvideox15-tiny": 32}


@pytest.fixture(scope="module")
def generators() -> dict[str, InProcessGenerator]:
    """Each tiny pipeline loaded once for the module (lazily); tests undo what they apply."""
    return {}


@pytest.fixture
def gen(generators: dict[str, InProcessGenerator]) -> Iterator[Callable[[str], InProcessGenerator]]:
    def get(name: str) -> InProcessGenerator:
        if name not in generators:
            generators[name] = tiny_generator(name)
        return generators[name]

    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    active = _AttentionBackendRegistry._active_backend
    yield get
    # set_attention_backend also changes diffusers' process-wide backend: restore it for later tests.
    _AttentionBackendRegistry.set_active_backend(active)
    for g in generators.values():
        if g.pipe.transformer.is_cache_enabled:
            g.pipe.transformer.disable_cache()
        g.pipe.transformer.reset_attention_backend()


def _request(name: str, **changes: Any) -> ClipRequest:
    request = clip_request(name, FRAMES[name])
    tokens = TOKENS.get(name, request.max_sequence_length)
    return dataclasses.replace(request, steps=STEPS, max_sequence_length=tokens, **changes)


def _denoise(g: InProcessGenerator, options: SpeedOptions, request: ClipRequest) -> tuple[torch.Tensor, dict[str, Any]]:
    with denoise_context(g.pipe, options) as found:
        latents = g.denoise(request).latents
    return latents, found


class _TailWork:
    """Counts the calls made inside the last transformer block: zero when a cache skips it."""

    def __init__(self, transformer: Any) -> None:
        tail = transformer_blocks(transformer)[-1]
        self.calls = 0
        self.handles = [m.register_forward_pre_hook(self._hit) for m in tail.modules() if m is not tail]

    def _hit(self, module: Any, args: Any) -> None:
        self.calls += 1

    def take(self) -> int:
        calls, self.calls = self.calls, 0
        return calls

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


# -- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cache": "teacache"}, "speed.cache = 'teacache'"),
        ({"cache_threshold": 0.1}, "speed.cache_threshold = 0.1"),
        ({"cache": "first-block", "cache_threshold": -0.1}, "speed.cache_threshold = -0.1"),
        ({"cache": "first-block", "cache_threshold": float("nan")}, "speed.cache_threshold = nan"),
        ({"cache": "magcache"}, "speed.mag_ratios = None"),
        ({"cache": "first-block", "mag_ratios": (1.0, 0.9)}, "speed.mag_ratios"),
        ({"cache": "magcache", "mag_ratios": (1.0, -0.9)}, "speed.mag_ratios = [1.0, -0.9]"),
        ({"attention_backend": "flash2"}, "speed.attention_backend = 'flash2'"),
        ({"compile": "full"}, "speed.compile = 'full'"),
    ],
)
def test_bad_options_are_one_line_errors_naming_field_value_and_fix(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        SpeedOptions(**changes).check()
    message = str(caught.value)
    assert message.startswith(field) and "fix:" in message and "\n" not in message


def test_names_and_defaults_match_the_installed_diffusers() -> None:
    from diffusers import FirstBlockCacheConfig, MagCacheConfig
    from diffusers.models.attention_dispatch import AttentionBackendName

    assert tuple(b.value for b in AttentionBackendName) == ATTENTION_BACKENDS
    assert {
        "first-block": FirstBlockCacheConfig().threshold,
        "magcache": MagCacheConfig(calibrate=True).threshold,
    } == DEFAULT_THRESHOLDS
    assert SpeedOptions(cache="first-block").to_record()["threshold_in_effect"] == 0.05


def test_defaults_change_nothing(gen: Callable[[str], InProcessGenerator]) -> None:
    g = gen("wan22-tiny")
    record = apply_speed(g.pipe, SpeedOptions(), device="cpu")
    assert record["applied"] == [] and record["quality_cost"] == {}
    assert record["active_attention_backend"] == "native"
    assert not g.pipe.transformer.is_cache_enabled
    with denoise_context(g.pipe, SpeedOptions()) as found:
        assert found == {}


def test_importing_speed_does_not_import_torch() -> None:
    code = "import sys, vgkit.models.speed; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# -- caches -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_first_block_cache_skips_blocks_and_threshold_zero_is_exact(
    name: str, gen: Callable[[str], InProcessGenerator]
) -> None:
    g = gen(name)
    work = _TailWork(g.pipe.transformer)
    try:
        plain = g.denoise(_request(name)).latents
        uncached_work = work.take()
        exact = SpeedOptions(cache="first-block", cache_threshold=0.0)
        record = apply_speed(g.pipe, exact, device="cpu")
        assert record["quality_cost"] == {"cache:first-block": QUALITY_COST["cache:first-block"]}
        assert torch.equal(_denoise(g, exact, _request(name))[0], plain)
        assert work.take() == uncached_work

        g.pipe.transformer.disable_cache()
        loose = SpeedOptions(cache="first-block", cache_threshold=10.0)
        apply_speed(g.pipe, loose, device="cpu")
        cached = _denoise(g, loose, _request(name))[0]
        assert 0 < work.take() < uncached_work  # the first step computes, later ones skip the tail
        assert not torch.allclose(cached, plain, atol=1e-3)
        if name != "hunyuan-i2v-tiny":
            # Wan and CogVideoX set their own cache contexts: the outer default one changes nothing.
            assert torch.equal(g.denoise(_request(name)).latents, cached)
    finally:
        work.close()


def test_hunyuan_first_block_cache_needs_the_context(gen: Callable[[str], InProcessGenerator]) -> None:
    g = gen("hunyuan-i2v-tiny")
    options = SpeedOptions(cache="first-block")
    apply_speed(g.pipe, options, device="cpu")
    with pytest.raises(GenerationError, match="No cache context is set"):
        g.denoise(_request("hunyuan-i2v-tiny"))
    _denoise(g, options, _request("hunyuan-i2v-tiny"))


def test_context_clears_hook_state_left_by_a_call_that_raised(gen: Callable[[str], InProcessGenerator]) -> None:
    g = gen("wan22-tiny")
    options = SpeedOptions(cache="first-block", cache_threshold=10.0)
    apply_speed(g.pipe, options, device="cpu")
    other = _request("wan22-tiny", seed=11, prompt="a red kite over a field")
    clean = _denoise(g, options, other)[0]

    def crash(step: int, total: int) -> bool:
        raise RuntimeError("killed mid-loop")

    def crash_then(run: Callable[[], torch.Tensor]) -> torch.Tensor:
        with pytest.raises(GenerationError, match="killed mid-loop"), denoise_context(g.pipe, options):
            g.denoise(_request("wan22-tiny"), on_step=crash)
        return run()

    # Without the reset the next clip starts from the dead call's residuals (the hazard is real) ...
    assert not torch.equal(crash_then(lambda: g.denoise(other).latents), clean)
    # ... and denoise_context starts each call clean.
    assert torch.equal(crash_then(lambda: _denoise(g, options, other)[0]), clean)


def test_first_block_cache_composes_with_group_offload() -> None:
    """HunyuanVideo's 4090 preset offloads by group (leaf level): the cache hooks sit on the same blocks."""
    from vgkit.models.base import Preset, apply_preset

    g = tiny_generator("hunyuan-i2v-tiny")  # its own pipeline: group offload cannot be undone
    plain = g.denoise(_request("hunyuan-i2v-tiny")).latents
    apply_preset(g.pipe, Preset(name="group", device="cpu", offload="group", transformer_dtype="float32"), device="cpu")
    exact = SpeedOptions(cache="first-block", cache_threshold=0.0)
    apply_speed(g.pipe, exact, device="cpu")
    assert torch.equal(_denoise(g, exact, _request("hunyuan-i2v-tiny"))[0], plain)


@pytest.mark.parametrize("name", MODELS)
def test_magcache_calibrates_then_skips_with_the_recorded_ratios(
    name: str, gen: Callable[[str], InProcessGenerator]
) -> None:
    g = gen(name)
    plain = g.denoise(_request(name)).latents
    calibrate = SpeedOptions(cache="magcache-calibrate")
    with pytest.raises(SpecError, match="needs the run's step count"):
        apply_speed(g.pipe, calibrate, device="cpu")
    apply_speed(g.pipe, calibrate, device="cpu", steps=STEPS)
    work = _TailWork(g.pipe.transformer)
    try:
        calibrated, found = _denoise(g, calibrate, _request(name))
        uncached_work = work.take()
        assert torch.equal(calibrated, plain)  # calibration never skips
        passes = 2 if name == "wan22-tiny" else 1  # Wan: cond and uncond contexts
        assert len(found["mag_ratios"]) == passes
        assert all(len(r) == STEPS and r[0] == 1.0 for r in found["mag_ratios"])

        g.pipe.transformer.disable_cache()
        magcache = SpeedOptions(cache="magcache", mag_ratios=tuple(found["mag_ratios"][0]), cache_threshold=0.5)
        record = apply_speed(g.pipe, magcache, device="cpu", steps=STEPS)
        assert record["applied"] == ["cache:magcache(threshold=0.5)"]
        cached = _denoise(g, magcache, _request(name))[0]
        assert work.take() < uncached_work
        assert not torch.equal(cached, plain)
    finally:
        work.close()


# -- attention backends -------------------------------------------------------------------------


@pytest.mark.parametrize("backend", CPU_ATTENTION_BACKENDS)
def test_cpu_attention_backends_run_and_match_sdpa(backend: str, gen: Callable[[str], InProcessGenerator]) -> None:
    g = gen("wan22-tiny")
    plain = g.denoise(_request("wan22-tiny")).latents
    record = apply_speed(g.pipe, SpeedOptions(attention_backend=backend), device="cpu")
    assert record["active_attention_backend"] == backend
    assert record["quality_cost"] == {"attention:exact": QUALITY_COST["attention:exact"]}
    assert torch.allclose(g.denoise(_request("wan22-tiny")).latents, plain, atol=1e-4)


@pytest.mark.parametrize("backend", ["flash", "flash_varlen", "sage", "xformers", "_native_cudnn", "_native_efficient"])
def test_cuda_only_backends_are_refused_on_cpu_before_anything_changes(
    backend: str, gen: Callable[[str], InProcessGenerator]
) -> None:
    g = gen("wan22-tiny")
    with pytest.raises(SpecError) as caught:
        apply_speed(g.pipe, SpeedOptions(cache="first-block", attention_backend=backend), device="cpu")
    message = str(caught.value)
    assert message.startswith(f"speed.attention_backend = {backend!r}") and "CUDA" in message and "fix:" in message
    assert not g.pipe.transformer.is_cache_enabled


def test_native_cudnn_on_cpu_would_fail_only_mid_run(gen: Callable[[str], InProcessGenerator]) -> None:
    """Why the CPU check exists: diffusers accepts the name and the first attention call fails."""
    g = gen("wan22-tiny")
    g.pipe.transformer.set_attention_backend("_native_cudnn")
    with pytest.raises(GenerationError, match="No viable backend"):
        g.denoise(_request("wan22-tiny"))


def test_a_missing_backend_package_is_a_spec_error_with_the_install_fix(
    gen: Callable[[str], InProcessGenerator],
) -> None:
    if _installed("flash_attn"):
        pytest.skip("flash-attn is installed here, so diffusers' requirement check passes")
    g = gen("wan22-tiny")
    with pytest.raises(SpecError, match=r"^speed.attention_backend = 'flash': .*flash-attn>="):
        apply_speed(g.pipe, SpeedOptions(attention_backend="flash"), device="cuda")


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_cogvideox_attention_takes_no_backend(gen: Callable[[str], InProcessGenerator]) -> None:
    g = gen("cogvideox15-tiny")
    plain = g.denoise(_request("cogvideox15-tiny")).latents
    g.pipe.transformer.set_attention_backend("flex")  # diffusers accepts it and nothing changes
    assert torch.equal(g.denoise(_request("cogvideox15-tiny")).latents, plain)
    with pytest.raises(
        SpecError,
        match="call torch SDPA directly, so no diffusers backend reaches them; fix: use attention_backend: default",
    ):
        apply_speed(g.pipe, SpeedOptions(attention_backend="flex"), device="cpu")


def test_hunyuan_refuses_backends_that_cannot_take_its_mask(gen: Callable[[str], InProcessGenerator]) -> None:
    g = gen("hunyuan-i2v-tiny")
    g.pipe.transformer.set_attention_backend("_native_flash")
    with pytest.raises(GenerationError, match="attn_mask"):
        g.denoise(_request("hunyuan-i2v-tiny"))
    g.pipe.transformer.reset_attention_backend()
    assert g.model.masked_attention  # the quirk is data of the family (vgkit/models/hunyuan.py)
    for backend, device in (("_native_flash", "cpu"), ("sage", "cuda"), ("flash", "cuda")):
        with pytest.raises(SpecError, match=r"passes an attention mask.*fix: use native, flash_varlen or sage_varlen"):
            apply_speed(g.pipe, SpeedOptions(attention_backend=backend), device=device, model=g.model)
    with pytest.raises(SpecError, match="passes an attention mask"):  # the generator checks it at load
        InProcessGenerator(g.model, g.snapshot, device="cpu", speed=SpeedOptions(attention_backend="_native_flash"))
    apply_speed(g.pipe, SpeedOptions(attention_backend="_native_math"), device="cpu", model=g.model)
    g.denoise(_request("hunyuan-i2v-tiny"))


# -- regional compile ---------------------------------------------------------------------------


def _fresh_transformer(name: str) -> Any:
    """The tiny checkpoint's transformer alone, loaded anew (compiling changes modules for good)."""
    import diffusers

    snapshot = locate_checkpoint(adapter(name))
    cls_name = json.loads((snapshot / "model_index.json").read_text())["transformer"][1]
    return getattr(diffusers, cls_name).from_pretrained(str(snapshot), subfolder="transformer").eval()


@pytest.mark.parametrize("name", MODELS)
def test_regional_compile_covers_every_block_where_diffusers_list_does_not(name: str) -> None:
    """compile_repeated_blocks misses CogVideoX (no list) and HunyuanVideo-I2V's token-replace blocks."""
    ours, theirs = _fresh_transformer(name), _fresh_transformer(name)
    record = apply_speed(SimpleNamespace(transformer=ours), SpeedOptions(compile="regional"), device="cpu")
    blocks = transformer_blocks(ours)
    assert len(blocks) >= 2 and all(b._compiled_call_impl is not None for b in blocks)  # compile is lazy: cheap
    assert record["quality_cost"] == {"compile:regional": QUALITY_COST["compile:regional"]}
    if name == "cogvideox15-tiny":
        with pytest.raises(ValueError, match="_repeated_blocks"):
            theirs.compile_repeated_blocks()
        return
    theirs.compile_repeated_blocks()
    covered = [b._compiled_call_impl is not None for b in transformer_blocks(theirs)]
    assert all(covered) if name == "wan22-tiny" else not any(covered)


def test_regional_compile_without_a_compiler_is_refused_up_front(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    transformer = SimpleNamespace(
        named_children=lambda: iter([("blocks", torch.nn.ModuleList([torch.nn.Linear(2, 2)]))])
    )
    with pytest.raises(SpecError, match=r"^speed.compile = 'regional': torch.compile on cpu needs a C\+\+ compiler"):
        apply_speed(SimpleNamespace(transformer=transformer), SpeedOptions(compile="regional"), device="cpu")


@pytest.mark.slow
def test_regional_compile_runs_on_cpu_and_matches_eager() -> None:
    """Two tiny Wan blocks through Inductor's C++ backend, with a cold cache. Inductor's vectorized
    kernels are off here: they compile each kernel twice over (14 C++ builds instead of 8; 17.8 s
    against 12.9 s of compile and run alone on 2 cores), and which blocks vgkit compiles and that
    they match eager does not depend on them."""
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("torch.compile on CPU needs a C++ compiler ($CXX or g++) on PATH; none found")
    import torch._inductor.config  # 2.4 s to import: here, not when every worker collects this module

    transformer = _fresh_transformer("wan22-tiny")
    config = transformer.config
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "hidden_states": torch.randn(1, config.in_channels, 3, 8, 8, generator=generator),
        "encoder_hidden_states": torch.randn(1, 8, config.text_dim, generator=generator),
        "timestep": torch.tensor([500.0]),
        "return_dict": False,
    }
    with torch.no_grad(), torch._inductor.config.patch({"cpp.vec_isa_ok": False}):
        eager = transformer(**inputs)[0]
        record = apply_speed(SimpleNamespace(transformer=transformer), SpeedOptions(compile="regional"), device="cpu")
        compiled = transformer(**inputs)[0]
    assert record["applied"] == ["compile:regional(2 blocks: WanTransformerBlock)"]
    assert torch.allclose(compiled, eager, rtol=1e-4, atol=1e-5)


def test_a_spec_speed_section_reaches_the_plan_the_pipeline_and_every_clip_log(tmp_path: Path) -> None:
    from tests.conftest import spec_dict, write_spec
    from vgkit.generate.runner import run_job

    data = spec_dict(speed={"cache": "magcache-calibrate"}, shots=spec_dict()["shots"][:2])
    result = run_job(write_spec(tmp_path / "spec.yaml", data), out=tmp_path / "run", progress=lambda _: None)
    plan = json.loads((result.run_dir / "plan.json").read_text())
    assert plan["differs_from_baseline"]["speed"] == {"cache": "magcache-calibrate"}
    for path in sorted((result.run_dir / "logs").glob("log_*.json")):
        log = json.loads(path.read_text())
        assert log["speed"]["cache"] == "magcache-calibrate"
        assert log["model"]["speed_applied"]["applied"] == ["cache:magcache-calibrate(threshold=None)"]
        ratios = log["speed_notes"]["mag_ratios"]  # Wan: the cond pass, then the uncond pass
        assert len(ratios) == 2 and all(len(r) == log["effective"]["steps"] for r in ratios)


@pytest.mark.parametrize(
    ("speed", "match"),
    [
        ({"cache": "teacache"}, r"speed\.cache = 'teacache': unknown cache; fix: use one of off, first-block"),
        ({"cache": "magcache"}, r"speed\.mag_ratios = None: magcache needs magnitude ratios"),
        ({"attention_backend": "flashy"}, r"speed\.attention_backend = 'flashy': not a diffusers attention backend"),
        ({"compile": "max"}, r"speed\.compile = 'max': unknown mode; fix: use one of off, regional"),
    ],
)
def test_bad_speed_sections_are_one_line_spec_errors_before_any_load(
    speed: dict[str, Any], match: str, tmp_path: Path
) -> None:
    from tests.conftest import spec_dict, write_spec
    from vgkit.generate.runner import plan_job

    with pytest.raises(SpecError, match=match):
        plan_job(write_spec(tmp_path / "spec.yaml", spec_dict(speed=speed)))


@pytest.mark.parametrize(("threshold", "effective"), [(None, 0.05), (0.05, 0.05), (0.2, 0.2)])
def test_the_plan_lists_speed_changes_by_their_effective_values(
    threshold: float | None, effective: float, tmp_path: Path
) -> None:
    from tests.conftest import spec_dict, write_spec
    from vgkit.generate.runner import plan_job

    speed = {"cache": "first-block", **({"cache_threshold": threshold} if threshold is not None else {})}
    plan = plan_job(write_spec(tmp_path / "spec.yaml", spec_dict(speed=speed)))[2]
    assert plan.differs_from_baseline["speed"] == {"cache": "first-block", "threshold_in_effect": effective}
    assert "speed" not in plan_job(write_spec(tmp_path / "off.yaml", spec_dict()))[2].differs_from_baseline
