"""Prompt match: how well a run's frames show its clips' composed prompts, on a 0-10 scale.

The scorer is a checkpoint like the video models: ``clip`` is ``openai/clip-vit-base-patch32`` at a
pinned revision (``vgkit prefetch --model clip``; loaded offline from the HF cache afterwards),
``clip-tiny`` its random-weight twin with the real repo's file names and config keys (built in the
cache on first use, for tests). Scoring runs after generation and never fails a run:
``score_run`` returns a record that says why there is no score when the weights are missing.

Mapping (``MAPPING``): for each clip, ``FRAMES_PER_CLIP`` frames spread over the clip are embedded
and compared with the clip's composed prompt (``logs/log_NNN.json`` ``request.prompt``); the mean
cosine similarity ``c`` gives ``score = 10 * clamp((c - COSINE_UNRELATED) / (COSINE_MATCH -
COSINE_UNRELATED), 0, 1)``. For ViT-B/32, an image and an unrelated caption sit near 0.10-0.15 and
a well-matching caption near 0.30-0.35 (the range CLIPScore, Hessel et al. 2021, rescales), so 0
means "unrelated" and 10 "as close as this CLIP gets for a matching caption". The run's score is
the mean over its scored clips.

Limits (said in the report too): CLIP rewards objects, style and setting visible in single frames;
it does not see motion, the order of beats, or whether a story is told. Prompts longer than 77
tokens are truncated. The twin's weights are random: its numbers exercise the plumbing only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vgkit.errors import ModelUnavailableError, SpecError
from vgkit.records.artifacts import atomic_write_json
from vgkit.records.schema import read_logs

__all__ = [
    "CLIP",
    "CLIP_TINY",
    "COSINE_MATCH",
    "COSINE_UNRELATED",
    "LIMITS",
    "MAPPING",
    "ClipScorer",
    "ScorerCheckpoint",
    "cosine_to_score",
    "load_scorer",
    "mean_cosine",
    "score_run",
    "scorer_checkpoint",
    "scorer_names",
]

PROMPT_MATCH_FILE = "prompt_match.json"
PROMPT_MATCH_SCHEMA = "vgkit.prompt-match/1"
FRAMES_PER_CLIP = 8
COSINE_UNRELATED = 0.10  # ViT-B/32 cosine of an image and an unrelated caption: score 0
COSINE_MATCH = 0.35  # ... and of a well-matching caption: score 10
MAPPING = (
    f"10 x clamp((cosine - {COSINE_UNRELATED}) / ({COSINE_MATCH} - {COSINE_UNRELATED}), 0, 1), "
    f"cosine = mean over {FRAMES_PER_CLIP} frames of CLIP ViT-B/32 image vs composed-prompt embeddings"
)
LIMITS = "CLIP rewards objects, style and setting in single frames, not motion, beat order or story"


@dataclass(frozen=True)
class ScorerCheckpoint:
    """A CLIP checkpoint in the shape ``vgkit.hub.checkpoints`` and ``vgkit.hub.prefetch`` expect.

    ``required_file`` is the file whose absence means "not a checkpoint of this kind" (a
    transformers repo has ``config.json`` where a diffusers one has ``model_index.json``).
    """

    name: str
    repo_id: str
    revision: str
    tiny: bool = False
    download_gb: float = 0.61
    required_file: str = "config.json"

    def build_tiny(self, dest: Path) -> None:
        """Write the random-weight twin into ``dest`` (``vgkit.models.tiny.build_clip_twin``)."""
        from vgkit.models.tiny import build_clip_twin

        build_clip_twin(dest)


CLIP = ScorerCheckpoint(
    name="clip",
    repo_id="openai/clip-vit-base-patch32",
    # The commit that adds model.safetensors on top of main (3d74acf...), which has pickle weights
    # only; see vgkit/models/reference/clip/SOURCE.md.
    revision="eaee4c876b93e66f7fac584b529025a96d71ad66",
)
CLIP_TINY = ScorerCheckpoint(
    name="clip-tiny", repo_id="vgkit-tiny/clip-vit-base-patch32-tiny", revision="main", tiny=True, download_gb=0.0
)
_SCORERS = {c.name: c for c in (CLIP, CLIP_TINY)}


def scorer_names() -> list[str]:
    return list(_SCORERS)


def scorer_checkpoint(name: str) -> ScorerCheckpoint:
    try:
        return _SCORERS[name]
    except KeyError:
        raise SpecError(f"prompt-match model = {name!r}: unknown; fix: use one of {', '.join(_SCORERS)}") from None


def cosine_to_score(cosine: float) -> float:
    """The documented 0-10 mapping of a mean cosine similarity (``MAPPING``)."""
    share = (cosine - COSINE_UNRELATED) / (COSINE_MATCH - COSINE_UNRELATED)
    return round(10.0 * min(max(share, 0.0), 1.0), 2)


class ClipScorer:
    """A loaded CLIP model and processor; ``cosine(frames, prompt)`` is the mean frame cosine."""

    def __init__(self, checkpoint: ScorerCheckpoint, snapshot: Path, commit: str) -> None:
        from transformers import CLIPModel, CLIPProcessor

        from vgkit.models.base import quiet_hf_libraries

        quiet_hf_libraries()
        self.checkpoint = checkpoint
        self.commit = commit
        self._model = CLIPModel.from_pretrained(snapshot, use_safetensors=True).eval()
        self._processor = CLIPProcessor.from_pretrained(snapshot)

    def cosine(self, frames_fhwc: np.ndarray, prompt: str) -> float:
        return mean_cosine(self._model, self._processor, frames_fhwc, prompt, frames=FRAMES_PER_CLIP)


def mean_cosine(model: Any, processor: Any, frames_fhwc: np.ndarray, prompt: str, *, frames: int) -> float:
    """The mean cosine of ``prompt``'s CLIP embedding and those of ``frames`` frames spread over the clip."""
    import torch
    from PIL import Image

    picks = np.unique(np.linspace(0, len(frames_fhwc) - 1, frames).round().astype(int))
    images = [Image.fromarray(frames_fhwc[i]) for i in picks]
    inputs = processor(text=[prompt], images=images, return_tensors="pt", padding=True, truncation=True)
    with torch.no_grad():
        out = model(**inputs)
    image = out.image_embeds / out.image_embeds.norm(dim=-1, keepdim=True)
    text = out.text_embeds / out.text_embeds.norm(dim=-1, keepdim=True)
    return float((image @ text.T).mean())


def load_scorer(name: str = "clip", *, cache_dir: Path | None = None) -> ClipScorer:
    """The scorer ``name`` from the local cache (no network); the twin is built on first use.

    Raises ``ModelUnavailableError`` naming ``vgkit prefetch --model clip`` when the real
    weights are not cached.
    """
    from vgkit.hub.checkpoints import checkpoint_status, locate_checkpoint

    checkpoint = scorer_checkpoint(name)
    snapshot = locate_checkpoint(checkpoint, cache_dir=cache_dir)
    status = checkpoint_status(checkpoint, cache_dir=cache_dir)
    if not status.complete:
        raise ModelUnavailableError(
            f"prompt-match model {name!r}: {checkpoint.repo_id} is incomplete in the cache ({status.describe()}); "
            f"fix: vgkit prefetch --model {name}"
        )
    return ClipScorer(checkpoint, snapshot, status.commit or checkpoint.revision)


def score_run(
    run_dir: Path, *, model: str = "clip", scorer: ClipScorer | None = None, cache_dir: Path | None = None
) -> dict[str, Any]:
    """Score every finished clip of ``run_dir`` against its composed prompt; write and return
    ``prompt_match.json``. Never raises for a missing model or a failed clip: the record's
    ``status`` ("scored", "unavailable", "no clips") and ``reason`` say what happened."""
    from vgkit.finish.encode import read_frames

    record: dict[str, Any] = {
        "schema": PROMPT_MATCH_SCHEMA,
        "model": model,
        "repo_id": scorer_checkpoint(model).repo_id,
        "commit": None,
        "mapping": MAPPING,
        "limits": LIMITS,
        "status": "scored",
        "reason": None,
        "clips": [],
        "run_score": None,
    }
    logs = [log for log in read_logs(run_dir, lenient=True) if log.finished_clip(run_dir) is not None]
    if not logs:
        record.update(status="no clips", reason="no finished clip to score")
    else:
        try:
            scorer = scorer or load_scorer(model, cache_dir=cache_dir)
        except ModelUnavailableError as exc:
            record.update(status="unavailable", reason=str(exc))
    if scorer is not None and record["status"] == "scored":
        record["commit"] = scorer.commit
        for log in logs:
            prompt, clip = log.prompt or "", log.finished_clip(run_dir)
            if not prompt or clip is None:
                continue
            cosine = scorer.cosine(read_frames(clip), prompt)
            record["clips"].append(
                {
                    "index": log.index,
                    "prompt": prompt,
                    "cosine": round(cosine, 4),
                    "score": cosine_to_score(cosine),
                }
            )
        scores = [c["score"] for c in record["clips"]]
        record["run_score"] = round(float(np.mean(scores)), 2) if scores else None
    atomic_write_json(run_dir / PROMPT_MATCH_FILE, record)
    return record
