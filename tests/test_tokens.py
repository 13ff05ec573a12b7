"""Token budgets are counted with the model's own tokenizer, before any clip is generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.errors import SpecError
from vgkit.generate.runner import plan_job, run_job
from vgkit.hub.checkpoints import locate_checkpoint
from vgkit.models import adapter
from vgkit.spec.tokens import check_token_budget


def test_counts_every_prompt_within_budget(small_spec: Path) -> None:
    plan = plan_job(small_spec)[2]
    model = adapter("wan22-tiny")
    counts = check_token_budget(plan, model.load_tokenizer(locate_checkpoint(model)))
    assert sorted(counts) == [0, 1, 2]
    assert all(0 < n <= plan.max_sequence_length for n in counts.values())
    # character-level tiny tokenizer: at least one token per visible character
    prompt = plan.clips[0].prompt
    assert len(prompt.replace(" ", "")) < counts[0] <= len(prompt) + 2  # + leading "▁" and </s>


def test_over_budget_prompt_stops_the_run_before_any_clip(tmp_path: Path) -> None:
    data = spec_dict()
    data["shots"][1]["environment"] = "a vast hall " * 200
    spec = write_spec(tmp_path / "s.yaml", data)
    with pytest.raises(SpecError, match=r"shots\[1\]: the composed prompt is \d+ tokens, over wan22-tiny's budget"):
        run_job(spec, out=tmp_path / "run", progress=lambda _: None)
    assert not list((tmp_path / "run" / "clips").glob("*.mp4"))


def test_hunyuan_prompts_are_counted_with_the_pitfall_free_tokenizer() -> None:
    from transformers import PreTrainedTokenizerFast

    model = adapter("hunyuan-i2v-tiny")
    tokenizer = model.load_tokenizer(locate_checkpoint(model))
    assert type(tokenizer) is PreTrainedTokenizerFast  # not the LlamaTokenizerFast model_index names
    ids = tokenizer("a\n\nb", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "a\n\nb"
