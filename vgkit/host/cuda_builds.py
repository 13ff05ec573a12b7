"""Which CUDA build of the pinned torch this host's NVIDIA driver can run. Standard library only.

setup.sh runs ``python3 -m vgkit.host.cuda_builds select --shell`` before the virtual environment
exists, installs the build it names from PyTorch's own wheel index, then ``python -m
vgkit.host.cuda_builds prove`` (inside the venv) runs a small bf16 matmul on each GPU. ``vgkit doctor``
and ``vgkit remote vast-search`` read the same table.

The decision, in order:

1. No ``nvidia-smi`` (or ``VGKIT_FORCE_CPU=1``): a CPU host; setup.sh installs as before.
2. ``nvidia-smi`` present but failing or unparsable: the driver is broken; stop with the fix.
3. The newest build whose CUDA the driver runs natively (the driver is at least that toolkit's
   own driver, NVIDIA's "CUDA Toolkit and Corresponding Driver Versions" table).
4. Else the oldest build the driver runs through CUDA minor version compatibility (12.x: a
   driver >= 525 and < 580; 13.x: >= 580; NVIDIA's "Minimum Required Driver Version for CUDA
   Minor Version Compatibility" table). Said so in the stamp; the GPU proof decides.
5. Else no build fits: one line naming the driver, the CUDA it supports, the driver the oldest
   build needs, and the fix (another offer).

Sources: NVIDIA CUDA Toolkit Release Notes (13.2 Update 2), tables "CUDA Toolkit and Minimum
Required Driver Version for CUDA Minor Version Compatibility" and "CUDA Toolkit and Corresponding
Driver Versions" (Linux x86_64, GA rows). The builds of the pinned torch version are PyTorch's
wheel indexes at ``https://download.pytorch.org/whl/<tag>``; the list below could not be read
from this build machine (that host is not reachable from it) and follows PyTorch's recent release
matrix: check it with ``pip index versions torch --index-url https://download.pytorch.org/whl/cu126``
when the pin changes. A build missing there makes pip fail in setup.sh with its own message.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BUILDS",
    "BuildChoice",
    "CudaBuild",
    "DriverError",
    "DriverInfo",
    "NoBuildError",
    "choose_build",
    "pinned_torch",
    "read_driver",
]

Version = tuple[int, ...]
TORCH_INDEX = "https://download.pytorch.org/whl/"


@dataclass(frozen=True)
class CudaBuild:
    """One CUDA build of torch: its wheel tag, CUDA version and the drivers that run it."""

    tag: str  # "cu126": the local version label and the index folder
    cuda_text: str  # "12.6"
    native_driver_text: str  # the toolkit's own driver (GA row of the "Corresponding Driver Versions" table)
    compat_driver: tuple[str, str | None]  # minor version compatibility: [min, max) for the CUDA major

    @property
    def index_url(self) -> str:
        return TORCH_INDEX + self.tag

    @property
    def native_driver(self) -> Version:
        return _parse_version(self.native_driver_text)

    def runs_compat(self, driver: Version) -> bool:
        low, high = self.compat_driver
        return driver >= _parse_version(low) and (high is None or driver < _parse_version(high))


# Minor version compatibility ranges per CUDA major (NVIDIA release notes, table 2).
_COMPAT_12: tuple[str, str | None] = ("525", "580")
_COMPAT_13: tuple[str, str | None] = ("580", None)

# The CUDA builds PyTorch publishes for each pinned torch version, oldest first.
BUILDS: dict[str, tuple[CudaBuild, ...]] = {
    "2.13.0": (
        CudaBuild("cu126", "12.6", "560.28.03", _COMPAT_12),
        CudaBuild("cu128", "12.8", "570.26", _COMPAT_12),
        CudaBuild("cu130", "13.0", "580.65.06", _COMPAT_13),
    ),
}

# Highest CUDA a driver branch runs natively (same table), for drivers whose nvidia-smi header is missing.
_DRIVER_CUDA: tuple[tuple[Version, Version], ...] = (
    ((595, 45, 4), (13, 2)),
    ((590, 44, 1), (13, 1)),
    ((580, 65, 6), (13, 0)),
    ((575, 51, 3), (12, 9)),
    ((570, 26), (12, 8)),
    ((560, 28, 3), (12, 6)),
    ((555, 42, 2), (12, 5)),
    ((550, 54, 14), (12, 4)),
    ((545, 23, 6), (12, 3)),
    ((535, 54, 3), (12, 2)),
    ((530, 30, 2), (12, 1)),
    ((525, 60, 13), (12, 0)),
    ((520, 61, 5), (11, 8)),
)


class DriverError(RuntimeError):
    """``nvidia-smi`` is installed but does not answer: the driver is unusable."""


class NoBuildError(RuntimeError):
    """No CUDA build of the pinned torch runs on this driver."""


@dataclass(frozen=True)
class DriverInfo:
    """What ``nvidia-smi`` reports: driver version, the highest CUDA it supports, the GPUs."""

    driver_text: str  # "550.54.15", as nvidia-smi prints it
    cuda_text: str  # "12.4"
    gpus: tuple[str, ...]  # "NVIDIA H100 80GB HBM3, 81559 MiB"

    @property
    def driver(self) -> Version:
        return _parse_version(self.driver_text)


@dataclass(frozen=True)
class BuildChoice:
    """The build setup.sh installs, and why."""

    torch: str  # "2.13.0"
    build: CudaBuild
    driver: DriverInfo
    native: bool  # False: through CUDA minor version compatibility

    @property
    def spec(self) -> str:
        return f"torch=={self.torch}+{self.build.tag}"

    @property
    def stamp(self) -> str:
        """The line setup.sh's stamp records; a different choice later means reinstalling torch."""
        return f"{self.spec} index={self.build.index_url}"

    @property
    def why(self) -> str:
        how = "natively" if self.native else "through CUDA minor version compatibility (no PTX JIT)"
        return (
            f"driver {self.driver.driver_text} supports CUDA {self.driver.cuda_text}; "
            f"torch {self.torch} built for CUDA {self.build.cuda_text} runs on it {how}"
        )


def _parse_version(text: str) -> Version:
    if not re.fullmatch(r"\d+(\.\d+)*", text):
        raise ValueError(text)
    return tuple(int(part) for part in text.split("."))


def pinned_torch(requirements: Path | None = None) -> str:
    """The torch version requirements.txt pins (``torch==X``)."""
    path = requirements or Path(__file__).resolve().parents[2] / "requirements.txt"
    for line in path.read_text().splitlines():
        if match := re.fullmatch(r"\s*torch==([\w.]+)\s*(#.*)?", line):
            return match.group(1)
    raise ValueError(f"{path}: no torch==VERSION line")


def _cuda_for_driver(driver: Version) -> Version:
    return next((cuda for needed, cuda in _DRIVER_CUDA if driver >= needed), (0,))


def read_driver() -> DriverInfo | None:
    """The driver as ``nvidia-smi`` reports it; None on a CPU host (no tool, or ``VGKIT_FORCE_CPU=1``).

    Raises ``DriverError`` when the tool is there but fails or prints nothing usable.
    """
    if os.environ.get("VGKIT_FORCE_CPU") == "1":
        return None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    query = [smi, "--query-gpu=driver_version,name,memory.total", "--format=csv,noheader"]
    try:
        rows = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False)
        header = subprocess.run([smi], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise DriverError("nvidia-smi did not answer within 30 s") from None
    except OSError as exc:
        raise DriverError(f"nvidia-smi could not run ({exc})") from None
    said = (rows.stdout + rows.stderr).strip().splitlines()
    if rows.returncode != 0:
        raise DriverError(f"nvidia-smi failed (exit {rows.returncode}): {said[0] if said else 'no output'}")
    fields = [[part.strip() for part in line.split(",", 1)] for line in rows.stdout.splitlines() if line.strip()]
    try:
        driver = fields[0][0]
        _parse_version(driver)
        gpus = tuple(f[1] for f in fields)
    except (IndexError, ValueError):
        raise DriverError(f"nvidia-smi printed no driver version: {said[0] if said else 'no output'!r}") from None
    match = re.search(r"CUDA Version:\s*(\d+(?:\.\d+)*)", header.stdout)
    cuda = match.group(1) if match else ".".join(map(str, _cuda_for_driver(_parse_version(driver))))
    return DriverInfo(driver_text=driver, cuda_text=cuda, gpus=gpus)


def choose_build(driver: DriverInfo, torch: str) -> BuildChoice:
    """The newest build of ``torch`` the driver runs natively, else the oldest it runs through minor
    version compatibility (the nearest to the CUDA the driver knows), else ``NoBuildError``."""
    builds = BUILDS.get(torch)
    if not builds:
        raise NoBuildError(
            f"torch {torch}: no CUDA build table in vgkit/host/cuda_builds.py; fix: add its builds to BUILDS "
            f"(pip index versions torch --index-url {TORCH_INDEX}cu126 lists them)"
        )
    for build in reversed(builds):
        if driver.driver >= build.native_driver:
            return BuildChoice(torch=torch, build=build, driver=driver, native=True)
    for build in builds:  # oldest first: the build nearest the CUDA the driver knows
        if build.runs_compat(driver.driver):
            return BuildChoice(torch=torch, build=build, driver=driver, native=False)
    oldest = builds[0]
    raise NoBuildError(
        f"NVIDIA driver {driver.driver_text} supports CUDA {driver.cuda_text}, but torch {torch}'s oldest build "
        f"needs CUDA {oldest.cuda_text} (driver >= {oldest.compat_driver[0]} through minor version "
        f"compatibility, >= {oldest.native_driver_text} natively); fix: rent another offer with a driver >= "
        f"{oldest.native_driver_text} (`vgkit remote vast-search` filters for it), or upgrade the host's driver"
    )


def _select(args: argparse.Namespace) -> int:
    """Print the choice as shell assignments (``--shell``) or as text; one-line reason and exit 1 if none."""
    values = {"TORCH_SPEC": "", "TORCH_INDEX": "", "TORCH_STAMP": "", "TORCH_WHY": "", "GPU_DRIVER": ""}
    try:
        driver = read_driver()
        if driver is not None:
            choice = choose_build(driver, pinned_torch(args.requirements))
            values = {
                "TORCH_SPEC": choice.spec,
                "TORCH_INDEX": choice.build.index_url,
                "TORCH_STAMP": choice.stamp,
                "TORCH_WHY": choice.why,
                "GPU_DRIVER": f"driver {driver.driver_text}, CUDA {driver.cuda_text}, {'; '.join(driver.gpus)}",
            }
    except DriverError as exc:
        print(
            f"setup: error: {exc}: the NVIDIA driver is not usable on this host; fix: rent another offer, or "
            f"VGKIT_FORCE_CPU=1 bash setup.sh to set up for CPU only",
            file=sys.stderr,
        )
        return 1
    except NoBuildError as exc:
        print(f"setup: error: {exc}", file=sys.stderr)
        return 1
    if args.shell:
        print("\n".join(f"{key}={shlex.quote(value)}" for key, value in values.items()))
    else:
        print(f"{values['TORCH_SPEC']} ({values['TORCH_WHY']})" if values["TORCH_SPEC"] else "cpu: no NVIDIA GPU")
    return 0


def _prove(args: argparse.Namespace) -> int:
    """A bf16 matmul on each GPU torch sees, checked against float32 on the CPU (needs the venv's torch)."""
    import torch  # the venv's; this subcommand runs inside it

    built = torch.version.cuda
    where = f"torch {torch.__version__}" + (f" (CUDA {built})" if built else " (built without CUDA)")
    if not built or not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        print(
            f"setup: error: GPU proof failed: {where} cannot use the GPU ({args.expect or 'no build recorded'}); "
            f"fix: bash setup.sh again (it reinstalls the build chosen for this driver), or rent another offer",
            file=sys.stderr,
        )
        return 1
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(512, 512, generator=gen)
    expected = a @ a
    for index in range(torch.cuda.device_count()):
        device = torch.device("cuda", index)
        try:
            got = (a.to(device, torch.bfloat16) @ a.to(device, torch.bfloat16)).float().cpu()
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"setup: error: GPU proof failed on cuda:{index} with {where}: {first}; fix: rent another offer",
                  file=sys.stderr)  # fmt: skip
            return 1
        error = float((got - expected).abs().max() / expected.abs().max())
        if not error < 0.05:
            print(f"setup: error: GPU proof failed on cuda:{index}: bf16 matmul off by {error:.3g}", file=sys.stderr)
            return 1
        major, minor = torch.cuda.get_device_capability(index)
        print(
            f"GPU proof: {where} on cuda:{index} {torch.cuda.get_device_name(index)} (sm_{major}{minor}): "
            f"bf16 512x512 matmul ok (max rel. error {error:.1e})"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vgkit.host.cuda_builds", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    select = sub.add_parser("select", help="the torch build for this host's driver")
    select.add_argument("--shell", action="store_true", help="print shell assignments for setup.sh")
    select.add_argument("--requirements", type=Path, default=None, help="requirements.txt with the torch pin")
    select.set_defaults(func=_select)
    prove = sub.add_parser("prove", help="a bf16 matmul on each GPU (run inside the venv)")
    prove.add_argument("--expect", default="", help="the build setup.sh installed, for the message")
    prove.set_defaults(func=_prove)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
