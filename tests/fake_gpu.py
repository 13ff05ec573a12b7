"""Stand-ins for a GPU host on this GPU-less machine, at the two boundaries vgkit asks.

``nvidia_smi_script`` is the body of an ``nvidia-smi`` executable (put on ``PATH`` with
``tests.stand_ins.stand_in_gpu``) printing what the driver's tool prints for a given driver;
``BROKEN_SMI`` is one whose driver does not answer. Torch's own view is real (the CPU wheel here
cannot use any GPU) unless a test names a stand-in probe with ``VGKIT_TORCH_PROBE``
(``tests.fake_gpu:torch_sees_the_gpu``): the one stub at the torch boundary, said where used.
"""

from __future__ import annotations

from vgkit.host.gpu import TorchGpu, TorchView

# driver version -> the "CUDA Version" its nvidia-smi header shows (NVIDIA's driver table)
DRIVER_CUDA = {"470.256.02": "11.4", "535.183.01": "12.2", "550.54.15": "12.4", "570.86.15": "12.8",
               "580.65.06": "13.0"}  # fmt: skip


def nvidia_smi_script(driver: str, *, gpu: str = "NVIDIA GeForce RTX 4090", memory_mib: int = 24564,
                      count: int = 1) -> str:  # fmt: skip
    """An ``nvidia-smi`` that answers the queries vgkit makes the way the real one does."""
    cuda = DRIVER_CUDA[driver]
    rows = "\\n".join([f"{driver}, {gpu}, {memory_mib} MiB"] * count)
    plain = "\\n".join([f"{gpu}, {memory_mib}"] * count)
    units = "\\n".join([f"{gpu}, {memory_mib} MiB"] * count)
    return f"""#!/bin/sh
# Stands in for the driver's tool on this GPU-less machine; prints what the real one prints.
case "$1 $2" in
  "--query-gpu=driver_version,name,memory.total --format=csv,noheader") printf '{rows}\\n' ;;
  "--query-gpu=name,memory.total --format=csv,noheader,nounits") printf '{plain}\\n' ;;
  "--query-gpu=name,memory.total --format=csv,noheader") printf '{units}\\n' ;;
  " ") printf '| NVIDIA-SMI {driver}    Driver Version: {driver}    CUDA Version: {cuda}     |\\n' ;;
  *) exit 9 ;;
esac
"""


BROKEN_SMI = """#!/bin/sh
# A host whose driver does not answer: what nvidia-smi prints then.
echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. \\
Make sure that the latest NVIDIA driver is installed and running."
exit 9
"""


def torch_sees_the_gpu() -> TorchView:
    """Stand-in for torch on a working RTX 4090 host (``VGKIT_TORCH_PROBE=tests.fake_gpu:torch_sees_the_gpu``)."""
    return TorchView(
        version="2.13.0+cu128",
        cuda="12.8",
        gpus=(TorchGpu(index=0, name="NVIDIA GeForce RTX 4090", capability=(8, 9), memory_gib=23.6),),
        error=None,
    )


def torch_built_for_a_newer_cuda() -> TorchView:
    """Stand-in for PyPI's torch (a CUDA 13.0 build) on a driver older than R580: torch sees no GPU
    and says why (its warning text on such a host)."""
    return TorchView(
        version="2.13.0",
        cuda="13.0",
        gpus=(),
        error="CUDA initialization: The NVIDIA driver on your system is too old (found version 12040)",
    )
