"""Property: whatever happens to a run folder between runs, a re-run gives the final video of a
clean run of the current spec, or refuses in one line; nothing outside the run folder changes.

Random (seeded: ``VGKIT_TEST_SEED``; ``VGKIT_PROPERTY_STEPS`` steps, default 16) interleavings of
editing the spec (drop, add or change a shot), killing a run (mid-clip, after the latents are
saved, or right after a clip lands, leaving a writer's temp file as SIGKILL would), corrupting a
file of the run (flipped byte, truncation, deletion) and re-running, on the real tiny Wan
(64x64, 2 steps). Every run in the test shares one loaded pipeline, wrapped so that a request it
has already computed (same prompt, seed, sizes, input image; same latents for a decode) returns
the stored result: the pipeline is deterministic on CPU, so this changes no pixel, and it keeps
the test to three denoising calls however many runs it makes. The wrapper is a ``ClipGenerator``
passed through ``run_job``'s ``make_generator`` seam; the chain, run folder, stitch and bundle
are the real ones. A "kill" raises a ``BaseException`` out of the generator or the ``on_clip``
hook, which unwinds the run as a signal would, without the finally-written clip log.
"""

from __future__ import annotations

import hashlib
import os
import random
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.errors import VgkitError
from vgkit.finish.encode import count_frames
from vgkit.generate.generator import ClipRequest, Denoised, InProcessGenerator, StepHook
from vgkit.generate.runner import JobResult, run_job
from vgkit.models import ModelAdapter
from vgkit.records.artifacts import sha256_file

pytestmark = pytest.mark.slow

SHOTS = {
    name: {"subject": f"boat {name}", "action": "sails", "environment": "sea", "camera": "pan", "duration_s": 5}
    for name in "ABC"
}
CORRUPTIBLE = ("clips", "frames", "logs", "latents", "final")


class Killed(BaseException):
    """A stand-in for SIGKILL: nothing in vgkit catches it."""


class MemoGenerator:
    """The real tiny-Wan generator, with each distinct request computed once (module docstring)."""

    def __init__(self, real: InProcessGenerator) -> None:
        self.real = real
        self.model: ModelAdapter = real.model
        self.device = real.device
        self.load_s = real.load_s
        self.denoised: dict[str, Denoised] = {}
        self.decoded: dict[str, np.ndarray] = {}
        self.kill_at_decode = False
        self.denoise_calls = 0

    def pipeline_info(self) -> dict[str, Any]:
        return self.real.pipeline_info()

    def denoise(self, request: ClipRequest, *, on_step: StepHook | None = None) -> Denoised:
        fields = {k: v for k, v in vars(request).items() if k not in ("index", "image_hwc")}
        key = hashlib.sha256(repr(sorted(fields.items())).encode() + request.image_hwc.tobytes()).hexdigest()
        if key not in self.denoised:
            self.denoise_calls += 1
            self.denoised[key] = self.real.denoise(request, on_step=on_step)
        done = self.denoised[key]
        return Denoised(**{**vars(done), "latents": done.latents.clone()})

    def decode(self, latents: Any, *, attempt: str) -> np.ndarray:
        if self.kill_at_decode:
            self.kill_at_decode = False
            raise Killed("killed after the latents were saved")
        key = hashlib.sha256(latents.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        if key not in self.decoded:
            self.decoded[key] = self.real.decode(latents, attempt=attempt)
        return self.decoded[key].copy()


def _snapshot(folder: Path, *, skip: set[str]) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): sha256_file(p) if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
        if p.relative_to(folder).parts[0] not in skip
    }


def _corrupt(run_dir: Path, rng: random.Random) -> str:
    files = sorted(p for d in CORRUPTIBLE for p in (run_dir / d).glob("*") if p.is_file())
    files += [p for p in (run_dir / "plan.json", run_dir / "manifest.json") if p.is_file()]
    if not files:
        return "nothing to corrupt"
    path = rng.choice(files)
    how = rng.choice(("flip", "truncate", "delete"))
    data = bytearray(path.read_bytes())
    if how == "delete" or not data:
        path.unlink()
    elif how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[rng.randrange(len(data))] ^= 0xFF
        path.write_bytes(bytes(data))
    return f"{how} {path.relative_to(run_dir)}"


def test_any_interleaving_ends_in_the_clean_final_or_a_one_line_refusal(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("VGKIT_TEST_SEED", "20261202")))
    steps = int(os.environ.get("VGKIT_PROPERTY_STEPS", "16"))
    work = tmp_path / "work"  # the run folder's parent, with a user's files beside it
    work.mkdir()
    (work / "notes.md").write_text("mine")
    (work / ".env.part").write_text("SECRET=1")
    run_dir = work / "run"
    memo: list[MemoGenerator] = []

    def factory(model: ModelAdapter, snapshot: Path, device: str) -> MemoGenerator:
        if not memo:
            memo.append(MemoGenerator(InProcessGenerator(model, snapshot, device=device, preset="cpu", steps=2)))
        return memo[0]

    shots = ["A", "B"]
    clean: dict[tuple[str, ...], str] = {}

    def spec_file(names: list[str]) -> Path:
        data = {**spec_dict(), "shots": [SHOTS[n] for n in names]}
        return write_spec(tmp_path / "specs" / f"{''.join(names)}.yaml", data)

    def run(names: list[str], out: Path, on_clip: Callable[[int, Path], None] | None = None) -> JobResult:
        return run_job(spec_file(names), out=out, progress=lambda _: None, make_generator=factory, on_clip=on_clip)

    def clean_final(names: list[str]) -> str:
        key = tuple(names)
        if key not in clean:
            clean[key] = sha256_file(run(names, tmp_path / "clean" / "".join(names)).final_video)
        return clean[key]

    def check_rerun(history: list[str]) -> None:
        try:
            result = run(shots, run_dir)
        except VgkitError as exc:  # a refusal is allowed if it is one line naming the problem
            assert "\n" not in str(exc) and "fix:" in str(exc), (history, str(exc))
            history.append(f"refused: {exc}")
            return
        assert sha256_file(result.final_video) == clean_final(shots), history
        assert count_frames(result.final_video) == result.final_frames, history
        with tarfile.open(result.bundle) as tar:
            bundled = tar.getnames()
        assert not any("superseded" in n for n in bundled), history
        assert sum(n.startswith("run/clips/") for n in bundled) == len(shots), history
        assert not list(run_dir.glob("clips/.*.part*")), history  # the killed writers' temp files were swept
        history.append("re-run: clean final")

    before = _snapshot(work, skip={"run", "run.tar.gz"})
    history: list[str] = [f"start {''.join(shots)}"]
    run(shots, run_dir)
    (run_dir / "notes").mkdir()
    (run_dir / "notes" / ".draft.part.md").write_text("mine too")
    for _ in range(steps):
        op = rng.choice(("edit", "kill", "corrupt", "rerun"))
        if op == "edit":
            choices = ["drop"] if len(shots) == 2 else ["add"]
            choices += ["change"] if len(shots) == 2 else []
            what = rng.choice(choices)
            if what == "drop":
                shots = shots[:1]
            elif what == "add":
                shots = [*shots, rng.choice("BC")]
            else:
                shots = [shots[0], "C" if shots[1] == "B" else "B"]
            history.append(f"edit {what} -> {''.join(shots)}")
        elif op == "kill":
            where = rng.choice(("decode", "after clip"))
            generator = memo[0]
            generator.kill_at_decode = where == "decode"

            def land(index: int, clip: Path) -> None:
                stale = clip.with_name(f".clip_{index:03d}.{2**22 + 1}.part.mp4")  # a dead writer's temp file
                stale.write_bytes(b"torn")
                raise Killed(f"killed after clip {index}")

            try:
                result = run(shots, run_dir, on_clip=land if where == "after clip" else None)
            except Killed as exc:
                history.append(f"kill: {exc}")
            else:  # nothing was left to make: the run finished before the kill point
                generator.kill_at_decode = False
                assert sha256_file(result.final_video) == clean_final(shots), history
                history.append(f"kill at {where}: finished first, clean final")
            finally:
                generator.kill_at_decode = False
        elif op == "corrupt":
            history.append(f"corrupt: {_corrupt(run_dir, rng)}")
        else:
            check_rerun(history)
    check_rerun(history)
    assert history[-1] == "re-run: clean final", history
    assert (run_dir / "notes" / ".draft.part.md").read_text() == "mine too"
    assert _snapshot(work, skip={"run", "run.tar.gz"}) == before, history
    print(f"{len(history)} events, {memo[0].denoise_calls} denoising calls, {len(clean)} clean runs: {history}")
