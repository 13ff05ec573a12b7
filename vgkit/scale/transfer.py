"""Clips come home: a finished clip's files as one payload, checked by sha256 and committed on arrival.

A payload is plain data (it travels as a Ray object, no shared filesystem)::

    {"index": clip index, "log": the clip log's bytes, "log_sha256": its sha256,
     "files": {run-relative path: bytes} for the clip's mp4 and last frame}

Its receiver checks the log's own sha256, then each file against the sha256 the log records for
it, writes each file atomically and the log last: the log is the clip's commit record
(vgkit.generate.chain), so a kill mid-way never leaves a clip that looks finished. The same payloads go
the other way to resume a run on another worker from the clips that came home.
"""

from __future__ import annotations

import json
from typing import Any

from vgkit.errors import ArtifactError
from vgkit.records.artifacts import BUNDLED_LOG_ARTIFACTS, RunLayout, atomic_write_bytes, sha256_bytes, sha256_file
from vgkit.records.schema import ClipLog, parse_log, read_logs

__all__ = ["ClipPayload", "clip_payload", "clips_at_home", "commit_payload"]

ClipPayload = dict[str, Any]


def clip_payload(layout: RunLayout, index: int) -> ClipPayload:
    """Read clip ``index``'s log, mp4 and last frame from ``layout`` into one payload."""
    log_bytes = layout.log(index).read_bytes()
    log = parse_log(json.loads(log_bytes), source=f"logs/log_{index:03d}.json")
    paths = [log.artifacts[name].path for name in BUNDLED_LOG_ARTIFACTS]  # run-relative
    files = {path: (layout.root / path).read_bytes() for path in paths}
    return {"index": index, "log": log_bytes, "log_sha256": sha256_bytes(log_bytes), "files": files}


def _checked_log(payload: ClipPayload) -> ClipLog:
    index = payload["index"]
    if sha256_bytes(payload["log"]) != payload["log_sha256"]:
        raise ArtifactError(f"clip {index:03d}: its log arrived with another sha256 than it left with; not written")
    try:
        log = parse_log(json.loads(payload["log"]), source=f"clip {index:03d}'s log")
    except ValueError:  # not JSON (ArtifactError, refused, is raised as it is)
        raise ArtifactError(f"clip {index:03d}: the log that came with it is not JSON; not written") from None
    if log.index != index or log.status != "ok":
        raise ArtifactError(f"clip {index:03d}: the log that came with it is not an ok log of that clip; not written")
    for name in BUNDLED_LOG_ARTIFACTS:
        record = log.artifacts.get(name)
        data = payload["files"].get(record.path) if record is not None else None
        if record is None or data is None or sha256_bytes(data) != record.sha256:
            where = record.path if record is not None else name
            raise ArtifactError(
                f"clip {index:03d}: {where} is missing or its sha256 differs from the one its log records; not written"
            )
    return log


def commit_payload(layout: RunLayout, payload: ClipPayload) -> ClipLog:
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

    What a resuming worker starts from; it re-checks each against its own request (vgkit.generate.chain).
    """
    payloads = []
    for log in read_logs(layout.root, lenient=True):
        records = [log.artifacts.get(name) for name in BUNDLED_LOG_ARTIFACTS]
        if log.status != "ok" or not layout.log(log.index).is_file():
            continue
        if all(r is not None and (p := layout.root / r.path).is_file() and sha256_file(p) == r.sha256 for r in records):
            payloads.append(clip_payload(layout, log.index))
    return payloads
