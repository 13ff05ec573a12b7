"""The cells of a scaled-out sweep or batch (spec x model x seed), shards of them, and what a worker needs.

A cell is one run: one spec on one model with one run seed, in its own run folder on the driver.
Cells are listed grouped by model, so a worker keeps one model loaded through a stretch of them and
``--shard i/N`` can give each host whole models (each host downloads only its own weights).

A worker gets a cell as a ``CellTask``: the spec as data with its images inlined as bytes (no
shared filesystem is assumed) and the run seed written in.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vgkit.errors import SpecError

__all__ = ["SEED_STRIDE", "Cell", "CellTask", "make_cells", "parse_shard", "shard_cells", "task_for", "write_task"]

# ``--seeds N`` runs seeds spec.seed + k * SEED_STRIDE (k < N): a shot's seed is the run seed plus its
# index, so a stride above the 64-shot maximum keeps every clip's noise distinct between seeds.
SEED_STRIDE = 1000


@dataclass(frozen=True)
class Cell:
    """One run of a sweep or batch: ``spec_path`` on ``model`` with run ``seed`` (None: the spec's)."""

    spec_path: Path
    spec_name: str
    model: str
    seed: int | None
    run_dir: Path

    @property
    def name(self) -> str:
        return self.run_dir.name


@dataclass(frozen=True)
class CellTask:
    """What a worker needs to run a cell: the spec as data, its images as bytes, the model."""

    cell_name: str
    model: str
    spec_data: dict[str, Any]
    images: dict[str, bytes] = field(default_factory=dict)


def make_cells(spec_paths: list[Path], *, models: list[str], seeds: int = 1, root: Path) -> list[Cell]:
    """Every (spec, model, seed) cell, grouped by model, each with its run folder under ``root``.

    A folder is ``<spec name>-<model>``, with ``-seed<S>`` added when ``seeds > 1``. Seeds are the
    spec's seed plus ``k * SEED_STRIDE``. Two specs with one name are refused (their folders would
    collide).
    """
    from vgkit.spec.schema import load_spec

    if seeds < 1:
        raise SpecError(f"seeds = {seeds}: must be at least 1; fix: e.g. --seeds 2")
    if not models:
        raise SpecError("models: empty; fix: name at least one model, e.g. --models wan22-tiny")
    specs = [(Path(p), load_spec(p)) for p in spec_paths]  # a bad spec fails here, once
    twice = sorted(name for name, n in Counter(spec.name for _, spec in specs).items() if n > 1)
    if twice:
        raise SpecError(f"specs: name {twice[0]!r} appears twice; fix: give each spec its own `name:`")
    cells = []
    for model, (path, spec), k in itertools.product(models, specs, range(seeds)):
        seed = spec.seed + k * SEED_STRIDE if seeds > 1 else None
        suffix = "" if seed is None else f"-seed{seed}"
        cells.append(Cell(path, spec.name, model, seed, root / f"{spec.name}-{model}{suffix}"))
    return cells


_SHARD = re.compile(r"(?P<index>\d+)/(?P<count>\d+)")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` (0 <= i < N) -> ``(i, N)``."""
    match = _SHARD.fullmatch(text.strip())
    if match is None or not int(match["index"]) < int(match["count"]):
        raise SpecError(
            f"shard = {text!r}: must be i/N with 0 <= i < N; fix: e.g. --shard 0/2 on one host, 1/2 on another"
        )
    return int(match["index"]), int(match["count"])


def shard_cells(cells: list[Cell], *, index: int, count: int) -> list[Cell]:
    """The cells of shard ``index`` of ``count``; the ``count`` shards hold every cell exactly once.

    Whole models go to one shard (largest first, each to the shard with the fewest cells so far,
    ties to the lower index), so a host downloads only its own models' weights. Only when there
    are fewer models than shards is a model's group split in halves (largest first) until there
    are enough groups. The same cells always give the same shards, on every host.
    """
    if not 0 <= index < count:
        raise SpecError(f"shard = {index}/{count}: must be i/N with 0 <= i < N; fix: e.g. --shard 0/2")
    groups = [list(group) for _, group in itertools.groupby(cells, key=lambda c: c.model)]
    while len(groups) < count and any(len(g) > 1 for g in groups):
        largest = max(range(len(groups)), key=lambda i: (len(groups[i]), -i))
        group = groups.pop(largest)
        half = (len(group) + 1) // 2
        groups[largest:largest] = [group[:half], group[half:]]
    loads = [0] * count
    mine: set[Cell] = set()
    for group in sorted(groups, key=len, reverse=True):  # stable: equal sizes keep their order
        target = min(range(count), key=lambda s: (loads[s], s))
        loads[target] += len(group)
        if target == index:
            mine.update(group)
    return [cell for cell in cells if cell in mine]


def task_for(cell: Cell) -> CellTask:
    """The cell's spec as data with its images inlined as bytes and the run seed written in.

    Image paths become names beside the spec (``reference.png``, ``shot_003.png``), which the
    worker writes next to its copy of the spec, so relative paths resolve there.
    """
    from vgkit.spec.schema import load_spec, read_spec_data

    data = read_spec_data(cell.spec_path)
    spec = load_spec(cell.spec_path)  # paths resolved against the spec file
    images: dict[str, bytes] = {}
    reference = Path(spec.reference_image)
    data["reference_image"] = name = f"reference{reference.suffix.lower()}"
    images[name] = reference.read_bytes()
    shots = [dict(shot) for shot in data.get("shots", [])]
    for i, shot in enumerate(spec.shots):
        if shot.source_image is not None:
            source = Path(shot.source_image)
            shots[i]["source_image"] = name = f"shot_{i:03d}{source.suffix.lower()}"
            images[name] = source.read_bytes()
    data["shots"] = shots
    if cell.seed is not None:
        data["seed"] = cell.seed
    return CellTask(cell_name=cell.name, model=cell.model, spec_data=data, images=images)


def write_task(task: CellTask, folder: Path) -> Path:
    """Write ``task``'s images and its spec (``spec.yaml``) into ``folder``; return the spec file."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for name, data in task.images.items():
        (folder / name).write_bytes(data)
    spec_file = folder / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(task.spec_data, sort_keys=False))
    return spec_file
