"""Clips come home: a finished clip's files as one payload, checked by sha256 and committed on arrival.

A payload is plain data (it travels as a Ray object, no shared filesystem)::

    {"index": clip index, "log": the clip log's bytes, "log_sha256": its sha256,
     "files": {run-relative path: bytes} for the clip's mp4 and last frame}

Its receiver checks the log's own sha256, then each file against the sha256 the log records for
it, writes each file atomically and the log last: the log is the clip's commit record
(vgkit.chain), so a kill mid-way never leaves a clip that looks finished. The same payloads go
the other way to resume a run on another worker from the clips that came home.
"""

from __future__ import annotations

import json
from typing import Any

from vgkit.artifacts import BUNDLED_LOG_ARTIFACTS, RunLayout, atomic_write_bytes, sha256_bytes, sha256_file
from vgkit.errors import ArtifactError

__all__ = ["ClipPayload", "clip_payload", "clips_at_home", "commit_payload"]

ClipPayload = dict[str, Any]


def clip_payload(layout: RunLayout, index: int) -> ClipPayload:
    """Read clip ``index``'s log, mp4 and last frame from ``layout`` into one payload."""
    log_bytes = layout.log(index).read_bytes()
    log = json.loads(log_bytes)
    files = {}
    for name in BUNDLED_LOG_ARTIFACTS:
        relative = log["artifacts"][name]["path"]
        files[relative] = (layout.root / relative).read_bytes()
    return {"index": index, "log": log_bytes, "log_sha256": sha256_bytes(log_bytes), "files": files}


def _checked_log(payload: ClipPayload) -> dict[str, Any]:
    index = payload["index"]
    if sha256_bytes(payload["log"]) != payload["log_sha256"]:
        raise ArtifactError(f"clip {index:03d}: its log arrived with another sha256 than it left with; not written")
    log: dict[str, Any] = json.loads(payload["log"])
    if log.get("index") != index or log.get("status") != "ok":
        raise ArtifactError(f"clip {index:03d}: the log that came with it is not an ok log of that clip; not written")
    for name in BUNDLED_LOG_ARTIFACTS:
        record = log.get("artifacts", {}).get(name) or {}
        data = payload["files"].get(record.get("path"))
        if data is None or sha256_bytes(data) != record.get("sha256"):
            raise ArtifactError(
                f"clip {index:03d}: {record.get('path', name)} is missing or its sha256 differs from the "
                "one its log records; not written"
            )
    return log


def commit_payload(layout: RunLayout, payload: ClipPayload) -> dict[str, Any]:
    """Check ``payload`` (log sha256, each file against its log), write the files, then the log;
    return the log. A payload that fails a check writes nothing (``ArtifactError``)."""
    log = _checked_log(payload)
    root = layout.root.resolve()
    for relative, data in payload["files"].items():
        dest = (layout.root / relative).resolve()
        if root not in dest.parents:  # a run-relative path from the log; never outside the run
            raise ArtifactError(f"clip {payload['index']:03d}: path {relative!r} leaves the run folder; not written")
        atomic_write_bytes(dest, data)
    atomic_write_bytes(layout.log(payload["index"]), payload["log"])
    return log


def clips_at_home(layout: RunLayout) -> list[ClipPayload]:
    """Payloads of every clip in ``layout`` whose ``ok`` log's artifacts verify by sha256, in order.

    What a resuming worker starts from; it re-checks each against its own request (vgkit.chain).
    """
    payloads = []
    for log_path in sorted(layout.logs.glob("log_*.json")) if layout.logs.is_dir() else ():
        try:
            log = json.loads(log_path.read_bytes())
            records = [log["artifacts"][name] for name in BUNDLED_LOG_ARTIFACTS]
            index = int(log["index"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if log.get("status") != "ok" or log_path != layout.log(index):
            continue
        paths = [layout.root / r["path"] for r in records]
        if all(p.is_file() and sha256_file(p) == r["sha256"] for p, r in zip(paths, records, strict=True)):
            payloads.append(clip_payload(layout, index))
    return payloads
