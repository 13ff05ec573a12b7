"""Stand-in for the ``kernels`` package at its boundary, ``install_kernel``: the real one resolves
the kernel build for this torch/CUDA on the Hub and downloads it, which needs the Hub and (to use
it) a GPU, neither of which this machine has. This one records each call in
``$STAND_IN_KERNELS_LOG`` and keeps a folder per kernel and version under ``$HF_HUB_CACHE``: a
fetch makes it, an offline lookup (``local_files_only``) finds it or raises as the real one does.
Tests put this folder first on ``sys.path`` and say so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__version__ = "0.17.2"


def install_kernel(
    repo_id: str,
    *,
    revision: str | None = None,
    version: int | None = None,
    backend: str | None = None,
    local_files_only: bool = False,
    user_agent: str | dict | None = None,
    trust_remote_code: bool | list[str] = False,
) -> Path:
    call = {"repo_id": repo_id, "revision": revision, "version": version, "local_files_only": local_files_only}
    with open(os.environ["STAND_IN_KERNELS_LOG"], "a") as log:
        log.write(json.dumps(call) + "\n")
    variant = Path(os.environ["HF_HUB_CACHE"]) / "stand-in-kernels" / repo_id.replace("/", "--") / f"v{version}"
    if local_files_only:
        if not variant.is_dir():
            raise FileNotFoundError(f"Cannot find a build of {repo_id} for this environment in the local cache")
        return variant
    variant.mkdir(parents=True, exist_ok=True)
    return variant
