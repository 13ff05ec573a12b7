"""``manifest.json``: the run summary from which the final video can be rebuilt.

Schema ``vgkit.manifest/2``: model, clip count, planned vs actual frames and seconds (planned from
``plan.json`` and the stitch recipe's overlap), the stitch record (recipe, encoder args,
filtergraph, colour matching), which interpolator ran for long shots and seams (vgkit.finish.interpolate:
name, weights' sha256, device), the environment, timings, an optional cost estimate from a
user-given $/hour rate (billed time: model load + clip generation, from the clip logs), and
sha256 + size of every artifact. Nothing in it depends on when or how fast the stitch ran, so
re-stitching an unchanged run gives a byte-identical manifest and bundle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vgkit.errors import SpecError
from vgkit.finish.stitch import StitchSettings, read_logs, stitch_run
from vgkit.records.artifacts import RunLayout, atomic_write_json, file_record
from vgkit.records.provenance import environment_info
from vgkit.records.schema import MANIFEST_SCHEMA, ClipLog, Plan, read_plan

__all__ = ["MANIFEST_SCHEMA", "stitch_and_record", "write_manifest"]


def _artifacts(layout: RunLayout, logs: list[ClipLog]) -> list[dict[str, Any]]:
    paths = [layout.plan, layout.final]
    for log in logs:
        paths += [layout.clip(log.index), layout.last_frame(log.index), layout.log(log.index)]
    return [file_record(p, root=layout.root) for p in paths if p.is_file()]


def _planned(plan: Plan | None, stitch: dict[str, Any]) -> dict[str, Any] | None:
    if plan is None:
        return None
    overlap_total = (plan.clip_count - 1) * stitch["overlap_frames"]
    joined = plan.joined_frames if plan.joined_frames is not None else plan.final_frames
    frames = joined - overlap_total
    return {
        "frames_before_transitions": joined,
        "transition_overlap_frames": overlap_total,
        "final_frames": frames,
        "final_seconds": frames / plan.fps,
    }


def _interpolation(logs: list[ClipLog], stitch: dict[str, Any]) -> dict[str, Any]:
    """Which interpolator ran where (name, weights' sha256, device): long shots' clips and the seams."""
    seams = stitch.get("seam_smoothing")
    return {
        "clips": {f"{log.index:03d}": log.interpolation for log in logs if log.interpolation is not None},
        "seams": seams.get("interpolator") if isinstance(seams, dict) else None,
    }


def _cost(timings_s: dict[str, float], usd_per_hour: float | None) -> dict[str, Any] | None:
    if usd_per_hour is None:
        return None
    if not usd_per_hour >= 0:
        raise SpecError(f"usd_per_hour = {usd_per_hour}: must be a rate >= 0 in US dollars per hour")
    billed_s = sum(timings_s.values())
    return {
        "usd_per_hour": usd_per_hour,
        "billed_s": round(billed_s, 3),
        "billed_parts": sorted(timings_s),
        "estimate_usd": round(billed_s / 3600 * usd_per_hour, 4),
    }


def write_manifest(run_dir: Path, *, stitch: dict[str, Any], usd_per_hour: float | None = None) -> dict[str, Any]:
    """Write ``manifest.json`` for a stitched run and return it."""
    layout = RunLayout(run_dir)
    logs = read_logs(layout)
    plan = read_plan(run_dir) if layout.plan.is_file() else None
    fps = stitch["fps"]
    timings_s = {
        "model_load_s": logs[0].load_s or 0.0,
        "clips_total_s": round(sum(log.timings_s.total_s or 0.0 for log in logs), 3),
    }
    model = logs[0].model
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "run": run_dir.name,
        "model": model.model_dump(mode="json", exclude_unset=True) if model is not None else None,
        "preset": logs[0].preset,
        "clip_count": len(logs),
        "planned": _planned(plan, stitch),
        "actual": {"final_frames": stitch["final_frames"], "final_seconds": stitch["final_frames"] / fps},
        "stitch": stitch,
        "interpolation": _interpolation(logs, stitch),
        "environment": environment_info(),
        "timings_s": timings_s,
        "cost": _cost(timings_s, usd_per_hour),
        "artifacts": _artifacts(layout, logs),
    }
    atomic_write_json(layout.manifest, manifest)
    return manifest


def stitch_and_record(
    run_dir: Path,
    settings: StitchSettings | None = None,
    *,
    usd_per_hour: float | None = None,
    settings_source: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Stitch ``run_dir`` with ``settings`` (None: the run's own) and write its manifest; return the manifest."""
    _cost({}, usd_per_hour)  # refuse a bad rate before the work
    stitch = stitch_run(run_dir, settings, settings_source=settings_source)
    return write_manifest(run_dir, stitch=stitch, usd_per_hour=usd_per_hour)
