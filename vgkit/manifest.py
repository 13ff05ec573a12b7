"""``manifest.json``: the run summary from which the final video can be rebuilt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vgkit.artifacts import RunLayout, atomic_write_json, file_record
from vgkit.provenance import environment_info
from vgkit.stitch import read_logs

__all__ = ["MANIFEST_SCHEMA", "write_manifest"]

MANIFEST_SCHEMA = "vgkit.manifest/1"


def _artifacts(layout: RunLayout, logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    paths = [layout.plan, layout.final]
    for log in logs:
        i = log["index"]
        paths += [layout.clip(i), layout.last_frame(i), layout.log(i)]
    return [file_record(p, root=layout.root) for p in paths if p.is_file()]


def write_manifest(run_dir: Path, *, stitch: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` for a stitched run and return it."""
    layout = RunLayout(run_dir)
    logs = read_logs(layout)
    plan = json.loads(layout.plan.read_text()) if layout.plan.is_file() else None
    fps = stitch["fps"]
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "run": run_dir.name,
        "model": logs[0]["model"],
        "clip_count": len(logs),
        "planned": None
        if plan is None
        else {"final_frames": plan["final_frames"], "final_seconds": plan["final_seconds"]},
        "actual": {"final_frames": stitch["final_frames"], "final_seconds": stitch["final_frames"] / fps},
        "stitch": stitch,
        "environment": environment_info(),
        "timings_s": {
            "model_load_s": logs[0]["load_s"],
            "clips_total_s": round(sum(log["timings_s"]["total_s"] for log in logs), 3),
        },
        "artifacts": _artifacts(layout, logs),
    }
    atomic_write_json(layout.manifest, manifest)
    return manifest
