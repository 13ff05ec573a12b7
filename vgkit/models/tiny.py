"""Pieces shared by the tiny random-weight checkpoints: offline tokenizers, deterministic seeds.

The tiny checkpoints keep each real architecture's component classes and layout and shrink only
the widths and depths, so they run the same loader and pipeline code in well under a second.
"""

from __future__ import annotations

import string
from typing import Any

__all__ = ["T5_CHARS", "t5_tokenizer"]

# A character-level Unigram vocabulary: every printable ASCII character is one piece, so any
# English prompt tokenizes without <unk> and token counts grow with prompt length like the real one.
T5_CHARS = "▁" + string.ascii_letters + string.digits + string.punctuation


def t5_tokenizer() -> Any:
    """A T5 tokenizer (fast, Unigram) built in code, with no Hub access."""
    from transformers import T5TokenizerFast  # type: ignore[attr-defined]  # lazily exported

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in T5_CHARS]
    return T5TokenizerFast(vocab=pieces, extra_ids=0)
