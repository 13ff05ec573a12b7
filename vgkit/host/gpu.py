"""The GPUs as torch sees them, beside what ``nvidia-smi`` says (vgkit.host.cuda_builds).

``nvidia-smi`` seeing a GPU does not mean torch can use it: a torch built for a newer CUDA than
the driver supports, or a CPU-only torch, sees none. ``choose_model`` and ``vgkit doctor`` ask
both. ``VGKIT_TORCH_PROBE=module:function`` names a stand-in for torch's view (a test seam, like
``VGKIT_GENERATOR_FACTORY``: a usable GPU cannot be staged on a CPU-only machine otherwise).
Where ``nvidia-smi`` shows no GPU, runs use the CPU whatever torch would find (``choose_model``),
so ``torch_build`` reads torch's version and CUDA from its installed files without importing it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from vgkit.host.cuda_builds import BUILDS, DriverInfo

__all__ = ["TorchGpu", "TorchView", "torch_build", "torch_view"]


@dataclass(frozen=True)
class TorchGpu:
    index: int
    name: str
    capability: tuple[int, int]
    memory_gib: float

    @property
    def sm(self) -> str:
        return f"sm_{self.capability[0]}{self.capability[1]}"

    @property
    def bf16(self) -> bool:
        return self.capability >= (8, 0)

    @property
    def fp8(self) -> bool:
        """fp8 tensor cores: Ada (sm_89) and Hopper (sm_90) onwards."""
        return self.capability >= (8, 9)


@dataclass(frozen=True)
class TorchView:
    """torch's version, the CUDA it was built for, the GPUs it can use, and why none if so."""

    version: str | None  # None: torch is not installed here
    cuda: str | None  # torch.version.cuda; None for a CPU build
    gpus: tuple[TorchGpu, ...]
    error: str | None  # what torch said when it found no usable GPU

    @property
    def usable(self) -> bool:
        return bool(self.gpus)

    def why_not(self, driver: DriverInfo | None) -> str:
        """One clause: why torch cannot use the GPU ``nvidia-smi`` shows, with the fix."""
        fix = "fix: bash setup.sh (it installs the torch build for this driver)"
        if self.version is None:
            return f"torch is not installed; {fix}"
        if self.cuda is None:
            return f"torch {self.version} is a CPU-only build; {fix}"
        said = f" (torch says: {self.error})" if self.error else ""
        builds = BUILDS.get(self.version.split("+")[0], ())
        build = next((b for b in builds if b.cuda_text == self.cuda), None)
        if driver is not None and build is not None and driver.driver < build.native_driver:
            return (
                f"torch {self.version} is built for CUDA {self.cuda}, which needs an NVIDIA driver >= "
                f"{build.native_driver_text}; this host's {driver.driver_text} supports CUDA {driver.cuda_text}{said}; "
                f"{fix}, or rent an offer with a newer driver"
            )
        return f"torch {self.version} (CUDA {self.cuda}) finds no usable GPU{said}; {fix}, or rent another offer"


def torch_view() -> TorchView:
    """Ask torch (imported here, never at ``import vgkit``) which GPUs it can use."""
    if probe := os.environ.get("VGKIT_TORCH_PROBE"):
        module, _, name = probe.partition(":")
        view: TorchView = getattr(importlib.import_module(module), name)()
        return view
    if importlib.util.find_spec("torch") is None:
        return TorchView(version=None, cuda=None, gpus=(), error="torch is not installed")
    import torch

    cuda = torch.version.cuda
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = cuda is not None and torch.cuda.is_available()
    if not available:
        said = next((str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip()), None)
        return TorchView(version=torch.__version__, cuda=cuda, gpus=(), error=said)
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(TorchGpu(index, props.name, (props.major, props.minor), props.total_memory / 2**30))
    return TorchView(version=torch.__version__, cuda=cuda, gpus=tuple(gpus), error=None)


def torch_build() -> TorchView:
    """torch's version and the CUDA it was built for, read from ``torch/version.py``; no GPUs asked.

    Importing torch takes seconds of CPU and hundreds of MB in the process that does it (a
    notebook's kernel, for the doctor's cell); a host without a GPU needs only the build's name.
    Falls back to ``torch_view`` (a stand-in probe, torch not installed, a file it cannot read).
    """
    spec = importlib.util.find_spec("torch")
    if os.environ.get("VGKIT_TORCH_PROBE") or spec is None or not spec.submodule_search_locations:
        return torch_view()
    try:
        found = _module_literals(Path(spec.submodule_search_locations[0]) / "version.py", ("__version__", "cuda"))
    except (OSError, SyntaxError, ValueError):
        return torch_view()
    version, cuda = found.get("__version__"), found.get("cuda")
    if "cuda" not in found or not isinstance(version, str) or not (cuda is None or isinstance(cuda, str)):
        return torch_view()
    return TorchView(version=version, cuda=cuda, gpus=(), error=None)


def _module_literals(path: Path, names: tuple[str, ...]) -> dict[str, object]:
    """The literal values a module assigns to ``names`` at its top level, read without importing it."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            found[target.id] = ast.literal_eval(value)
    return found
