"""Deterministic stitch of a run's clips into ``final/final_stitched.mp4``.

Recipe (fixed, recorded in the manifest): clips in index order; every chained clip (i > 0) loses
its first frame, which repeats the previous clip's last frame; hard cut, no overlap; one ffmpeg
filtergraph; the pinned encoder recipe at the model's fps. The final frame count must equal the
sum of the clips' frames minus the dropped ones, or the stitch fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vgkit.artifacts import RunLayout, commit_file, file_record, temp_path_for
from vgkit.encode import check_frame_count, encoder_args, run_ffmpeg
from vgkit.errors import ArtifactError

__all__ = ["STITCH_RECIPE", "read_logs", "stitch_run"]

STITCH_RECIPE: dict[str, Any] = {
    "version": 1,
    "order": "clip index",
    "drop_first_frame_of_chained_clips": True,
    "transition": "cut",
    "overlap_frames": 0,
}


def read_logs(layout: RunLayout) -> list[dict[str, Any]]:
    """Every clip log of a run, in index order; the indices must run 0..X-1 without gaps."""
    paths = sorted(layout.logs.glob("log_[0-9][0-9][0-9].json"))
    if not paths:
        raise ArtifactError(f"{layout.root}: no clip logs under logs/; fix: run `vgkit run` first")
    logs = [json.loads(p.read_text()) for p in paths]
    indices = [log["index"] for log in logs]
    if indices != list(range(len(logs))):
        raise ArtifactError(f"{layout.root}: clip logs {indices} are not 0..{len(logs) - 1}; a clip is missing")
    return logs


def _filtergraph(count: int) -> str:
    parts = ["[0:v]setpts=PTS-STARTPTS[v0]"]
    parts += [f"[{i}:v]trim=start_frame=1,setpts=PTS-STARTPTS[v{i}]" for i in range(1, count)]
    inputs = "".join(f"[v{i}]" for i in range(count))
    parts.append(f"{inputs}concat=n={count}:v=1:a=0[out]")
    return ";".join(parts)


def stitch_run(run_dir: Path) -> dict[str, Any]:
    """Stitch the clips of ``run_dir``; return the stitch record for the manifest."""
    layout = RunLayout(run_dir)
    logs = read_logs(layout)
    for log in logs:
        record = log["artifacts"]["clip"]
        clip = layout.root / record["path"]
        if not clip.is_file() or file_record(clip, root=layout.root)["sha256"] != record["sha256"]:
            raise ArtifactError(f"{record['path']}: missing or changed since its log was written; re-run the clip")
    fps = logs[0]["effective"]["fps"]
    expected = sum(log["effective"]["num_frames"] for log in logs) - (len(logs) - 1)
    layout.final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(layout.final)
    args: list[str] = []
    for log in logs:
        args += ["-i", str(layout.root / log["artifacts"]["clip"]["path"])]
    args += [
        "-filter_complex",
        _filtergraph(len(logs)),
        "-map",
        "[out]",
        "-r",
        str(fps),
        *encoder_args(),
        str(tmp),
    ]
    try:
        run_ffmpeg(args)
        check_frame_count(tmp, expected, label=layout.final.name)
        commit_file(tmp, layout.final)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        **STITCH_RECIPE,
        "fps": fps,
        "encoder_args": encoder_args(),
        "clip_count": len(logs),
        "final_frames": expected,
        "final": file_record(layout.final, root=layout.root),
    }
