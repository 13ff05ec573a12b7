"""Pieces shared by the tiny random-weight checkpoints: offline tokenizers, deterministic seeds.

The tiny checkpoints keep each real architecture's component classes and layout and shrink only
the widths and depths, so they run the same loader and pipeline code in well under a second.
"""

from __future__ import annotations

import string
from typing import Any

__all__ = ["LLAMA3_SPECIAL_TOKENS", "T5_CHARS", "clip_tokenizer", "llama3_tokenizer", "t5_text_encoder", "t5_tokenizer"]

# A character-level Unigram vocabulary: every printable ASCII character is one piece, so any
# English prompt tokenizes without <unk> and token counts grow with prompt length like the real one.
T5_CHARS = "▁" + string.ascii_letters + string.digits + string.punctuation


def t5_tokenizer() -> Any:
    """A T5 tokenizer (fast, Unigram) built in code, with no Hub access."""
    from transformers import T5TokenizerFast  # type: ignore[attr-defined]  # lazily exported

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in T5_CHARS]
    return T5TokenizerFast(vocab=pieces, extra_ids=0)


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


def clip_tokenizer() -> Any:
    """A CLIP tokenizer built in code: the byte alphabet as the vocabulary, no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    pieces = sorted(ByteLevel.alphabet())
    vocab = {p: i for i, p in enumerate([*pieces, *(p + "</w>" for p in pieces)])}
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def t5_text_encoder(tokenizer: Any, *, umt5: bool) -> Any:
    """A seeded two-layer T5 (CogVideoX) or UMT5 (Wan) encoder over ``tokenizer``, in eval mode
    (a directly built model stays in training mode, whose dropout makes outputs vary)."""
    import torch
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    sizes: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 37,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
    }
    torch.manual_seed(0)
    if umt5:
        return UMT5EncoderModel(UMT5Config(**sizes)).eval()
    return T5EncoderModel(T5Config(**sizes)).eval()
