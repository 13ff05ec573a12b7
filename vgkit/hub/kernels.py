"""Attention kernels from the Hub: diffusers' ``*_hub`` attention backends, through the optional
``kernels`` package (prebuilt kernels, no compiler). Fetched like weights by ``vgkit prefetch
--attention-backend NAME`` on the machine that runs (the build matching its torch, CUDA and
platform lands in the HF cache), verified offline when a run loads (``speed.attention_backend``),
never downloaded during a run. Every refusal is one line with its fix.

``kernels`` is not in the pinned set: install it (``KERNELS_PIN``) where you want these backends.
Its ``install_kernel(repo_id, revision=, version=, local_files_only=)`` resolves and downloads the
variant for this environment, or with ``local_files_only`` finds it in the cache (kernels 0.17.2,
``kernels/install.py``). diffusers copies ``HF_HUB_OFFLINE`` when it is imported and, online,
asks the Hub whether the kernel's publisher is trusted before loading it; ``offline_kernel_load``
makes that step read the cache only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from vgkit.errors import SpecError

__all__ = ["KERNELS_PIN", "HubKernel", "fetch", "hub_kernel", "offline_kernel_load", "verify"]

KERNELS_PIN = "kernels==0.17.2"


@dataclass(frozen=True)
class HubKernel:
    backend: str
    repo_id: str
    revision: str | None
    version: int | None

    @property
    def field(self) -> str:
        return f"speed.attention_backend = {self.backend!r}"


def hub_kernel(backend: str) -> HubKernel | None:
    """The Hub kernel diffusers loads for ``backend``, or None for a backend that needs none."""
    if not backend.endswith("_hub"):
        return None
    from diffusers.models.attention_dispatch import _HUB_KERNELS_REGISTRY, AttentionBackendName

    config = _HUB_KERNELS_REGISTRY.get(AttentionBackendName(backend))
    return None if config is None else HubKernel(backend, config.repo_id, config.revision, config.version)


def _install(backend: str, *, offline: bool) -> Path:
    """``install_kernel`` of ``backend``'s kernel: the download (network), or with ``offline`` the
    cached build for this torch and CUDA; each refusal a ``SpecError`` with its fix."""
    kernel = hub_kernel(backend)
    if kernel is None:
        raise SpecError(
            f"speed.attention_backend = {backend!r}: not a Hub kernel backend; fix: name one ending in _hub"
        )
    try:
        from kernels import install_kernel
    except ImportError:
        raise SpecError(
            f"{kernel.field}: its kernel {kernel.repo_id} comes from the Hub through the `kernels` package, "
            f"which is not installed; fix: .venv/bin/pip install {KERNELS_PIN}, then "
            f"`vgkit prefetch --attention-backend {kernel.backend}`; or attention_backend: default"
        ) from None
    try:
        path = install_kernel(
            kernel.repo_id, revision=kernel.revision, version=kernel.version, local_files_only=offline
        )
    except Exception as exc:  # kernels' own errors: no build for this torch/CUDA, not cached, Hub unreachable
        said = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if offline:
            raise SpecError(
                f"{kernel.field}: kernel {kernel.repo_id} (version {kernel.version}) is not in the HF cache for "
                f"this torch and CUDA ({said}); fix: `vgkit prefetch --attention-backend {kernel.backend}` on this "
                f"machine (needs the network once), or attention_backend: default"
            ) from None
        raise SpecError(
            f"{kernel.field}: fetching kernel {kernel.repo_id} (version {kernel.version}) failed: {said}; "
            f"fix: check the network and that a build exists for this torch and CUDA, or attention_backend: default"
        ) from None
    return Path(path)


def fetch(backend: str) -> Path:
    """Download ``backend``'s kernel build for this environment into the HF cache (network)."""
    return _install(backend, offline=False)


def verify(backend: str) -> Path:
    """The cached kernel build for ``backend``, found with no network; ``SpecError`` if absent."""
    return _install(backend, offline=True)


@contextmanager
def offline_kernel_load() -> Iterator[None]:
    """Offline for the Hub, diffusers' copy of ``HF_HUB_OFFLINE`` included, while a backend loads."""
    from diffusers.models import attention_dispatch

    from vgkit.settings import offline_hub

    before = attention_dispatch.HF_HUB_OFFLINE
    with offline_hub():
        attention_dispatch.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            attention_dispatch.HF_HUB_OFFLINE = before
