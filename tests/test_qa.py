"""Clip QA on synthetic clips made to fail one way each, round-tripped through the real encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vgkit.evaluate.qa import clip_qa, load_clip_scorer, run_verdicts, seam_qa
from vgkit.finish.encode import encode_frames, read_frames

WIDTH, HEIGHT, FRAMES = 64, 48, 25


def _blocks(seed: int) -> np.ndarray:
    """A sharp texture: 16 px blocks of random colours, twice the clip width so it can pan."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(40, 216, size=(HEIGHT // 16, 2 * WIDTH // 16, 3), dtype=np.uint8)
    return np.repeat(np.repeat(cells, 16, axis=0), 16, axis=1)


def _pan(texture: np.ndarray, *, start: int = 0, step_px: int = 1) -> np.ndarray:
    return np.stack([texture[:, start + i * step_px : start + i * step_px + WIDTH] for i in range(FRAMES)])


def _decoded(frames: np.ndarray, tmp_path: Path, name: str) -> np.ndarray:
    """What QA really sees: the frames after the pinned H.264 encode and a decode."""
    path = tmp_path / f"{name}.mp4"
    encode_frames(frames, fps=24, dest=path)
    return read_frames(path)


REFERENCE = _blocks(1)[:, :WIDTH]


def _clean() -> np.ndarray:
    return _pan(_blocks(1))


def _black() -> np.ndarray:
    rng = np.random.default_rng(2)
    return rng.integers(0, 6, size=(FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)


def _static() -> np.ndarray:
    return np.stack([REFERENCE] * FRAMES)


def _drifting() -> np.ndarray:
    red = np.array([230, 20, 20], dtype=np.float32)
    pan = _clean().astype(np.float32)
    mix = np.linspace(0.0, 0.7, FRAMES, dtype=np.float32)[:, None, None, None]
    return ((1 - mix) * pan + mix * red).round().astype(np.uint8)


def _blurry() -> np.ndarray:
    x = np.arange(2 * WIDTH, dtype=np.float32)
    row = 128 + 60 * np.sin(2 * np.pi * x / 64)
    texture = np.repeat(np.repeat(row[None, :, None], HEIGHT, axis=0), 3, axis=2).round().astype(np.uint8)
    return _pan(texture, step_px=2)


@pytest.mark.parametrize(
    ("make", "verdicts"),
    [
        (_clean, ("ok",)),
        (_black, ("effectively black",)),
        (_static, ("almost static",)),
        (_drifting, ("colour drifts from the reference",)),
        (_blurry, ("soft/blurry",)),
    ],
    ids=["clean", "black", "static", "drifting", "blurry"],
)
def test_each_synthetic_clip_gets_its_verdict_only(make: object, verdicts: tuple[str], tmp_path: Path) -> None:
    assert callable(make)
    frames = _decoded(make(), tmp_path, "clip")
    qa = clip_qa(frames, index=0, reference_hwc=REFERENCE)
    assert qa.verdicts == verdicts, qa
    assert run_verdicts([qa], []) == (["ok"] if verdicts == ("ok",) else [f"{verdicts[0]} (clip 0)"])


def test_measurements_have_the_documented_meaning(tmp_path: Path) -> None:
    black = clip_qa(_black(), index=0, reference_hwc=REFERENCE)
    assert black.black_frame_share == 1.0 and black.mean_luma < 6
    static = clip_qa(_static(), index=0, reference_hwc=REFERENCE)
    assert static.motion == 0.0 and static.drift_delta_e == 0.0
    clean = clip_qa(_clean(), index=0)
    assert clean.drift_delta_e is None and clean.prompt_match is None and clean.motion > 1.0


def test_a_seam_between_unrelated_clips_is_visible_and_only_there(tmp_path: Path) -> None:
    first = _decoded(_clean(), tmp_path, "a")
    chained = _decoded(_pan(_blocks(1), start=FRAMES - 1), tmp_path, "b")  # starts on a's last frame
    unrelated = _decoded(_pan(_blocks(9)), tmp_path, "c")
    clips = [clip_qa(f, index=i) for i, f in enumerate((first, chained, unrelated))]
    seams = [seam_qa(first, chained, index=1), seam_qa(chained, unrelated, index=2)]
    assert [s.visible for s in seams] == [False, True]
    assert seams[1].ratio > 4 * seams[0].ratio
    assert [c.verdicts for c in clips] == [("ok",), ("ok",), ("ok",)]
    assert run_verdicts(clips, seams) == ["visible seam at clip 2"]
    assert run_verdicts(clips[:2], seams[:1]) == ["ok"]


def test_bad_frames_are_refused() -> None:
    with pytest.raises(ValueError, match=r"uint8 \(F, H, W, 3\)"):
        clip_qa(np.zeros((3, 8, 8), dtype=np.uint8), index=0)


def test_prompt_match_is_absent_without_cached_clip_weights() -> None:
    assert load_clip_scorer("openai/clip-vit-base-patch32") is None


def _tiny_clip_checkpoint(dest: Path) -> None:
    """A random-weight CLIP (real classes, toy widths) with an in-code byte-level tokenizer."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": len(chars) + i for i, c in enumerate(chars)}
    bos, eos = len(vocab), len(vocab) + 1
    vocab |= {"<|startoftext|>": bos, "<|endoftext|>": eos}
    tower = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={**tower, "vocab_size": len(vocab), "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": eos},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(dest)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=CLIPTokenizer(vocab=vocab, merges=[])).save_pretrained(dest)


def test_prompt_match_scores_with_a_cached_clip_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vgkit.hub.checkpoints import write_snapshot

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    _tiny_clip_checkpoint(tmp_path / "clip")
    write_snapshot("openai/clip-vit-base-patch32", "c" * 40, tmp_path / "clip")
    scorer = load_clip_scorer("openai/clip-vit-base-patch32")
    assert scorer is not None
    qa = clip_qa(_clean(), index=0, prompt="a boat sails on the sea", scorer=scorer)
    assert qa.prompt_match is not None and 0.0 <= qa.prompt_match <= 100.0
    assert clip_qa(_clean(), index=0, prompt="a boat sails on the sea", scorer=scorer).prompt_match == qa.prompt_match
    other = clip_qa(_black(), index=0, prompt="x", scorer=scorer).prompt_match
    assert other is not None and other > 0.0 and other != qa.prompt_match  # computed, not a constant
    assert clip_qa(_clean(), index=0, scorer=scorer).prompt_match is None  # no prompt, no score
