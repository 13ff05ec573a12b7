"""Pieces shared by the tiny random-weight checkpoints: offline tokenizers, the real repos' file
layout, deterministic seeds.

The tiny checkpoints keep each real repo's metadata (``vgkit/models/reference/<model>/``: class
names, config values, file names, weight shards) and shrink only widths and depths, so the loader
takes the same branches for a twin as for the real checkpoint, in well under a second.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

__all__ = [
    "LLAMA3_SPECIAL_TOKENS",
    "T5_CHARS",
    "build_clip_twin",
    "clip_tokenizer",
    "edit_json",
    "llama3_tokenizer",
    "reference_config",
    "reference_dir",
    "seeded_from_reference",
    "shard_like_reference",
    "t5_text_encoder",
    "t5_tokenizer",
    "write_clip_vocab",
    "write_t5_tokenizer_files",
]

_REFERENCE = Path(__file__).resolve().parent / "reference"


def reference_dir(model: str) -> Path:
    """The real repo's metadata for ``model`` (``wan22``, ``cogvideox15``, ``hunyuan-i2v``)."""
    return _REFERENCE / model


def reference_config(model: str, component: str) -> dict[str, Any]:
    """The real repo's ``<component>/config.json`` for ``model``."""
    config: dict[str, Any] = json.loads((reference_dir(model) / component / "config.json").read_text())
    return config


def seeded_from_reference(cls: Any, model: str, component: str, **sizes: Any) -> Any:
    """The diffusers model ``cls`` built from the real repo's config with the toy ``sizes`` (everything
    else the real one's), its random weights seeded with 0."""
    import torch

    torch.manual_seed(0)
    return cls.from_config({**reference_config(model, component), **sizes})


def edit_json(path: Path, changes: dict[str, Any]) -> None:
    """Set ``changes`` in the JSON file at ``path`` (made if missing), written sorted."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(changes)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def shard_like_reference(dest: Path, model: str) -> None:
    """Split each component's single weights file into the shards the real repo has.

    The shard names and counts come from the reference ``files.json`` (``model-00001-of-00003
    .safetensors`` and its ``model.safetensors.index.json``); tensors are spread over the shards in
    their saved order, so every shard holds at least one and the index maps each to its file.
    """
    from safetensors.torch import load_file, save_file

    files = json.loads((reference_dir(model) / "files.json").read_text())
    for index_name in (f for f in files if f.endswith(".safetensors.index.json")):
        single = dest / index_name.removesuffix(".index.json")
        stem = single.name.removesuffix(".safetensors")
        shard_names = sorted(Path(f).name for f in files if f.startswith(f"{Path(index_name).parent}/{stem}-"))
        tensors = load_file(str(single))
        names = list(tensors)
        per_shard = -(-len(names) // len(shard_names))
        weight_map: dict[str, str] = {}
        for number, shard_name in enumerate(shard_names):
            part = {name: tensors[name] for name in names[number * per_shard : (number + 1) * per_shard]}
            assert part, f"{model}: {len(names)} tensors cannot fill {len(shard_names)} shards"
            save_file(part, str(single.parent / shard_name), metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(part, shard_name))
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (dest / index_name).write_text(json.dumps(index, indent=2) + "\n")
        single.unlink()


# A character-level Unigram vocabulary: every printable ASCII character is one piece, so any
# English prompt tokenizes without <unk> and token counts grow with prompt length like the real one.
T5_CHARS = "▁" + string.ascii_letters + string.digits + string.punctuation


def _t5_sentencepiece() -> bytes:
    """A character-level SentencePiece model (``spiece.model``): ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2
    as in T5, then one piece per character of ``T5_CHARS``. Trained in code, no protobuf needed."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([" ".join(T5_CHARS[1:])]),
        model_writer=model,
        model_type="char",
        vocab_size=len(T5_CHARS) + 3,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    return model.getvalue()


def t5_tokenizer() -> Any:
    """A T5 tokenizer (fast, Unigram) built in code, with no Hub access: the pieces and scores of
    the character-level ``spiece.model`` that ``write_t5_tokenizer_files`` stores beside it."""
    import sentencepiece as spm
    from transformers import T5TokenizerFast  # type: ignore[attr-defined]  # lazily exported

    sp = spm.SentencePieceProcessor(model_proto=_t5_sentencepiece())
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    return T5TokenizerFast(vocab=pieces, extra_ids=0)


def write_t5_tokenizer_files(folder: Path, *, slow_files: bool) -> None:
    """Add the files a real T5 tokenizer folder has beside ``tokenizer.json``: ``spiece.model``
    and ``special_tokens_map.json``, and with ``slow_files`` (a slow tokenizer's save, CogVideoX)
    ``added_tokens.json`` (empty: the twin has no ``<extra_id_*>`` tokens)."""
    (folder / "spiece.model").write_bytes(_t5_sentencepiece())
    edit_json(folder / "special_tokens_map.json", {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"})
    if slow_files:
        edit_json(folder / "added_tokens.json", {})


# HunyuanVideo-I2V's LLaVA-Llama-3 prompt template markers (diffusers' DEFAULT_PROMPT_TEMPLATE).
LLAMA3_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<image>",
    "<pad>",
)
# Llama-3's pre-tokenizer split: newlines stay their own tokens ("\n\n" is one).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def llama3_tokenizer(corpus: list[str], *, vocab_size: int = 640) -> Any:
    """A Llama-3-style byte-level BPE tokenizer trained on ``corpus`` in code (no Hub access).

    Returned as ``PreTrainedTokenizerFast``: the class the real checkpoint must be loaded with
    under transformers 5 (``LlamaTokenizerFast`` swaps in a SentencePiece pre-tokenizer and
    silently drops newlines; FACTS.md). Every sequence starts with ``<|begin_of_text|>``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(LLAMA3_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token="<|end_of_text|>", pad_token="<pad>", padding_side="right"
    )


def _clip_vocab() -> dict[str, int]:
    from tokenizers.pre_tokenizers import ByteLevel

    pieces = sorted(ByteLevel.alphabet())
    vocab = {p: i for i, p in enumerate([*pieces, *(p + "</w>" for p in pieces)])}
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return vocab


def clip_tokenizer() -> Any:
    """A CLIP tokenizer built in code: the byte alphabet as the vocabulary, no merges, 77 tokens."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer(vocab=_clip_vocab(), merges=[], model_max_length=77)


def write_clip_vocab(folder: Path) -> None:
    """Store the CLIP tokenizer as the real (slow ``CLIPTokenizer``) save does: ``vocab.json`` and
    ``merges.txt`` plus ``special_tokens_map.json``, and no ``tokenizer.json``."""
    (folder / "vocab.json").write_text(json.dumps(_clip_vocab(), ensure_ascii=False) + "\n")
    (folder / "merges.txt").write_text("#version: 0.2\n")
    (folder / "tokenizer.json").unlink()
    eos = "<|endoftext|>"
    edit_json(
        folder / "special_tokens_map.json",
        {"bos_token": "<|startoftext|>", "eos_token": eos, "pad_token": eos, "unk_token": eos},
    )


def t5_text_encoder(tokenizer: Any, *, umt5: bool) -> Any:
    """A seeded one-layer T5 v1.1 (CogVideoX) or UMT5 (Wan) encoder over ``tokenizer``, in eval mode
    (a directly built model stays in training mode, whose dropout makes outputs vary). Everything
    but the sizes is the real encoders' (gated GELU feed-forward, 32 relative-position buckets).
    One layer of two heads: every UMT5 layer computes its own position bias over the twin's 2048
    character tokens (two layers of four heads: 1.64 s of a 4.70 s tiny Wan clip at 256x160)."""
    import torch
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    config: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "d_model": 32,
        "d_kv": 16,
        "d_ff": 37,
        "num_layers": 1,
        "num_heads": 2,
        "feed_forward_proj": "gated-gelu",
        "tie_word_embeddings": False,
        "decoder_start_token_id": 0,
    }
    torch.manual_seed(0)
    if umt5:
        # scalable_attention: the real config's key, which transformers 5 keeps as an attribute.
        return UMT5EncoderModel(UMT5Config(**{**config, "scalable_attention": True})).eval()
    return T5EncoderModel(T5Config(**config)).eval()


# The CLIP twin's sizes: everything else in its config.json is the real repo's
# (vgkit/models/reference/clip/config.json).
_CLIP_TWIN_SIZES = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2}
_CLIP_TWIN_PROJECTION_DIM = 16


def build_clip_twin(dest: Path) -> None:
    """The random-weight twin of ``openai/clip-vit-base-patch32`` in ``dest``: the real repo's file
    names (``reference_dir("clip")/files.json``), its config values but the sizes, its
    ``preprocessor_config.json``, and the byte-alphabet CLIP tokenizer saved as the real repo has
    it (fast ``tokenizer.json`` plus the slow ``vocab.json`` / ``merges.txt``)."""
    import shutil

    import torch
    from transformers import CLIPConfig, CLIPModel

    real = json.loads((reference_dir("clip") / "config.json").read_text())
    tokenizer = clip_tokenizer()
    text = {**real["text_config"], **_CLIP_TWIN_SIZES, "vocab_size": len(tokenizer)}
    text["projection_dim"] = _CLIP_TWIN_PROJECTION_DIM
    vision = {**real["vision_config"], **_CLIP_TWIN_SIZES, "projection_dim": _CLIP_TWIN_PROJECTION_DIM}
    top = {k: v for k, v in real.items() if k not in ("text_config", "vision_config", "architectures", "model_type")}
    config = CLIPConfig(**{**top, "projection_dim": _CLIP_TWIN_PROJECTION_DIM}, text_config=text, vision_config=vision)
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    write_clip_vocab(dest)
    tokenizer.backend_tokenizer.save(str(dest / "tokenizer.json"))  # the real repo keeps the fast file too
    shutil.copyfile(reference_dir("clip") / "preprocessor_config.json", dest / "preprocessor_config.json")
    wanted = set(json.loads((reference_dir("clip") / "files.json").read_text()))
    for extra in [p for p in dest.iterdir() if p.is_file() and p.name not in wanted]:
        extra.unlink()  # e.g. processor_config.json, which transformers 5 writes and the real repo lacks
