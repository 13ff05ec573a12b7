"""Each tiny twin carries the real repo's metadata: compared key by key with the reference data in
``vgkit/models/reference/<model>/`` (its SOURCE.md names where every file came from).

Only the sizes listed in ``SIZE_KEYS`` may differ (widths, depths, vocabularies and what follows
from them); every other config value, every model_index entry, every file name and the weight
shard layout must be the real repo's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vgkit.hub.checkpoints import locate_checkpoint
from vgkit.models import adapter
from vgkit.models.tiny import reference_dir

MODELS = ("wan22", "cogvideox15", "hunyuan-i2v")

# Keys that name the writer (library versions, dtypes, backends), not the model.
WRITER_KEYS = {
    "_diffusers_version",
    "transformers_version",
    "torch_dtype",
    "dtype",
    "_name_or_path",
    "backend",
    "_use_default_values",
}

_T5_SIZES = {"d_model", "d_ff", "d_kv", "num_heads", "num_layers", "vocab_size"}
_VAE_SIZES = {"block_out_channels", "layers_per_block", "norm_num_groups"}
# The sizes a tiny twin may change: widths, depths, vocabulary sizes and the ids and lengths
# that follow from its smaller, character-level vocabularies.
SIZE_KEYS: dict[str, dict[str, set[str]]] = {
    "wan22": {
        "transformer/config.json": {"num_attention_heads", "attention_head_dim", "ffn_dim", "num_layers", "text_dim"},
        "vae/config.json": {"base_dim", "decoder_base_dim", "dim_mult", "num_res_blocks"},
        "text_encoder/config.json": _T5_SIZES,
    },
    "cogvideox15": {
        "transformer/config.json": {
            "num_attention_heads",
            "attention_head_dim",
            "num_layers",
            "text_embed_dim",
            "time_embed_dim",
            "ofs_embed_dim",
            "max_text_seq_length",  # 4x the real 226: the twin's tokenizer is character-level
        },
        "vae/config.json": _VAE_SIZES,
        "text_encoder/config.json": _T5_SIZES,
    },
    "hunyuan-i2v": {
        "transformer/config.json": {
            "num_attention_heads",
            "attention_head_dim",
            "num_layers",
            "num_single_layers",
            "num_refiner_layers",
            "text_embed_dim",
            "pooled_projection_dim",
            "rope_axes_dim",
        },
        "vae/config.json": _VAE_SIZES,
        "text_encoder/config.json": {
            "image_token_index",
            "pad_token_id",
            *(
                f"text_config.{k}"
                for k in (
                    "hidden_size",
                    "intermediate_size",
                    "num_attention_heads",
                    "num_key_value_heads",
                    "num_hidden_layers",
                    "vocab_size",
                )
            ),
            *(
                f"vision_config.{k}"
                for k in ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers")
            ),
        },
        "text_encoder_2/config.json": {
            "hidden_size",
            "intermediate_size",
            "num_attention_heads",
            "num_hidden_layers",
            "vocab_size",
        },
    },
}
# Real (transformers 4) keys that transformers 5 reads into another key when it loads the real
# file, and writes under that key (None: it drops the key), by the real config's model_type: T5
# keeps a false `tie_word_embeddings` as `scale_decoder_outputs` and forces the tie, UMT5 just
# forces it (an encoder has no output embedding to tie); Llama keeps `rope_theta` in
# `rope_parameters`.
WRITTEN_AS: dict[str, dict[str, str | None]] = {
    "t5": {"tie_word_embeddings": "scale_decoder_outputs"},
    "umt5": {"tie_word_embeddings": None},
    "llava": {"text_config.rope_theta": "text_config.rope_parameters.rope_theta"},
}
# Files the twin has and the real repo has not, each with its reason (reference SOURCE.md).
EXTRA_FILES: dict[str, set[str]] = {}


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``text_config.hidden_size``); lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and (key.endswith("_config") or key == "rope_parameters"):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _twin(model: str) -> Path:
    return locate_checkpoint(adapter(f"{model}-tiny"))


def _reference_configs(model: str) -> list[str]:
    root = reference_dir(model)
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*.json") if p.name not in ("model_index.json", "files.json")
    )


@pytest.mark.parametrize("model", MODELS)
def test_model_index_is_the_real_one(model: str) -> None:
    real = json.loads((reference_dir(model) / "model_index.json").read_text())
    twin = json.loads((_twin(model) / "model_index.json").read_text())
    twin.pop("_diffusers_version")
    assert twin == real


@pytest.mark.parametrize("model", MODELS)
def test_file_names_and_shards_are_the_real_ones(model: str) -> None:
    snap = _twin(model)
    real = set(json.loads((reference_dir(model) / "files.json").read_text()))
    twin = {str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()}
    assert twin - real == EXTRA_FILES.get(model, set())
    assert real - twin == set()
    for index_file in (f for f in real if f.endswith(".safetensors.index.json")):
        weight_map = json.loads((snap / index_file).read_text())["weight_map"]
        shards = {f.split("/")[-1] for f in real if f.startswith(index_file.split("/")[0] + "/") and "-of-" in f}
        assert set(weight_map.values()) == shards, index_file  # every shard holds tensors


@pytest.mark.parametrize("model", MODELS)
def test_every_config_value_is_the_real_one_but_the_sizes(model: str) -> None:
    snap = _twin(model)
    sizes = SIZE_KEYS[model]
    for name in _reference_configs(model):
        real = _flat(json.loads((reference_dir(model) / name).read_text()))
        twin = _flat(json.loads((snap / name).read_text()))
        renames = WRITTEN_AS.get(str(real.get("model_type")), {})
        real = {renames.get(k, k): v for k, v in real.items() if renames.get(k, k) is not None}
        allowed = sizes.get(name, set())
        assert allowed <= set(real), f"{model}/{name}: size keys the real config lacks"
        assert set(real) - set(twin) == set(), f"{model}/{name}: keys the twin lacks"
        differ = {k: (twin[k], real[k]) for k in real if k not in allowed and twin[k] != real[k]}
        assert differ == {}, f"{model}/{name}: twin value, real value"
        if "_class_name" in real:  # a diffusers config: the reference is the whole file
            assert set(twin) - set(real) - WRITER_KEYS == set(), f"{model}/{name}: keys the real config lacks"


def test_size_keys_really_are_smaller_in_the_twin() -> None:
    """The allowed differences are sizes: the twin's transformers are far smaller than the real."""
    for model in MODELS:
        real = json.loads((reference_dir(model) / "transformer" / "config.json").read_text())
        twin = json.loads((_twin(model) / "transformer" / "config.json").read_text())
        assert twin["num_layers"] < real["num_layers"] and twin["attention_head_dim"] < real["attention_head_dim"]


def test_the_cogvideox_twin_tokenizes_from_spiece_model_as_the_real_repo_does() -> None:
    """The real CogVideoX tokenizer folder has no tokenizer.json: transformers 5 converts its
    spiece.model on load (which needs protobuf, pinned). The twin takes that branch too, and the
    converted tokenizer gives the same ids as the tokenizer the twin was built with."""
    from vgkit.models.tiny import t5_tokenizer

    folder = _twin("cogvideox15") / "tokenizer"
    assert not (folder / "tokenizer.json").exists() and (folder / "spiece.model").is_file()
    prompt = "a boat sails at dawn, 35mm"
    loaded = adapter("cogvideox15-tiny").load_tokenizer(_twin("cogvideox15"))
    assert loaded(prompt).input_ids == t5_tokenizer()(prompt).input_ids


@pytest.mark.parametrize("model", MODELS)
def test_prefetch_downloads_every_file_the_real_repo_has(model: str) -> None:
    """vgkit prefetch's patterns keep every metadata, tokenizer and weight file the loader reads."""
    from vgkit.hub.prefetch import wanted

    files = json.loads((reference_dir(model) / "files.json").read_text())
    assert [f for f in files if not wanted(f)] == []


def test_reference_data_ships_with_the_package() -> None:
    """pyproject's package-data patterns cover every reference file (the loader reads them)."""
    import fnmatch
    import tomllib

    from tests.conftest import REPO

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    root = REPO / "vgkit" / "models"
    files = [p.relative_to(root).parts for p in (root / "reference").rglob("*") if p.is_file()]

    def globbed(parts: tuple[str, ...], pattern: str) -> bool:  # setuptools' glob: `*` stays in one folder
        pattern_parts = pattern.split("/")
        return len(parts) == len(pattern_parts) and all(map(fnmatch.fnmatch, parts, pattern_parts))

    assert files and [f for f in files if not any(globbed(f, p) for p in patterns["vgkit.models"])] == []
