"""The cost planner: counts from the real classes match hand formulas, the fit holds the published
figures, and the tracker measures activations as a fused-attention GPU would hold them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vgkit.cost.architectures import ARCHITECTURES, latent_grid
from vgkit.cost.gpus import CARDS, card
from vgkit.errors import SpecError


@pytest.fixture(scope="module", autouse=True)
def _cost_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Counts of this module are made here (never read from the user's cache)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cost-cache")
        mp.setenv("VGKIT_COST_CACHE", str(path))
        from vgkit.cost import count

        count._MEMO.clear()
        yield path
        count._MEMO.clear()


@pytest.fixture
def fresh_counts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Counting from the classes themselves: no packaged counts, no cache. Yields the packaged ones."""
    from vgkit.cost import count

    packaged = dict(count._packaged())
    monkeypatch.setattr(count, "PACKAGED", tmp_path / "none.json")
    monkeypatch.setenv("VGKIT_COST_CACHE", str(tmp_path / "cache"))
    count._packaged.cache_clear()
    saved = dict(count._MEMO)
    count._MEMO.clear()
    yield packaged
    count._MEMO.clear()
    count._MEMO.update(saved)
    count._packaged.cache_clear()


NATIVE = {"wan22": (1280, 704), "cogvideox15": (1360, 768), "hunyuan-i2v": (1280, 720)}


def _hand(name: str) -> tuple[float, float]:
    """(linear FLOPs, attention FLOPs) of one transformer call at the native grid, by hand.

    Linear: 2 x (per-token weights) x tokens. Attention: 4 x L^2 x d per layer and batch row
    (QK^T and PV), over the video tokens (Wan, with cross-attention to the text as 4 x L x T x d)
    or video + text tokens (CogVideoX, HunyuanVideo: joint attention).
    """
    arch = ARCHITECTURES[name]
    cfg = arch.transformer_config
    width, height = NATIVE[name]
    frames, lh, lw = latent_grid(arch, width=width, height=height, num_frames=arch.native_frames)
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    text = arch.text_tokens
    batch = arch.batch_per_pass
    if name == "wan22":
        video = frames * (lh // 2) * (lw // 2)
        layers = cfg["num_layers"]
        per_token = layers * (6 * d * d + 2 * d * cfg["ffn_dim"])  # self QKVO + cross Q,O + FFN
        linear = 2 * per_token * video + 2 * layers * 2 * d * d * text  # + cross K,V over the text
        attention = 4 * layers * d * (video * video + video * text)
        return batch * linear, batch * attention
    if name == "cogvideox15":
        frames += frames % cfg["patch_size_t"]
        tokens = (frames // 2) * (lh // 2) * (lw // 2) + text
        layers = cfg["num_layers"]
    else:
        tokens = frames * (lh // 2) * (lw // 2) + text
        layers = cfg["num_layers"] + cfg["num_single_layers"]
    per_token = layers * 12 * d * d  # QKVO 4d^2 + a 4x MLP 8d^2 (single blocks: 7d^2 in, 5d^2 out)
    return batch * 2 * per_token * tokens, batch * 4 * layers * d * tokens * tokens


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_transformer_flops_at_the_native_grid_match_hand_formulas(name: str, fresh_counts: dict[str, Any]) -> None:
    from dataclasses import asdict

    from vgkit.cost import count
    from vgkit.cost.projection import transformer_count

    width, height = NATIVE[name]
    frames = ARCHITECTURES[name].native_frames
    transformer = transformer_count(name, width=width, height=height, num_frames=frames, dtype="bfloat16")
    linear, attention = _hand(name)
    # The shipped counts (what `vgkit models` and `vgkit check` read) are these fresh ones.
    (key,) = [k for k, v in count._MEMO.items() if v == asdict(transformer)]
    assert fresh_counts[key] == asdict(transformer)
    assert transformer.linear_flops == pytest.approx(linear, rel=0.05)
    assert transformer.attention_flops == pytest.approx(attention, rel=0.05)
    assert transformer.flops == pytest.approx(linear + attention, rel=0.05)


def test_a_cuda_build_of_torch_projects_from_the_counts_packaged_on_a_cpu_build_without_importing_it(
    tmp_path: Path,
) -> None:
    """On a GPU rental torch reports 2.13.0 or 2.13.0+cu128 where set-up here had 2.13.0+cpu; every GPU
    preset's native clip is still projected from counts.json: nothing counted, torch and diffusers
    not even imported (a refusal or `vgkit check` answers in well under a second)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    script = """
import importlib.metadata as metadata, sys
real = metadata.version
metadata.version = lambda name: real(name).split("+")[0] + "+cu128" if name == "torch" else real(name)
from vgkit.cost.gpus import card
from vgkit.cost.planner import project_native
from vgkit.models import adapter
for name in ("wan22", "cogvideox15", "hunyuan-i2v"):
    model = adapter(name)
    for preset in model.presets:
        if preset.device != "cpu":
            project_native(model, preset, gpu=card("4090" if preset.name == "4090" else "h100"))
print(sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules))
"""
    env = {**os.environ, "VGKIT_COST_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]"]
    assert not (tmp_path / "cache").exists()  # nothing counted afresh


def test_the_fitted_factors_hold_every_published_figure_within_35_percent() -> None:
    from vgkit.cost.fit import fit_efficiency
    from vgkit.cost.projection import EFFICIENCY

    factors, rows = fit_efficiency()
    assert factors == pytest.approx(EFFICIENCY, rel=0.01)  # the constants are what the fit gives
    assert {r.published.card for r in rows} >= {"4090", "h100"}
    for row in rows:
        assert abs(row.residual) <= 0.35, row
        if row.peak_residual is not None:
            assert abs(row.peak_residual) <= 0.35, row


def test_every_gpu_preset_projects_inside_the_clip_deadline_on_its_card() -> None:
    from vgkit.cost.planner import project_preset
    from vgkit.models import adapter

    for name in sorted(ARCHITECTURES):
        model = adapter(name)
        for preset in model.presets:
            if preset.device == "cpu":
                continue
            gpu = card("4090" if preset.name == "4090" else "h100")
            width, height = preset.generation_size(
                model.baseline.width, model.baseline.height, multiple=model.size_multiple
            )
            projected = project_preset(
                model,
                preset,
                gpu=gpu,
                width=width,
                height=height,
                num_frames=ARCHITECTURES[name].native_frames,
                steps=preset.scaled_steps(model.baseline.steps),
            )
            assert projected.seconds_per_clip <= 600, (name, preset.name, projected.describe())
            assert projected.fits_memory, (name, preset.name, projected.describe())
            assert min(model.baseline.width, model.baseline.height) >= 704  # upscaled back to 720p-class


def test_an_infeasible_plan_is_refused_with_its_figures_and_fixes(tmp_path: Path) -> None:
    from dataclasses import replace

    from tests.conftest import spec_dict, write_spec
    from vgkit.cost.planner import plan_cost, refuse_infeasible
    from vgkit.errors import InfeasiblePlanError
    from vgkit.models import adapter
    from vgkit.spec.plan import make_plan
    from vgkit.spec.schema import load_spec

    model = adapter("hunyuan-i2v")
    native = replace(model.preset("80gb"), size_scale=1.0)  # 1280x720 at the preset's 30 steps
    native_clip = [{**shot, "duration_s": 128 / 24} for shot in spec_dict()["shots"]]  # 129 frames
    spec_path = write_spec(tmp_path / "s.yaml", spec_dict(model="hunyuan-i2v", overrides={}, shots=native_clip))
    plan = make_plan(load_spec(spec_path), model, preset=native)
    cost = plan_cost(plan, model, native, gpu="h100", clip_timeout_s=600, run_timeout_s=1800)
    assert cost is not None and cost.worst_clip_s > 600
    with pytest.raises(InfeasiblePlanError) as raised:
        refuse_infeasible(cost, model, native)
    message = str(raised.value)
    assert "\n" not in message
    assert f"{cost.worst_clip_s:.0f} s per clip" in message and "clip deadline 600 s" in message
    assert "overrides.steps" in message and "--force" in message
    assert "a preset that generates 960x544 and upscales" in message  # the 80gb preset's own size, projected to fit
    assert isinstance(raised.value, SpecError)  # exit 2


def test_a_refusal_projects_another_preset_at_the_size_it_would_generate_for_the_plan() -> None:
    """Under the 80gb preset Hunyuan generates 960x544 for a 1280x720 plan; --preset 4090 would
    generate 800x448 for that plan (its own scale of 1280x720, not of 960x544)."""
    from vgkit.cost.planner import fix_candidates
    from vgkit.models import adapter

    model = adapter("hunyuan-i2v")
    big, small = model.preset("80gb"), model.preset("4090")
    assert big.generation_size(1280, 720, multiple=16) == (960, 544)
    candidates = fix_candidates(model, big, output=(1280, 720), generated=(960, 544))
    assert small.generation_size(1280, 720, multiple=16) == (800, 448)
    assert [(p.name, w, h) for p, w, h in candidates] == [
        ("4090", 800, 448),
        ("80gb", 720, 416),  # 0.75 and 0.5 of 960x544, each side a multiple of 16
        ("80gb", 480, 272),
    ]


def test_tiny_models_and_cpu_presets_have_no_projection() -> None:
    from vgkit.cost.planner import plan_cost
    from vgkit.models import adapter

    tiny = adapter("wan22-tiny")
    assert plan_cost(object(), tiny, tiny.preset("cpu"), gpu="4090", clip_timeout_s=600, run_timeout_s=600) is None


def test_cards_by_name_and_by_what_the_machine_reports() -> None:
    from vgkit.cost.planner import card_for_this_machine

    assert card("H100").name == "h100"
    with pytest.raises(SpecError, match=r"gpu = 'v100'.*fix: use one of 4090"):
        card("v100")
    assert card_for_this_machine("NVIDIA GeForce RTX 4090", 23.99) == card("4090")
    assert card_for_this_machine("NVIDIA H100 80GB HBM3", 79.6) == card("h100")
    assert card_for_this_machine("NVIDIA RTX 6000 Ada Generation", 47.5) == card("l40s")  # by memory
    assert card_for_this_machine(None, None) is None
    assert all(c.source and c.bf16_dense_tflops > 0 for c in CARDS)


def test_the_tracker_holds_live_activations_and_fused_attention_outputs_only() -> None:
    import torch

    from vgkit.cost.count import count_call

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = torch.nn.Linear(64, 256)
            self.down = torch.nn.Linear(256, 64)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            hidden = torch.nn.functional.gelu(self.up(x))  # up's output dies once gelu's exists
            q = hidden.view(1, 4, 1000, 64)
            attended = torch.nn.functional.scaled_dot_product_attention(q, q, q).reshape(1000, 256)
            return self.down(attended)

    counted = count_call(
        {"test": "block"}, Block, lambda m: {"x": torch.randn(1000, 64)}, lambda m, i: m(**i), dtype="float32"
    )
    one = 1000 * 256 * 4  # one (1000, 256) float32 activation
    # up + gelu outputs live together (2 x), then gelu (still named `hidden`) + attention output
    # + down's (1000, 64) output; views add nothing, and the 4 x 1000 x 1000 score matrix (16 MB)
    # that the math path makes on meta is never counted.
    assert counted.activation_peak_bytes == 2 * one + 1000 * 64 * 4
    assert counted.attention_flops == pytest.approx(4 * 4 * 1000 * 1000 * 64)
    assert counted.linear_flops == pytest.approx(2 * 1000 * (64 * 256 + 256 * 64))
    assert counted.input_bytes == 1000 * 64 * 4


class SlowSteps:
    """A stand-in pipeline whose steps each take ``step_s`` (real sleeps), reported through the
    chain's step hook as a real pipeline reports them; it stops when the hook says so."""

    def __init__(self, model: Any, *, step_s: float) -> None:
        self.model, self.device, self.load_s, self.step_s = model, "cpu", 0.0, step_s

    def pipeline_info(self) -> dict[str, Any]:
        return {"pipeline_class": type(self).__name__}

    def denoise(self, request: Any, *, on_step: Any = None) -> Any:
        import time

        import numpy as np

        from vgkit.generate.generator import Denoised

        done = 0
        for step in range(1, request.steps + 1):
            time.sleep(self.step_s)
            done = step
            if on_step is not None and on_step(step, request.steps):
                break
        frames = np.zeros((request.num_frames, request.height, request.width, 3), dtype=np.uint8)
        return Denoised(latents=None, frames_fhwc=frames, call_kwargs={}, dropped_kwargs=[], steps_done=done,
                        interrupted=done < request.steps)  # fmt: skip

    def decode(self, latents: Any, *, attempt: str) -> Any:
        raise AssertionError("frames come from denoise")


def test_the_live_check_stops_a_clip_whose_measured_steps_project_past_the_deadline(tmp_path: Path) -> None:
    """After two steps of 0.15 s, 40 steps project ~6 s against a 3 s clip deadline: the clip
    stops then (after step 2, not at 3 s), and its log carries the measured figure and the planner's."""
    import json
    import re

    from tests.conftest import spec_dict, write_spec
    from vgkit.generate.chain import run_chain
    from vgkit.models import adapter
    from vgkit.records.artifacts import RunLayout
    from vgkit.spec.plan import make_plan
    from vgkit.spec.schema import load_spec
    from vgkit.supervise.guard import DeadlineExceeded, Deadlines, RunGuard

    spec = load_spec(write_spec(tmp_path / "s.yaml", spec_dict(overrides={"width": 64, "height": 64, "steps": 40})))
    model = adapter("wan22-tiny")
    plan = make_plan(spec, model)
    lines: list[str] = []
    deadlines = Deadlines.for_run(clip_count=len(plan.clips), clip_timeout_s=3.0, run_timeout_s=60.0)
    guard = RunGuard(deadlines, clip_count=len(plan.clips), progress=lines.append, live_check=True,
                     projected_clip_s={0: 450.0})  # fmt: skip
    layout = RunLayout(tmp_path / "run")
    with pytest.raises(DeadlineExceeded, match=r"clip 000: after 2 of 40 steps at \d+\.\d\d s a step, the denoise "
                       r"alone projects \d+ s, past the clip deadline of 3 s; stopped now"):  # fmt: skip
        run_chain(spec, plan, layout, SlowSteps(model, step_s=0.15), progress=lines.append, guard=guard)
    log = json.loads(layout.log(0).read_text())
    assert (log["status"], log["failure"]["kind"], log["effective"]["steps"]) == ("aborted", "timeout", 2)
    live = log["projection"]["live"]
    # The second step took at least its 0.15 s sleep, so 39 more project at least 5.85 s.
    assert live["steps_measured"] == 2 and live["projected_denoise_s"] >= 39 * 0.15 and live["past_deadline"]
    assert log["projection"]["planned_clip_s"] == 450.0
    assert any(re.search(r"measured \d+\.\d\d s a step: .*the plan projected 450 s", line) for line in lines)


def test_the_live_check_lets_a_clip_that_fits_finish(tmp_path: Path) -> None:
    from tests.conftest import spec_dict, write_spec
    from vgkit.generate.chain import run_chain
    from vgkit.models import adapter
    from vgkit.records.artifacts import RunLayout
    from vgkit.spec.plan import make_plan
    from vgkit.spec.schema import load_spec
    from vgkit.supervise.guard import Deadlines, RunGuard

    data = spec_dict(overrides={"width": 64, "height": 64, "steps": 4})
    spec = load_spec(write_spec(tmp_path / "s.yaml", {**data, "shots": data["shots"][:1]}))
    model = adapter("wan22-tiny")
    plan = make_plan(spec, model)
    guard = RunGuard(Deadlines.for_run(clip_count=1, clip_timeout_s=30.0, run_timeout_s=60.0), clip_count=1,
                     progress=lambda _: None, live_check=True)  # fmt: skip
    (log,) = run_chain(spec, plan, RunLayout(tmp_path / "run"), SlowSteps(model, step_s=0.01), guard=guard,
                       progress=lambda _: None)  # fmt: skip
    assert log["status"] == "ok" and not log["projection"]["live"]["past_deadline"]


FAKE_4090 = """#!/bin/sh
# Stands in for the driver's tool on this GPU-less machine: one RTX 4090.
echo "NVIDIA GeForce RTX 4090, 24564"
"""


def test_vgkit_run_refuses_an_infeasible_plan_before_writing_anything_and_force_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real Wan 2.2 on a stand-in RTX 4090 (its nvidia-smi line; the weights are the tiny twin's files
    under the real repo id): 50 steps at 1280x704 project ~455 s, over a 300 s clip deadline."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO, spec_dict, write_spec
    from tests.stand_ins import stand_in_gpu
    from vgkit.hub.checkpoints import locate_checkpoint, write_snapshot
    from vgkit.models import adapter

    twin = locate_checkpoint(adapter("wan22-tiny"))
    hub = tmp_path / "hub"
    write_snapshot(adapter("wan22").repo_id, "1" * 40, twin, cache_dir=hub)
    spec = write_spec(tmp_path / "s.yaml", spec_dict(model="wan22", overrides={}, preset="4090", clip_timeout_s=300))
    env = {**os.environ, "PATH": f"{stand_in_gpu(tmp_path, FAKE_4090)}:{os.environ['PATH']}", "HF_HUB_CACHE": str(hub),
           "VGKIT_LOCK_DIR": str(tmp_path / "locks"), "VGKIT_COST_CACHE": str(tmp_path / "cost-cache")}  # fmt: skip
    env.pop("VGKIT_FORCE_CPU", None)
    env["VGKIT_TORCH_PROBE"] = "tests.fake_gpu:torch_sees_the_gpu"  # torch's view: a usable GPU
    out = tmp_path / "run"

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "vgkit", "run", str(spec), "--out", str(out), *extra]
        return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    refused = run()
    assert refused.returncode == 2, refused.stderr
    # the native clip and every fix the refusal projects come from the packaged counts: none counted here
    counted = sorted(p.name for p in (tmp_path / "cost-cache").glob("*.json"))
    assert not counted, f"counts.json lacks these (python -m vgkit.cost.fit --write-counts): {counted}"
    (line,) = refused.stderr.splitlines()
    assert line.startswith("vgkit: error: plan on wan22 (4090 preset) cannot finish on the 4090: projected ")
    assert "> clip deadline 300 s" in line and "fix: " in line and "--force" in line
    assert "cost: projected on NVIDIA GeForce RTX 4090 24 GB (4090 preset, 1280x704, 50 steps)" in refused.stdout
    assert not out.exists()  # nothing written: the refusal comes before the run folder and any weights

    forced = run("--force")
    assert "cost: --force: running anyway although projected" in forced.stdout
    assert "loading Wan 2.2 TI2V-5B" in forced.stdout  # past the check, on to the (stand-in) GPU
