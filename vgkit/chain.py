"""The generation loop: clip 0 from the reference image, clip i>0 from clip i-1's last frame.

Per clip it writes ``clips/clip_NNN.mp4``, ``frames/last_frame_NNN.png`` and, last, as the clip's
commit record, ``logs/log_NNN.json``. The next clip's input is the last generated frame taken from
memory (the same pixels as the lossless PNG), never re-read from the lossy mp4. Re-running a run
directory skips every clip whose log matches the plan and whose artifacts verify by hash.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from vgkit import __version__
from vgkit.artifacts import RunLayout, atomic_write_bytes, atomic_write_json, file_record, sha256_bytes
from vgkit.encode import encode_frames
from vgkit.errors import ArtifactError
from vgkit.generator import ClipGenerator, ClipRequest
from vgkit.images import fit_to_size, load_rgb, png_bytes
from vgkit.plan import ClipPlan, RunPlan
from vgkit.provenance import package_versions, peak_memory_bytes
from vgkit.settings import code_commit
from vgkit.spec import RunSpec

__all__ = ["LOG_SCHEMA", "run_chain"]

LOG_SCHEMA = "vgkit.clip-log/1"

Progress = Callable[[str], None]


def _request_key(plan: RunPlan, clip: ClipPlan, input_sha256: str) -> dict[str, Any]:
    """What determines a clip's pixels; a resumed clip must match it exactly."""
    return {
        "model": plan.model,
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
        "input_sha256": input_sha256,
    }


def _reusable_log(layout: RunLayout, clip: ClipPlan, key: dict[str, Any]) -> dict[str, Any] | None:
    """The clip's existing log if it is complete, matches ``key`` and its artifacts verify."""
    path = layout.log(clip.index)
    if not path.is_file():
        return None
    try:
        log = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if log.get("schema") != LOG_SCHEMA or log.get("status") != "ok" or log.get("request") != key:
        return None
    for name in ("clip", "last_frame"):
        record = log["artifacts"][name]
        artifact = layout.root / record["path"]
        if not artifact.is_file() or file_record(artifact, root=layout.root)["sha256"] != record["sha256"]:
            return None
    return log


def _check_effective(clip: ClipPlan, plan: RunPlan, frames: np.ndarray) -> dict[str, int]:
    num_frames, height, width, _ = frames.shape
    effective = {"num_frames": int(num_frames), "width": int(width), "height": int(height), "fps": plan.fps}
    wanted = {"num_frames": clip.num_frames, "width": plan.width, "height": plan.height, "fps": plan.fps}
    if effective != wanted:
        raise ArtifactError(f"clip {clip.index:03d}: the pipeline returned {effective}, but {wanted} was requested")
    return effective


def run_chain(
    spec: RunSpec,
    plan: RunPlan,
    layout: RunLayout,
    generator: ClipGenerator,
    *,
    progress: Progress = print,
) -> list[dict[str, Any]]:
    """Generate every clip of ``plan`` in order; return the logs (reused or new)."""
    layout.make_dirs()
    layout.sweep_temp_files()
    reference = fit_to_size(load_rgb(spec.reference_image), width=plan.width, height=plan.height)
    input_image, input_source = reference, "reference_image"
    shared = {
        "schema": LOG_SCHEMA,
        "status": "ok",
        "clip_count": len(plan.clips),
        "model": {
            "name": generator.model.name,
            "repo_id": generator.model.repo_id,
            "revision": generator.model.revision,
            "snapshot": generator.snapshot.name if hasattr(generator, "snapshot") else None,
            "device": generator.device,
            **generator.pipeline_info(),
        },
        "vgkit_version": __version__,
        "code_commit": code_commit(),
        "packages": package_versions(),
        "load_s": round(generator.load_s, 3),
    }
    logs: list[dict[str, Any]] = []
    for clip in plan.clips:
        input_png = png_bytes(input_image)
        key = _request_key(plan, clip, sha256_bytes(input_png))
        reused = _reusable_log(layout, clip, key)
        if reused is not None:
            progress(f"clip {clip.index + 1}/{len(plan.clips)}: verified, reusing {layout.clip(clip.index).name}")
            logs.append(reused)
            input_image = load_rgb(layout.last_frame(clip.index))
            input_source = f"frames/{layout.last_frame(clip.index).name}"
            continue
        progress(f"clip {clip.index + 1}/{len(plan.clips)}: generating {clip.num_frames} frames, seed {clip.seed}")
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        result = generator.generate(
            ClipRequest(
                index=clip.index,
                image_hwc=input_image,
                prompt=clip.prompt,
                negative_prompt=clip.negative_prompt,
                seed=clip.seed,
                num_frames=clip.num_frames,
                width=plan.width,
                height=plan.height,
                steps=plan.steps,
                guidance_scale=plan.guidance_scale,
                max_sequence_length=plan.max_sequence_length,
            )
        )
        effective = _check_effective(clip, plan, result.frames_fhwc)
        t1 = time.perf_counter()
        encode_frames(result.frames_fhwc, fps=plan.fps, dest=layout.clip(clip.index))
        last = np.ascontiguousarray(result.frames_fhwc[-1])
        atomic_write_bytes(layout.last_frame(clip.index), png_bytes(last))
        t2 = time.perf_counter()
        log = {
            **shared,
            "index": clip.index,
            "started_at": started_at,
            "request": key,
            "camera": clip.camera,
            "requested_duration_s": clip.requested_duration_s,
            "effective": effective,
            "call_kwargs": result.call_kwargs,
            "dropped_kwargs": result.dropped_kwargs,
            "input": {"source": input_source, "sha256": key["input_sha256"]},
            "artifacts": {
                "clip": file_record(layout.clip(clip.index), root=layout.root),
                "last_frame": file_record(layout.last_frame(clip.index), root=layout.root),
            },
            "timings_s": {
                **{k: round(v, 3) for k, v in result.timings_s.items()},
                "encode_s": round(t2 - t1, 3),
                "total_s": round(t2 - t0, 3),
            },
            "memory": peak_memory_bytes(generator.device),
        }
        atomic_write_json(layout.log(clip.index), log)
        logs.append(log)
        progress(f"clip {clip.index + 1}/{len(plan.clips)}: done in {t2 - t0:.1f} s -> {layout.clip(clip.index).name}")
        input_image = last
        input_source = f"frames/{layout.last_frame(clip.index).name}"
    return logs
