"""Where a sweep's runs ran on Ray: each attempt's node and GPU, jobs that overlapped on one GPU,
and each GPU's billing timeline.

Read from each run's ``sweep_run.json`` ``placements``, which the Ray driver records
(vgkit.scale.scheduler): one per attempt, ``{"attempt", "node", "gpu", "pid", "started_at",
"started_at_s", "ended_at", "ended_at_s", "outcome", "clips_home_at_start"}`` (epoch seconds
``*_s`` on the driver's clock). A run made here, not on Ray, has none, and the report says so. An
attempt whose worker never started (no node, no GPU) or never ended ran nowhere and is left out.

A GPU is billed from the sweep's first start to its last end (rented instances bill every GPU for
the whole time), so each GPU's timeline is its jobs and the idle stretches between them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PLACEMENT_COLUMNS",
    "GpuTimeline",
    "Overlap",
    "Placement",
    "Segment",
    "gpu_timelines",
    "overlaps",
    "placement_rows",
    "placement_summary",
    "read_placements",
]


@dataclass(frozen=True)
class Placement:
    """One attempt of one run on one GPU, from ``start_s`` to ``end_s`` (epoch seconds)."""

    run: str
    model: str
    attempt: int
    node: str
    gpu: str
    pid: int | None
    start_s: float
    end_s: float
    outcome: str
    clips_home_at_start: int

    @property
    def where(self) -> str:
        return f"{self.node} GPU {self.gpu}"


@dataclass(frozen=True)
class Overlap:
    """Two attempts on one GPU at once, for ``seconds``."""

    first: Placement
    second: Placement
    seconds: float


@dataclass(frozen=True)
class Segment:
    """A stretch of wall time: ``label`` from ``start_s`` for ``duration_s`` seconds."""

    label: str
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class GpuSegment(Segment):
    """A stretch of one GPU's billed time: a run's attempt, or ``idle``; times from the sweep's start."""

    busy: bool


@dataclass(frozen=True)
class GpuTimeline:
    where: str
    segments: list[GpuSegment]

    @property
    def busy_s(self) -> float:
        """Time with at least one run on the GPU (overlapping attempts counted once)."""
        return self.billed_s - sum(s.duration_s for s in self.segments if not s.busy)

    @property
    def billed_s(self) -> float:
        """From the sweep's first start to its last end (overlapping attempts counted once)."""
        return max((s.start_s + s.duration_s for s in self.segments), default=0.0)

    @property
    def busy_share(self) -> float:
        return self.busy_s / self.billed_s if self.billed_s else 0.0


def read_placements(run: str, model: str, sweep_run: dict[str, Any] | None) -> list[Placement]:
    """The attempts a run's ``sweep_run.json`` records that ran on a GPU, in order."""
    found: list[Placement] = []
    for record in (sweep_run or {}).get("placements") or []:
        if not isinstance(record, dict) or record.get("gpu") is None:
            continue
        start, end = record.get("started_at_s"), record.get("ended_at_s")
        if not isinstance(start, int | float) or not isinstance(end, int | float):
            continue
        found.append(
            Placement(
                run=run,
                model=model,
                attempt=int(record.get("attempt", len(found) + 1)),
                node=str(record.get("node", "n/a")),
                gpu=str(record["gpu"]),
                pid=record.get("pid"),
                start_s=float(start),
                end_s=float(end),
                outcome=str(record.get("outcome", "n/a")),
                clips_home_at_start=int(record.get("clips_home_at_start", 0)),
            )
        )
    return found


def _by_gpu(placements: list[Placement]) -> dict[str, list[Placement]]:
    groups: dict[str, list[Placement]] = {}
    for p in sorted(placements, key=lambda p: (p.where, p.start_s)):
        groups.setdefault(p.where, []).append(p)
    return groups


def overlaps(placements: list[Placement]) -> list[Overlap]:
    """Every pair of attempts that shared one GPU at the same time (none when one job per GPU held)."""
    found = []
    for on_gpu in _by_gpu(placements).values():
        for a, b in itertools.combinations(on_gpu, 2):
            shared = min(a.end_s, b.end_s) - max(a.start_s, b.start_s)
            if shared > 0:
                found.append(Overlap(a, b, shared))
    return found


def gpu_timelines(placements: list[Placement]) -> list[GpuTimeline]:
    """Each GPU's billed time from the sweep's first start to its last end: attempts and idle gaps."""
    if not placements:
        return []
    begin = min(p.start_s for p in placements)
    end = max(p.end_s for p in placements)
    timelines = []
    for where, on_gpu in _by_gpu(placements).items():
        segments, t = [], begin
        for p in on_gpu:
            if p.start_s > t:
                segments.append(GpuSegment("idle", t - begin, p.start_s - t, busy=False))
            label = f"{p.run} (attempt {p.attempt}, {p.outcome})"
            segments.append(GpuSegment(label, p.start_s - begin, p.end_s - p.start_s, busy=True))
            t = max(t, p.end_s)
        if end > t:
            segments.append(GpuSegment("idle", t - begin, end - t, busy=False))
        timelines.append(GpuTimeline(where, segments))
    return timelines


PLACEMENT_COLUMNS = ("Run", "Model", "Attempt", "Node", "GPU", "Worker pid", "Start", "Duration", "Outcome")


def placement_rows(placements: list[Placement]) -> list[tuple[str, ...]]:
    """One row of ``PLACEMENT_COLUMNS`` per attempt, in start order; start from the sweep's first."""
    if not placements:
        return []
    begin = min(p.start_s for p in placements)
    return [
        (
            p.run,
            p.model,
            f"{p.attempt}" + (f" ({p.clips_home_at_start} clip(s) home)" if p.clips_home_at_start else ""),
            p.node,
            p.gpu,
            "n/a" if p.pid is None else str(p.pid),
            f"{p.start_s - begin:.2f}s",
            f"{p.end_s - p.start_s:.2f}s",
            p.outcome,
        )
        for p in sorted(placements, key=lambda p: (p.start_s, p.where))
    ]


def placement_summary(placements: list[Placement]) -> list[str]:
    """Where the runs ran and whether any two shared a GPU at once (sentences)."""
    if not placements:
        return ["Placements: not recorded (these runs did not run on Ray)."]
    gpus = {p.where for p in placements}
    nodes = {p.node for p in placements}
    runs = {p.run for p in placements}
    found = overlaps(placements)
    overlap = (
        "none (one job per GPU at a time)"
        if not found
        else "; ".join(f"{o.first.run} and {o.second.run} on {o.first.where} for {o.seconds:.2f}s" for o in found)
    )
    return [
        f"Ray placements: {len(placements)} attempt(s) of {len(runs)} run(s) on {len(gpus)} GPU(s) "
        f"of {len(nodes)} node(s).",
        f"GPU overlap (from placements): {overlap}.",
    ]
