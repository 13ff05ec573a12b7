"""The generation loop: clip 0 from the reference image, clip i>0 from clip i-1's last frame.

Per clip, in order: denoise (deadline checked at every step), save the denoised latents to
``latents/latents_NNN.pt`` and, beside it, ``latents_NNN.json`` with its sha256, decode (deadline
checked before and after; an out-of-memory decode is retried leaner), encode
``clips/clip_NNN.mp4``, save ``frames/last_frame_NNN.png`` and, last, as the clip's commit
record, ``logs/log_NNN.json``. The next clip's input is the last generated frame taken from
memory (the same pixels as the lossless PNG), never re-read from the lossy mp4.

Re-running a run directory skips every clip whose ``ok`` log matches the request and whose
artifacts verify by hash, and decodes saved latents of the same request without re-denoising;
saved latents whose bytes no longer match their recorded sha256 are discarded (said in one line)
and the clip is denoised again.
A clip that fails or hits a deadline gets a log with status ``failed``/``aborted`` and its
``failure`` record (vgkit.records.failures: kind, phase, verdict, ...), which never counts as finished; the
error raised carries the clip index and phase. Every step is reported as a vgkit.records.events event.
"""

from __future__ import annotations

import io
import json
import pickle
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vgkit import __version__
from vgkit.errors import ArtifactError, GenerationError, GuardrailError, VgkitError
from vgkit.finish.encode import encode_frames
from vgkit.generate.generator import ClipGenerator, ClipRequest, decode_with_retries
from vgkit.records.artifacts import (
    CLIP_LOG_SCHEMA,
    RunLayout,
    atomic_write_bytes,
    atomic_write_json,
    file_record,
    read_json_object,
    sha256_bytes,
)
from vgkit.records.events import Event, Progress, Stage, note
from vgkit.records.failures import classify
from vgkit.records.provenance import package_versions, peak_memory_bytes
from vgkit.records.schema import ClipLog, parse_log, read_log
from vgkit.settings import code_commit
from vgkit.spec.images import fit_to_size, load_rgb, png_bytes
from vgkit.spec.plan import ClipPlan, RunPlan
from vgkit.spec.schema import RunSpec
from vgkit.supervise.guard import Deadlines, RunGuard
from vgkit.supervise.telemetry import GpuSampler

__all__ = ["existing_log", "run_chain", "write_killed_log"]

LATENTS_SCHEMA = "vgkit.latents/1"


def latents_record_path(latents: Path) -> Path:
    """``latents_NNN.json`` beside ``latents_NNN.pt``: its sha256 and the request it was made for."""
    return latents.with_suffix(".json")


REQUEST_KEY_SCHEMA = "vgkit.request/2"
# From the model record of a clip log: which weights and which sampler made the pixels.
MODEL_KEY_FIELDS = ("name", "repo_id", "revision", "snapshot", "pipeline_class", "scheduler_class", "scheduler_config")
# Preset fields that describe the preset but do not feed the pipeline.
PRESET_PROSE_FIELDS = ("source", "describe")


def _request_key(plan: RunPlan, clip: ClipPlan, input_sha256: str, *, model: dict[str, Any]) -> dict[str, Any]:
    """Every value that can change a clip's pixels; a reused clip (or its saved latents) must match it exactly.

    Prompt parts, seed, frame count, generation size, fps, steps, guidance, the input image's
    sha256, the model's identity (name, repo, revision, snapshot folder, pipeline and scheduler
    class and config, taken from ``model``, the log's model record), every speed option and the
    whole preset but its prose (``source``, ``describe``). ``offload`` is kept in although it
    should not change numerics: group offload moves weights in and out around each forward, and
    a stale clip costs a wrong video where a needless regeneration costs minutes. The output size
    is left out: the stitcher upscales to it, the clip's pixels do not depend on it. Returned as
    JSON would read it back (tuples as lists), so it compares equal to the key in a written log.
    """
    key = {
        "schema": REQUEST_KEY_SCHEMA,
        "model": plan.model,
        "model_identity": {field: model.get(field) for field in MODEL_KEY_FIELDS},
        "prompt": clip.prompt,
        "negative_prompt": clip.negative_prompt,
        "seed": clip.seed,
        "num_frames": clip.num_frames,
        "width": plan.width,
        "height": plan.height,
        "fps": plan.fps,
        "steps": plan.steps,
        "guidance_scale": plan.guidance_scale,
        "max_sequence_length": plan.max_sequence_length,
        "preset": {k: v for k, v in plan.preset.items() if k not in PRESET_PROSE_FIELDS},
        "speed": plan.speed,
        "input_sha256": input_sha256,
    }
    if clip.interpolated:  # a long shot: fewer frames made, the rest interpolated (vgkit.spec.plan)
        key["generated_frames"] = clip.generated_frames
        key["interpolator"] = plan.long_shots["interpolator_resolved"]
    return dict(json.loads(json.dumps(key, sort_keys=True)))


def _key_sha256(key: dict[str, Any]) -> str:
    return sha256_bytes(json.dumps(key, sort_keys=True).encode())


def existing_log(layout: RunLayout, index: int) -> ClipLog | None:
    """Clip ``index``'s log as a record, or None when there is none vgkit can read."""
    try:
        return read_log(layout.log(index), root=layout.root)
    except (ArtifactError, OSError):
        return None


def _reusable_log(layout: RunLayout, clip: ClipPlan, key: dict[str, Any]) -> ClipLog | None:
    """The clip's existing log if it is ``ok``, matches ``key`` and its artifacts verify."""
    log = existing_log(layout, clip.index)
    if log is None or log.status != "ok" or log.request != key:
        return None
    for name, path in (("clip", layout.clip(clip.index)), ("last_frame", layout.last_frame(clip.index))):
        record = log.artifacts.get(name)
        if record is None or record.path != path.relative_to(layout.root).as_posix():
            return None
        if not path.is_file() or file_record(path, root=layout.root)["sha256"] != record.sha256:
            return None
    return log


def _save_latents(path: Path, latents: Any, *, key_sha256: str, steps_done: int) -> None:
    """``torch.save`` into memory, then an atomic write: the same latents give the same bytes
    (saving straight to the temp file would embed its pid-bearing name in the archive). The
    record beside it, written after, holds the file's sha256."""
    import torch

    buffer = io.BytesIO()
    torch.save({"request_sha256": key_sha256, "steps_done": steps_done, "latents": latents}, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    atomic_write_json(
        latents_record_path(path),
        {
            "schema": LATENTS_SCHEMA,
            "file": path.name,
            "sha256": sha256_bytes(data),
            "bytes": len(data),
            "request_sha256": key_sha256,
            "steps_done": steps_done,
        },
    )


def _discard_latents(path: Path, why: str, progress: Progress) -> None:
    progress(note(f"{path.parent.name}/{path.name}: {why}; discarded, denoising the clip again"))
    path.unlink(missing_ok=True)
    latents_record_path(path).unlink(missing_ok=True)


def _saved_latents(path: Path, *, key_sha256: str, steps: int, progress: Progress = print) -> Any | None:
    """Fully denoised latents saved for this exact request whose bytes match their recorded sha256, or None.

    Latents of another request are left alone (and overwritten when this clip is denoised);
    latents that fail their hash, or have no record, are deleted and said so.
    """
    if not path.is_file():
        return None
    record = read_json_object(latents_record_path(path))
    if record is None or record.get("schema") != LATENTS_SCHEMA:
        _discard_latents(path, "no sha256 was recorded for them (saved by a killed or older run)", progress)
        return None
    if record.get("request_sha256") != key_sha256 or record.get("steps_done") != steps:
        return None
    data = path.read_bytes()
    if sha256_bytes(data) != record.get("sha256"):
        _discard_latents(
            path, f"sha256 differs from the one recorded when they were saved ({record.get('sha256')})", progress
        )
        return None
    import torch

    try:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        _discard_latents(path, f"cannot be loaded ({type(exc).__name__})", progress)
        return None
    if not isinstance(saved, dict) or saved.get("request_sha256") != key_sha256:
        return None
    return saved["latents"]


def _check_effective(clip: ClipPlan, plan: RunPlan, frames: np.ndarray) -> dict[str, int]:
    num_frames, height, width, _ = frames.shape
    effective = {"num_frames": int(num_frames), "width": int(width), "height": int(height), "fps": plan.fps}
    wanted = {"num_frames": clip.generated_frames, "width": plan.width, "height": plan.height, "fps": plan.fps}
    if effective != wanted:
        raise ArtifactError(f"clip {clip.index:03d}: the pipeline returned {effective}, but {wanted} was requested")
    return effective


def _retimed(clip: ClipPlan, plan: RunPlan, frames: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """A long shot's generated frames stretched to the clip's frames (vgkit.finish.interpolate); recorded."""
    from vgkit.finish.interpolate import interpolator_record, retime, rife_device

    name = str(plan.long_shots["interpolator_resolved"])
    device = rife_device() if name == "rife" else "cpu"
    t0 = time.perf_counter()
    out = retime(frames, clip.num_frames, interpolator=name, device=device)
    record["timings_s"]["interpolate_s"] = round(time.perf_counter() - t0, 3)
    record["effective"].update(num_frames=len(out), generated_frames=len(frames))
    record["interpolation"] = {
        "mode": clip.long_shot,
        "generated_frames": len(frames),
        "clip_frames": len(out),
        **interpolator_record(name, device=device),
    }
    return out


def write_killed_log(layout: RunLayout, index: int, *, error: VgkitError, killed_by: str = "watchdog") -> bool:
    """Record that clip ``index`` was killed mid-call (by the watchdog, or by a signal such as
    ``"SIGKILL"``) with ``error``'s failure record; never overwrites an ``ok`` log."""
    existing = existing_log(layout, index)
    if existing is not None and existing.status == "ok":
        return False
    record = {
        "schema": CLIP_LOG_SCHEMA,
        "index": index,
        "status": "aborted",
        "failure": classify(error).to_dict(),
        "killed_by": killed_by,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _commit_log(layout, index, record)
    return True


def _commit_log(layout: RunLayout, index: int, record: dict[str, Any]) -> None:
    """Write clip ``index``'s log, checked against the clip-log record (vgkit.records.schema) first."""
    parse_log(record, source=layout.log(index).relative_to(layout.root).as_posix())
    atomic_write_json(layout.log(index), record)


def _shared_fields(generator: ClipGenerator, plan: RunPlan, deadlines: Deadlines) -> dict[str, Any]:
    return {
        "schema": CLIP_LOG_SCHEMA,
        "clip_count": len(plan.clips),
        "model": {
            "name": generator.model.name,
            "repo_id": generator.model.repo_id,
            "revision": generator.model.revision,
            "snapshot": generator.snapshot.name if hasattr(generator, "snapshot") else None,
            "device": generator.device,
            **generator.pipeline_info(),
        },
        "preset": plan.preset,
        "speed": plan.speed,
        "output_size": {"width": plan.output_width, "height": plan.output_height},
        "overrides": plan.overrides,
        "deadlines": deadlines.to_dict(),
        "load_s": round(generator.load_s, 3),
        "vgkit_version": __version__,
        "code_commit": code_commit(),
        "packages": package_versions(),
    }


def _clip_event(stage: Stage, clip: ClipPlan, plan: RunPlan, **fields: Any) -> Event:
    return Event(stage, clip_index=clip.index, clip_count=len(plan.clips), **fields)


def _reset_peak_memory(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


def _make_clip(
    clip: ClipPlan,
    *,
    plan: RunPlan,
    layout: RunLayout,
    generator: ClipGenerator,
    guard: RunGuard,
    image: np.ndarray,
    record: dict[str, Any],
) -> np.ndarray:
    """Denoise (or reuse saved latents), decode, encode; fill ``record`` (its ``request`` is the key); return the
    last frame."""
    timings = record["timings_s"]
    key_sha = _key_sha256(record["request"])
    saved_at = layout.latents / f"latents_{clip.index:03d}.pt"
    latents = _saved_latents(saved_at, key_sha256=key_sha, steps=plan.steps, progress=guard.progress)
    record["latents_reused"] = latents is not None
    if latents is None:
        guard.progress(
            _clip_event("clip-start", clip, plan, figures={"num_frames": clip.generated_frames, "seed": clip.seed})
        )
        request = ClipRequest(
            index=clip.index,
            image_hwc=image,
            prompt=clip.prompt,
            negative_prompt=clip.negative_prompt,
            seed=clip.seed,
            num_frames=clip.generated_frames,
            width=plan.width,
            height=plan.height,
            steps=plan.steps,
            guidance_scale=plan.guidance_scale,
            max_sequence_length=plan.max_sequence_length,
        )
        denoised = generator.denoise(request, on_step=guard.on_step)
        timings["denoise_s"] = round(denoised.denoise_s, 3)
        record.update(call_kwargs=denoised.call_kwargs, dropped_kwargs=denoised.dropped_kwargs)
        if denoised.speed_notes:
            record["speed_notes"] = denoised.speed_notes
        record["effective"]["steps"] = denoised.steps_done
        record["projection"] = guard.projection_record()  # planned vs measured (vgkit.cost, live check)
        guard.check(phase="denoise")
        if denoised.interrupted or denoised.steps_done != plan.steps:
            raise GenerationError(
                f"clip {clip.index:03d}: denoising stopped after {denoised.steps_done}/{plan.steps} steps"
            )
        latents, frames = denoised.latents, denoised.frames_fhwc
        if frames is None:
            _save_latents(saved_at, latents, key_sha256=key_sha, steps_done=denoised.steps_done)
    else:
        frames = None
        record["effective"]["steps"] = plan.steps
    if frames is None:
        record["artifacts"]["latents"] = file_record(saved_at, root=layout.root)
        guard.check(phase="decode")
        guard.set_phase("decode")
        saved = {"saved_latents": saved_at.name} if record["latents_reused"] else {}
        guard.progress(_clip_event("decode", clip, plan, figures=saved))
        t0 = time.perf_counter()
        frames, attempts = decode_with_retries(generator, latents, index=clip.index)
        timings["decode_s"] = round(time.perf_counter() - t0, 3)
        record["effective"]["decode_attempt"] = attempts[-1]
        guard.check(phase="decode")
    else:
        record["effective"]["decode_attempt"] = "inside_pipeline_call"
    record["effective"].update(_check_effective(clip, plan, frames))
    if clip.interpolated:
        frames = _retimed(clip, plan, frames, record)
    guard.set_phase("encode")
    guard.progress(_clip_event("encode", clip, plan))
    t1 = time.perf_counter()
    encode_frames(frames, fps=plan.fps, dest=layout.clip(clip.index))
    last = np.ascontiguousarray(frames[-1])
    atomic_write_bytes(layout.last_frame(clip.index), png_bytes(last))
    timings["encode_s"] = round(time.perf_counter() - t1, 3)
    record["artifacts"]["clip"] = file_record(layout.clip(clip.index), root=layout.root)
    record["artifacts"]["last_frame"] = file_record(layout.last_frame(clip.index), root=layout.root)
    return last


def run_chain(
    spec: RunSpec,
    plan: RunPlan,
    layout: RunLayout,
    generator: ClipGenerator,
    *,
    progress: Progress = print,
    guard: RunGuard,
    resume: bool = True,
    on_clip: Callable[[int, Path], None] | None = None,
    first_input: tuple[np.ndarray, str] | None = None,
) -> list[dict[str, Any]]:
    """Generate every clip of ``plan`` in order; return the logs (reused or new).

    ``on_clip(index, clip_path)`` is called as each new clip lands (notebooks show it inline).
    ``first_input`` (an image at the plan's size, and its source as the log names it) replaces the
    reference image as the first clip's input: a take of a later shot (vgkit.generate.takes).

    Stops at the first clip that fails or passes a deadline, after writing its log
    (``failed``/``aborted``), and re-raises; every finished clip stays intact.
    """
    layout.make_dirs()
    layout.sweep_temp_files()
    reference = fit_to_size(load_rgb(spec.reference_image), width=plan.width, height=plan.height)
    input_image, input_source = first_input or (reference, "reference_image")
    shared = _shared_fields(generator, plan, guard.deadlines)
    logs: list[dict[str, Any]] = []
    for clip in plan.clips:
        if clip.source_image is not None:  # keyframe-first: this shot starts from its own image
            keyframe = load_rgb(Path(clip.source_image))
            input_image = fit_to_size(keyframe, width=plan.width, height=plan.height)
            input_source = f"shots[{clip.index}].source_image"
        key = _request_key(plan, clip, sha256_bytes(png_bytes(input_image)), model=shared["model"])
        reused = _reusable_log(layout, clip, key) if resume else None
        if reused is not None:
            progress(_clip_event("clip-reused", clip, plan, figures={"clip": layout.clip(clip.index).name}))
            logs.append(reused.to_json())
            input_image = load_rgb(layout.last_frame(clip.index))
            input_source = f"frames/{layout.last_frame(clip.index).name}"
            continue
        guard.start_clip(clip.index)
        _reset_peak_memory(generator.device)
        t0 = time.perf_counter()
        record: dict[str, Any] = {
            **shared,
            "index": clip.index,
            "status": "ok",
            "failure": None,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "request": key,
            "requested": {k: key[k] for k in ("num_frames", "width", "height", "fps", "steps")},
            "requested_duration_s": clip.requested_duration_s,
            "camera": clip.camera,
            "effective": {},
            "input": {"source": input_source, "sha256": key["input_sha256"]},
            "artifacts": {},
            "timings_s": {"load_s": round(generator.load_s, 3)},
        }
        sampler = GpuSampler()
        try:
            with sampler:
                last = _make_clip(
                    clip, plan=plan, layout=layout, generator=generator, guard=guard, image=input_image, record=record
                )
        except (GuardrailError, GenerationError, ArtifactError) as exc:
            exc.clip_index = clip.index if exc.clip_index is None else exc.clip_index
            exc.phase = exc.phase or guard.phase
            status = "aborted" if isinstance(exc, GuardrailError) else "failed"
            record.update(status=status, failure=classify(exc).to_dict())
            raise
        finally:
            record["timings_s"]["total_s"] = round(time.perf_counter() - t0, 3)
            record["memory"] = peak_memory_bytes(generator.device)
            record["gpu_telemetry"] = sampler.summary()
            record["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            if record["status"] != "ok" or "last_frame" in record["artifacts"]:
                _commit_log(layout, clip.index, record)  # the clip's commit record, written last
            guard.end_clip()
        logs.append(record)
        figures = {"clip": layout.clip(clip.index).name}
        progress(_clip_event("clip-done", clip, plan, elapsed_s=record["timings_s"]["total_s"], figures=figures))
        if on_clip is not None:
            on_clip(clip.index, layout.clip(clip.index))
        input_image = last
        input_source = f"frames/{layout.last_frame(clip.index).name}"
    return logs
