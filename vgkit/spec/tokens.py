"""Token budgets: refuse a prompt the model's tokenizer would silently truncate.

The pipelines cut prompts at ``max_sequence_length`` tokens without a word, so the end of a long
prompt (the global constants, in vgkit's recipe) would be lost. vgkit counts each composed prompt
with the model's own tokenizer before generating anything and stops with the shot and the count.
"""

from __future__ import annotations

from typing import Any

from vgkit.errors import SpecError
from vgkit.spec.plan import RunPlan

__all__ = ["check_token_budget"]


def check_token_budget(plan: RunPlan, tokenizer: Any) -> dict[int, int]:
    """Token count per clip prompt; ``SpecError`` for the first prompt over the budget."""
    budget = plan.max_sequence_length
    counts: dict[int, int] = {}
    for clip in plan.clips:
        for label, text in (("prompt", clip.prompt), ("negative prompt", clip.negative_prompt)):
            used = len(tokenizer(text, add_special_tokens=True)["input_ids"])
            if label == "prompt":
                counts[clip.index] = used
            if used > budget:
                raise SpecError(
                    f"shots[{clip.index}]: the composed {label} is {used} tokens, over {plan.model}'s budget of "
                    f"{budget} (the pipeline would silently cut the end); fix: shorten the shot's text or the globals"
                )
    return counts
