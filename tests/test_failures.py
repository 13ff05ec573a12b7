"""Failure classification on real exceptions: a real tiny pipeline, real allocations, real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.tiny_models import tiny_generator
from vgkit.errors import GenerationError, GuardrailError
from vgkit.generate.generator import InProcessGenerator
from vgkit.hub.checkpoints import locate_checkpoint
from vgkit.models import adapter
from vgkit.records.failures import KINDS, classify

MODEL = "cogvideox15-tiny"
HUGE = 2**17  # a 2^17 x 2^17 frame: hundreds of GB, refused by the allocator at once


@pytest.fixture(scope="module")
def generator() -> InProcessGenerator:
    return tiny_generator(MODEL)


def _raised(func: Any, *args: Any, **kwargs: Any) -> BaseException:
    try:
        func(*args, **kwargs)
    except BaseException as exc:  # the test wants whatever it raised
        return exc
    raise AssertionError("expected an exception")


def test_rejected_kwarg_from_the_real_pipeline_is_a_kwargs_mismatch(generator: InProcessGenerator) -> None:
    from PIL import Image

    exc = _raised(generator.pipe, image=Image.new("RGB", (32, 32)), prompt="x", height=32, width=32, fps=16)
    assert isinstance(exc, TypeError)
    failure = classify(exc)
    assert (failure.kind, failure.phase, failure.error_class, failure.cause) == ("kwargs", None, "TypeError", None)
    assert "fps" in failure.message


def test_wrong_latent_shape_is_a_shape_error_through_the_generator_wrapper(generator: InProcessGenerator) -> None:
    import torch
    from PIL import Image

    latents = torch.zeros(1, 3, 4, 4, 4)  # the transformer wants (B, F, C=4, H, W) with F = 2 latents
    raw = _raised(
        generator.pipe,
        image=Image.new("RGB", (32, 32)),
        prompt="x",
        height=32,
        width=32,
        num_frames=9,
        num_inference_steps=1,
        latents=latents,
    )
    wrapped = GenerationError(f"clip 000: {type(raw).__name__}: {raw}")
    wrapped.__cause__ = raw
    failure = classify(wrapped)
    assert failure.kind == "shape", failure
    assert failure.error_class == "GenerationError" and failure.exit_code == 4
    assert failure.cause is not None and failure.cause.startswith(f"{type(raw).__name__}: ")


def test_cpu_out_of_memory_inside_the_real_vae_decode_is_read_off_the_traceback(generator: InProcessGenerator) -> None:
    import torch

    latent = torch.zeros(1, 4, 1, 1, 1).expand(1, 4, 1, HUGE, HUGE)  # a view: no memory until decoded
    exc = _raised(generator.pipe.vae.decode, latent)
    failure = classify(exc)
    assert (failure.kind, failure.phase) == ("out-of-memory", "decode")
    assert "tiling" in failure.verdict


def test_out_of_memory_outside_decode_is_denoise_unless_the_caller_says_load() -> None:
    import torch

    exc = _raised(torch.empty, HUGE, HUGE, 64)
    assert (classify(exc).kind, classify(exc).phase) == ("out-of-memory", "denoise")
    assert classify(exc, phase="load").verdict.startswith("out of memory while loading")


def test_timeouts_are_timeouts() -> None:
    expired = _raised(subprocess.run, [sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)
    assert classify(expired).kind == "timeout"
    deadline = classify(GuardrailError("clip 002: 600 s limit passed", clip_index=2, phase="decode"))
    assert (deadline.kind, deadline.clip_index, deadline.phase, deadline.exit_code) == ("timeout", 2, "decode", 6)


def test_missing_model_index_is_a_layout_mismatch(tmp_path: Path) -> None:
    exc = _raised(adapter(MODEL).load, tmp_path, device="cpu")
    failure = classify(exc)
    assert (failure.kind, failure.error_class, failure.exit_code) == ("layout", "ModelUnavailableError", 3)
    assert "prefetch" in failure.verdict


def test_missing_component_weights_is_a_layout_mismatch(tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "snap"
    shutil.copytree(locate_checkpoint(adapter(MODEL)), broken)
    for weights in (broken / "transformer").glob("*.safetensors"):
        weights.unlink()
    exc = _raised(adapter(MODEL).load, broken, device="cpu")
    assert classify(exc).kind == "layout", repr(exc)


def test_anything_else_is_other_with_its_first_line() -> None:
    failure = classify(KeyError("scheduler"))
    assert (failure.kind, failure.error_class, failure.message, failure.exit_code) == (
        "other",
        "KeyError",
        "'scheduler'",
        1,
    )
    assert set(failure.to_dict()) == {
        "kind", "phase", "clip_index", "verdict", "error_class", "message", "cause", "exit_code"
    }  # fmt: skip
    assert failure.kind in KINDS


def test_errors_carry_their_kind_and_the_refusal_and_ctrl_c_have_theirs() -> None:
    from vgkit.errors import InfeasiblePlanError, SpecError, WorkerKilledError

    assert classify(InfeasiblePlanError("projected past the deadline")).kind == "infeasible"
    assert classify(SpecError("steps = 0: must be positive")).kind == "other"
    assert classify(WorkerKilledError("killed by SIGTERM", kind="interrupted")).kind == "interrupted"
    interrupted = classify(KeyboardInterrupt())
    assert (interrupted.kind, interrupted.exit_code) == ("interrupted", 130)


def test_every_kind_has_a_verdict() -> None:
    from vgkit.records.failures import _VERDICTS

    assert {key.split("/")[0] for key in _VERDICTS} == set(KINDS)


def test_wrong_pipeline_class_is_refused_before_any_weights_load(tmp_path: Path) -> None:
    import json
    import shutil

    snap = tmp_path / "snap"
    shutil.copytree(locate_checkpoint(adapter(MODEL)), snap)
    for weights in snap.rglob("*.safetensors"):
        weights.unlink()  # no weights at all: the error must come from the index check
    index = json.loads((snap / "model_index.json").read_text())
    (snap / "model_index.json").unlink()
    (snap / "model_index.json").write_text(json.dumps({**index, "_class_name": "CogVideoXPipeline"}))
    exc = _raised(adapter(MODEL).load, snap, device="cpu")
    assert "names 'CogVideoXPipeline', not 'CogVideoXImageToVideoPipeline' (layout mismatch)" in str(exc)
    assert f"fix: delete {snap} (tiny checkpoints are rebuilt on first use)" in str(exc)
    assert classify(exc).kind == "layout"


def test_an_error_named_across_a_process_keeps_its_class_and_exit_code() -> None:
    """What ``vgkit demo`` raises for an error a notebook kernel raised: the same class, so the
    same exit code as ``vgkit run`` (a busy device or run folder was exit 4 there before)."""
    from vgkit.errors import GuardrailError, RemoteCommandError, SpecError, VgkitError
    from vgkit.records.failures import error_class_named
    from vgkit.records.rundir import RunDirBusyError
    from vgkit.supervise.lock import DeviceBusyError

    for cls in (GuardrailError, DeviceBusyError, RunDirBusyError, SpecError, RemoteCommandError):
        assert error_class_named(cls.__name__) is cls
    assert error_class_named("DeviceBusyError").exit_code == error_class_named("DeadlineExceeded").exit_code == 6
    assert error_class_named("ValueError") is VgkitError and VgkitError.exit_code == 1
