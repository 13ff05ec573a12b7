"""Cost planner: each plan's time and GPU memory, computed from the real architectures.

    gpus.py           the cards (dense bf16 peak, memory, host link), each with its source
    architectures.py  the real models' component configs and the inputs each component sees
    count.py          FLOPs, parameters and activation peak of one call, on the ``meta`` device
    projection.py     one clip's seconds and peak GiB on a card; the published figures
    fit.py            the per-architecture efficiency factors fitted to those figures
    planner.py        a run plan's cost against its deadlines; the refusal and its fixes

Nothing here imports torch at import time.
"""
