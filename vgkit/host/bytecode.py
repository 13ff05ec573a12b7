"""Bytecode for what vgkit imports, written once at set-up: ``python -m vgkit.host.bytecode``.

``setup.sh`` installs with ``pip --no-compile``: byte-compiling every file of torch, transformers,
ray and jupyterlab at install time doubled the install (87 s -> 43 s on two cores without it),
though a run imports a fraction of them. Python writes the bytecode of what it imports itself,
unless ``PYTHONDONTWRITEBYTECODE`` is set, as in many container images and often only in some of
a host's shells (an SSH session does not see a Docker image's environment). There every process
would compile torch and diffusers again (11.7 s of CPU per import instead of 4.6 s, measured). So
set-up imports here what vgkit's processes import, writing its bytecode whatever the environment
says: the libraries, and every registered model family's pipeline and component classes.
"""

from __future__ import annotations

import importlib
import sys
import time

__all__ = ["LIBRARIES", "main", "warm_bytecode"]

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


def main() -> None:
    started = time.monotonic()
    missing = warm_bytecode()
    skipped = f"; not installed: {', '.join(missing)}" if missing else ""
    print(f"bytecode of what vgkit imports written in {time.monotonic() - started:.0f} s{skipped}")


if __name__ == "__main__":
    main()
