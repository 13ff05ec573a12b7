"""Scale out over every GPU of a Ray cluster (``vgkit sweep/batch --ray``), or shard cells over hosts.

    cells       spec x model x seed -> run folders; ``--shard i/N``; what a worker is sent
    transfer    a finished clip as a payload, checked by sha256 on arrival
    gpu_worker  the worker of one GPU (a Ray actor): one loaded pipeline, vgkit's job path
    scheduler   the driver: workers, queue, clips home, resume on worker loss, deadlines, Ctrl-C

Nothing here imports Ray at import time; ``vgkit.scale.scheduler.run_cells`` does, when called.
"""

from __future__ import annotations

from vgkit.scale.cells import Cell, make_cells, parse_shard, shard_cells

__all__ = ["Cell", "make_cells", "parse_shard", "shard_cells"]
