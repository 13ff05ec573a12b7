"""Write a full-size Wan 2.2 TI2V-5B checkpoint with random weights into an HF cache, offline.

    PYTHONPATH=. .venv/bin/python benchmarks/full_random_checkpoint.py --hub-cache DIR           # GPU box
    PYTHONPATH=. .venv/bin/python benchmarks/full_random_checkpoint.py --hub-cache DIR --dry-run # anywhere

The transformer, VAE and text encoder are built from the real repo's configs
(``vgkit/models/reference/wan22``) with random weights, in the real dtypes (VAE float32, the rest
bfloat16), on the GPU when there is one (fast initialisation), and saved as safetensors; the
tokenizer and scheduler come from the tiny twin (its in-code vocabulary yields ids the full-size
text encoder accepts). The snapshot goes under the real repo id at a fixed commit, so ``vgkit run
--model wan22`` loads it as it would the downloaded weights: the whole GPU path (load, presets,
offload, denoise, VAE decode, stitch) runs at full size without a download. About 21 GB on disk.
``--dry-run`` builds the modules on the ``meta`` device and prints their parameter counts: it
checks the configs and classes on a CPU-only machine and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vgkit.models import adapter
from vgkit.models.tiny import reference_dir

COMMIT = "f" * 40  # the stand-in snapshot's commit: recognisable, never a real one
COMPONENTS = {  # component -> (library, dtype)
    "transformer": ("diffusers", "bfloat16"),
    "vae": ("diffusers", "float32"),
    "text_encoder": ("transformers", "bfloat16"),
}


def _build(component: str, *, device: str) -> Any:
    import diffusers
    import torch
    import transformers

    library, dtype = COMPONENTS[component]
    index = json.loads((reference_dir("wan22") / "model_index.json").read_text())
    class_name = index[component][1]
    config = json.loads((reference_dir("wan22") / component / "config.json").read_text())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        with torch.device(device):
            if library == "diffusers":
                cls = getattr(diffusers, class_name)
                return cls.from_config({k: v for k, v in config.items() if not k.startswith("_")})
            config_cls = getattr(transformers, class_name.replace("EncoderModel", "Config").replace("Model", "Config"))
            fields = {k: v for k, v in config.items() if k not in ("architectures", "_name_or_path")}
            return getattr(transformers, class_name)(config_cls(**fields))
    finally:
        torch.set_default_dtype(previous)


def build(hub_cache: Path, *, dry_run: bool) -> Path | None:
    import torch

    from vgkit.hub.checkpoints import locate_checkpoint, write_snapshot

    device = "meta" if dry_run else ("cuda" if torch.cuda.is_available() else "cpu")
    model = adapter("wan22")
    twin = locate_checkpoint(adapter("wan22-tiny"))
    with tempfile.TemporaryDirectory(prefix="vgkit-full-random-", dir=None if dry_run else hub_cache) as tmp:
        staging = Path(tmp) / "snapshot"
        shutil.copytree(twin, staging)
        for component in COMPONENTS:
            module = _build(component, device=device)
            params = sum(p.numel() for p in module.parameters())
            print(f"{component}: {type(module).__name__}, {params / 1e9:.2f} B parameters on {device}", flush=True)
            if dry_run:
                continue
            shutil.rmtree(staging / component)
            module.save_pretrained(str(staging / component), safe_serialization=True, max_shard_size="5GB")
            del module
            torch.cuda.empty_cache() if device == "cuda" else None
        if dry_run:
            print(f"dry run: would write {model.repo_id} @ {COMMIT[:12]} into {hub_cache}")
            return None
        shutil.copy(reference_dir("wan22") / "model_index.json", staging / "model_index.json")
        return write_snapshot(model.repo_id, COMMIT, staging, cache_dir=hub_cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--hub-cache", type=Path, required=True, help="HF hub cache to write the snapshot into")
    parser.add_argument("--dry-run", action="store_true", help="build on the meta device, write nothing")
    args = parser.parse_args()
    args.hub_cache.mkdir(parents=True, exist_ok=True)
    written = build(args.hub_cache, dry_run=args.dry_run)
    if written is not None:
        print(f"wrote {written}")


if __name__ == "__main__":
    main()
