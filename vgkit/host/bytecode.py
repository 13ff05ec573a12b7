"""Bytecode for what vgkit imports, written once at set-up: ``python -m vgkit.host.bytecode``.

``setup.sh`` installs with ``pip --no-compile``: byte-compiling every file of torch, transformers,
ray and jupyterlab at install time doubled the install (87 s -> 43 s on two cores without it),
though a run imports a fraction of them. Python writes the bytecode of what it imports itself,
unless ``PYTHONDONTWRITEBYTECODE`` is set, as in many container images and often only in some of
a host's shells (an SSH session does not see a Docker image's environment). There every process
would compile torch and diffusers again (11.7 s of CPU per import instead of 4.6 s, measured). So
set-up imports here what vgkit's processes import, writing its bytecode whatever the environment
says: the libraries, every registered model family's pipeline and component classes, and what a
Jupyter kernel imports as it starts (2.6 MB of source, over 1.6 MB of it its debugger's vendored
pydevd; a kernel's start took 0.67-0.90 s of CPU without that bytecode and 0.36-0.45 s with it).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time

__all__ = ["KERNEL_CELL", "LIBRARIES", "main", "warm_bytecode", "warm_kernel"]

# Imported by vgkit's processes (runs, notebooks and their kernels, JupyterLab, Ray workers, the
# tests); a library that is not installed is skipped (ray is an extra of a pip install).
LIBRARIES: tuple[str, ...] = (
    "torch",
    "torch.utils.serialization",
    "diffusers",
    "diffusers.guiders",
    "transformers",
    "transformers.models.mt5",
    "transformers.models.llama.modeling_llama",  # HunyuanVideo's LLaVA text encoder builds one
    "accelerate",
    "safetensors.torch",
    "huggingface_hub",
    "numpy",
    "PIL.Image",
    "psutil",
    "imageio_ffmpeg",
    "imageio_ffmpeg.binaries",
    "yaml",
    "ruamel.yaml",
    "pydantic",
    "sentencepiece",
    "sentencepiece.sentencepiece_model_pb2",
    "papermill",
    "nbformat",
    "nbclient",
    "ipykernel.kernelapp",
    "ipywidgets",
    "jupyter_server.serverapp",
    "jupyterlab.labapp",
    "ray",
    "ray._private.workers.default_worker",  # every Ray worker process runs it
    "pydantic.v1",  # Ray's workers import it
    "numpy.ma",  # Ray's drivers and the pytest workers import it
    "pytest",
    "xdist",
    "nbval.plugin",
    "websocket",
    "vgkit.cli",
    "vgkit.generate.runner",
    "vgkit.evaluate.sweep",
    "vgkit.lab.compare",
)


def _model_classes() -> list[tuple[str, str]]:
    """(module, class) of every registered family's pipeline and its components' classes (a
    scheduler's compatible schedulers too: loading a pipeline imports them)."""
    from vgkit.models import adapter, model_names

    wanted: set[tuple[str, str]] = set()
    for name in model_names():
        model = adapter(name)
        wanted.update({("diffusers", model.pipeline_class), ("diffusers", model.repo_pipeline_class)})
        wanted.update(model.expected_components().values())
    return sorted(wanted)


def warm_bytecode() -> list[str]:
    """Import ``LIBRARIES`` and the model classes with bytecode writing on; return what was missing."""
    sys.dont_write_bytecode = False
    from vgkit.models.base import quiet_hf_libraries

    quiet_hf_libraries()  # no notices about optional backends on set-up's output
    missing = []
    for name in LIBRARIES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    for module, name in _model_classes():
        cls = getattr(importlib.import_module(module), name)
        if hasattr(cls, "_get_compatibles"):
            cls._get_compatibles()
    from PIL import Image

    Image.init()  # the image format plugins PIL imports when a file is opened or saved
    return missing


# What a notebook's kernel runs first: every vgkit notebook imports its helpers from here.
KERNEL_CELL = "import vgkit.lab.notebook"


def warm_kernel(cell: str = KERNEL_CELL, *, timeout_s: float = 120.0) -> str | None:
    """Start this environment's own Python kernel with bytecode writing on, run ``cell`` in it and
    shut it down, so its start-up imports (ipykernel, its debugger, IPython) get bytecode as this
    process's imports do. Returns None, or why no kernel ran (Jupyter not installed, no start)."""
    try:
        from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager
        from jupyter_client.manager import KernelManager
    except ImportError:
        return "jupyter_client is not installed"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # the debugger's note about frozen modules
    # No kernel directories: only ipykernel's native spec, which runs sys.executable (a user's own
    # "python3" kernel could run another Python).
    manager = KernelManager(kernel_name=NATIVE_KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    try:
        # its own output (a note on TCP transport) stays off set-up's output
        manager.start_kernel(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=timeout_s)
            reply = client.execute_interactive(cell, timeout=timeout_s, output_hook=lambda _: None)
        finally:
            client.stop_channels()
    except Exception as exc:  # bytecode is an optimisation: say why, set-up goes on
        return f"{type(exc).__name__}: {exc}"
    finally:
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    status = reply["content"]["status"]
    return None if status == "ok" else f"its first cell ended {status!r}"


def main() -> None:
    started = time.monotonic()
    missing = warm_bytecode()
    skipped = f"; not installed: {', '.join(missing)}" if missing else ""
    kernel = warm_kernel()
    no_kernel = f"; kernel start-up not warmed: {kernel}" if kernel else ""
    print(f"bytecode of what vgkit imports written in {time.monotonic() - started:.0f} s{skipped}{no_kernel}")


if __name__ == "__main__":
    main()
