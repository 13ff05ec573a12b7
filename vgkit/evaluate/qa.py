"""Clip QA: numbers measured from decoded frames, each turned into a verdict by a fixed threshold.

Frames are uint8 RGB ``(F, H, W, 3)`` as ``vgkit.finish.encode.read_frames`` decodes them. Brightness and
motion use BT.601 luma on the 0-255 scale. Per clip:

- ``mean_luma`` and ``black_frame_share``: a frame is black when its mean luma is below
  ``BLACK_FRAME_LUMA``; the clip is "effectively black" when at least ``BLACK_SHARE`` of its
  frames are. A black clip gets that verdict alone (it is also static, soft and off-colour).
- ``motion``: mean absolute luma difference between consecutive frames; below ``STATIC_MOTION``
  the clip is "almost static".
- ``drift_delta_e``: CIE76 distance (Lab) between the mean colour of the clip's last frame (what
  the chain hands on) and of the reference image fitted to the run size; above ``DRIFT_DELTA_E``
  the verdict is "colour drifts from the reference". None when no reference was given.
- ``sharpness``: variance of a 4-neighbour Laplacian of luma, averaged over up to
  ``SHARPNESS_SAMPLES`` frames; below ``SOFT_LAPLACIAN_VAR`` the clip is "soft/blurry".
- ``prompt_match``: CLIPScore (100 x cosine of prompt and frame embeddings, floored at 0) from
  ``CLIP_REPO``, only when that checkpoint is in the local HF cache; None otherwise, shown as "n/a",
  never estimated.

Per seam (clip i-1 -> clip i as the stitched video shows it): ``jump`` is the mean absolute luma
difference across the cut and ``within`` the median frame difference inside the two clips; the seam
is visible when ``jump > SEAM_RATIO * max(within, MOTION_FLOOR)`` and ``jump > SEAM_MIN_JUMP``.
Clips are named by their index, as in ``clips/clip_NNN.mp4``.

``run_qa`` measures every finished clip and seam of a run directory and writes ``qa.json``
(schema ``QA_SCHEMA``) there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vgkit.errors import ArtifactError, SpecError
from vgkit.records.artifacts import RunLayout, atomic_write_json, sha256_bytes
from vgkit.records.schema import ClipLog, read_logs, read_manifest

__all__ = [
    "QA_SCHEMA",
    "ClipQA",
    "PromptScorer",
    "SeamQA",
    "clip_qa",
    "load_clip_scorer",
    "run_qa",
    "run_verdicts",
    "seam_qa",
]

QA_SCHEMA = "vgkit.qa/1"
CLIP_REPO = "openai/clip-vit-base-patch32"

BLACK_FRAME_LUMA = 16.0  # mean luma below video black level (16/255): the frame is black
BLACK_SHARE = 0.5  # this share of black frames or more: "effectively black"
STATIC_MOTION = 1.0  # mean |frame difference| in luma levels below this: "almost static"
SEAM_RATIO = 4.0  # a cut this many times the typical in-clip frame difference is a visible seam ...
SEAM_MIN_JUMP = 3.0  # ... and at least this many luma levels
MOTION_FLOOR = 0.5  # typical in-clip difference used at least this large (static clips)
DRIFT_DELTA_E = 15.0  # CIE76 mean-colour distance from the reference above this: colour drift
SOFT_LAPLACIAN_VAR = 30.0  # Laplacian variance of luma below this: "soft/blurry"
SHARPNESS_SAMPLES = 8

BLACK = "effectively black"
STATIC = "almost static"
DRIFT = "colour drifts from the reference"
SOFT = "soft/blurry"
OK = "ok"

PromptScorer = Callable[[np.ndarray, str], float]
"""Scores how well frames ``(F, H, W, 3)`` match a prompt (higher is better)."""


def thresholds() -> dict[str, float]:
    """Every threshold by name (recorded in ``qa.json`` so a verdict can be re-derived)."""
    return {
        "black_frame_luma": BLACK_FRAME_LUMA,
        "black_share": BLACK_SHARE,
        "static_motion": STATIC_MOTION,
        "seam_ratio": SEAM_RATIO,
        "seam_min_jump": SEAM_MIN_JUMP,
        "motion_floor": MOTION_FLOOR,
        "drift_delta_e": DRIFT_DELTA_E,
        "soft_laplacian_var": SOFT_LAPLACIAN_VAR,
    }


def luma(image_hwc: np.ndarray) -> np.ndarray:
    """BT.601 luma (0-255, float32) of one RGB frame ``(H, W, 3)``, or of frames ``(F, H, W, 3)``."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.asarray(image_hwc, dtype=np.float32) @ weights


def frame_diffs(frames_fhwc: np.ndarray) -> np.ndarray:
    """Mean absolute luma difference of each consecutive pair of frames, shape ``(F - 1,)``."""
    pairs = itertools.pairwise(map(luma, frames_fhwc))  # one frame's luma at a time, not the whole clip's
    return np.array([float(np.abs(cur - prev).mean()) for prev, cur in pairs], dtype=np.float64)


def laplacian_var(image_hwc: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a frame's luma (interior pixels)."""
    y = luma(image_hwc)
    if min(y.shape) < 3:
        return 0.0
    lap = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(lap.var())


def _mean_lab(image_hwc: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) of an image's mean sRGB colour."""
    rgb = np.asarray(image_hwc, dtype=np.float64).reshape(-1, 3).mean(axis=0) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def delta_e(image_a_hwc: np.ndarray, image_b_hwc: np.ndarray) -> float:
    """CIE76 distance between the mean colours of two images."""
    return float(np.linalg.norm(_mean_lab(image_a_hwc) - _mean_lab(image_b_hwc)))


@dataclass(frozen=True)
class ClipQA:
    """QA of one clip: the measurements and the verdict phrases they give."""

    index: int
    num_frames: int
    mean_luma: float
    black_frame_share: float
    motion: float
    sharpness: float
    drift_delta_e: float | None
    prompt_match: float | None
    verdicts: tuple[str, ...]


@dataclass(frozen=True)
class SeamQA:
    """The cut from clip ``index - 1`` into clip ``index``."""

    index: int
    jump: float
    within: float
    ratio: float
    visible: bool


def _clip_verdicts(
    black_share: float, motion: float, drift: float | None, sharpness: float, *, frames: int
) -> tuple[str, ...]:
    if black_share >= BLACK_SHARE:
        return (BLACK,)
    verdicts = []
    if frames > 1 and motion < STATIC_MOTION:
        verdicts.append(STATIC)
    if drift is not None and drift > DRIFT_DELTA_E:
        verdicts.append(DRIFT)
    if sharpness < SOFT_LAPLACIAN_VAR:
        verdicts.append(SOFT)
    return tuple(verdicts) or (OK,)


def clip_qa(
    frames_fhwc: np.ndarray,
    *,
    index: int,
    reference_hwc: np.ndarray | None = None,
    prompt: str | None = None,
    scorer: PromptScorer | None = None,
) -> ClipQA:
    """Measure one clip; ``reference_hwc`` must already have the clip's size (``fit_to_size``)."""
    if frames_fhwc.dtype != np.uint8 or frames_fhwc.ndim != 4 or frames_fhwc.shape[-1] != 3 or not len(frames_fhwc):
        raise ValueError(f"frames must be uint8 (F, H, W, 3) with F >= 1, got {frames_fhwc.dtype} {frames_fhwc.shape}")
    frame_luma = np.array([float(luma(f).mean()) for f in frames_fhwc])
    black_share = float((frame_luma < BLACK_FRAME_LUMA).mean())
    diffs = frame_diffs(frames_fhwc)
    motion = float(diffs.mean()) if len(diffs) else 0.0
    picks = np.unique(np.linspace(0, len(frames_fhwc) - 1, SHARPNESS_SAMPLES).round().astype(int))
    sharpness = float(np.mean([laplacian_var(frames_fhwc[i]) for i in picks]))
    drift = None if reference_hwc is None else delta_e(frames_fhwc[-1], reference_hwc)
    match = None if scorer is None or prompt is None else round(float(scorer(frames_fhwc, prompt)), 4)
    return ClipQA(
        index=index,
        num_frames=len(frames_fhwc),
        mean_luma=round(float(frame_luma.mean()), 3),
        black_frame_share=round(black_share, 4),
        motion=round(motion, 4),
        sharpness=round(sharpness, 3),
        drift_delta_e=None if drift is None else round(drift, 3),
        prompt_match=match,
        verdicts=_clip_verdicts(black_share, motion, drift, sharpness, frames=len(frames_fhwc)),
    )


def seam_qa(prev_fhwc: np.ndarray, next_fhwc: np.ndarray, *, index: int, drop_first: bool = True) -> SeamQA:
    """The cut into clip ``index`` as the stitch makes it: ``prev``'s last frame, then ``next``'s
    first shown frame (index 1 when chained clips lose their repeated first frame)."""
    shown = next_fhwc[1:] if drop_first and len(next_fhwc) > 1 else next_fhwc
    jump = float(np.abs(luma(shown[0]) - luma(prev_fhwc[-1])).mean())
    inside = np.concatenate([frame_diffs(prev_fhwc), frame_diffs(shown)])
    within = float(np.median(inside)) if len(inside) else 0.0
    ratio = jump / max(within, MOTION_FLOOR)
    return SeamQA(
        index=index,
        jump=round(jump, 4),
        within=round(within, 4),
        ratio=round(ratio, 3),
        visible=bool(ratio > SEAM_RATIO and jump > SEAM_MIN_JUMP),
    )


def run_verdicts(clips: list[ClipQA], seams: list[SeamQA]) -> list[str]:
    """The run's verdict phrases, each with the clips it applies to; ``["ok"]`` when none."""
    found: dict[str, list[int]] = {}
    for clip in clips:
        for verdict in clip.verdicts:
            if verdict != OK:
                found.setdefault(verdict, []).append(clip.index)
    phrases = [f"{verdict} ({_clip_list(indices, len(clips))})" for verdict, indices in found.items()]
    phrases += [f"visible seam at clip {seam.index}" for seam in seams if seam.visible]
    return phrases or [OK]


def _clip_list(indices: list[int], total: int) -> str:
    if len(indices) == total and total > 1:
        return "all clips"
    return ("clip " if len(indices) == 1 else "clips ") + ", ".join(str(i) for i in indices)


def load_clip_scorer(repo_id: str = CLIP_REPO) -> PromptScorer | None:
    """A CLIPScore scorer from the local HF cache, or None when ``repo_id`` is not cached there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    from vgkit.settings import hub_cache_dir

    try:
        path = snapshot_download(repo_id, local_files_only=True, cache_dir=hub_cache_dir())
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None
    from transformers import CLIPModel, CLIPProcessor

    from vgkit.evaluate.clip_score import mean_cosine

    model = CLIPModel.from_pretrained(path, use_safetensors=True).eval()
    processor = CLIPProcessor.from_pretrained(path)

    def score(frames_fhwc: np.ndarray, prompt: str) -> float:
        return max(100.0 * mean_cosine(model, processor, frames_fhwc, prompt, frames=4), 0.0)

    return score


def _reference(path: Path, first_log: ClipLog) -> np.ndarray:
    """The reference image fitted to the run size; it must be the one clip 0 started from."""
    from vgkit.spec.images import fit_to_size, load_rgb

    if not path.is_file():
        raise SpecError(f"reference = '{path}': no such file; fix: pass the spec's reference_image")
    size = first_log.effective
    fitted = fit_to_size(load_rgb(path), width=size.width or 0, height=size.height or 0)
    recorded = first_log.input.sha256 if first_log.input is not None else None
    if first_log.index == 0 and recorded and _png_sha(fitted) != recorded:
        raise SpecError(
            f"reference = '{path}': not the image clip 0 started from (sha256 differs from "
            "logs/log_000.json input); fix: pass the spec's reference_image"
        )
    return fitted


def _png_sha(image_hwc: np.ndarray) -> str:
    from vgkit.spec.images import png_bytes

    return sha256_bytes(png_bytes(image_hwc))


def run_qa(run_dir: Path, *, reference: Path | None = None, clip_repo: str | None = CLIP_REPO) -> dict[str, Any]:
    """Measure every finished clip and seam of ``run_dir``, write ``qa.json`` there and return it.

    Without ``reference`` colour drift is not measured (None). Prompt match needs ``clip_repo`` in
    the local HF cache (None otherwise, or when ``clip_repo`` is None).
    """
    from vgkit.finish.encode import read_frames

    layout = RunLayout(run_dir)
    logs = [log for log in read_logs(run_dir) if log.finished_clip(run_dir) is not None]
    if not logs:
        raise ArtifactError(f"{run_dir}: no finished clip (logs/log_NNN.json with its clip); nothing to check")
    reference_hwc = None if reference is None else _reference(reference, logs[0])
    scorer = load_clip_scorer(clip_repo) if clip_repo else None
    drop_first = True
    if layout.manifest.is_file():
        drop_first = bool(read_manifest(run_dir).stitch.get("drop_first_frame_of_chained_clips"))
    clips: list[ClipQA] = []
    seams: list[SeamQA] = []
    prev: tuple[int, np.ndarray] | None = None
    for log in logs:
        frames = read_frames(layout.root / log.artifacts["clip"].path)
        index = log.index
        clips.append(clip_qa(frames, index=index, reference_hwc=reference_hwc, prompt=log.prompt, scorer=scorer))
        if prev is not None and prev[0] == index - 1:
            seams.append(seam_qa(prev[1], frames, index=index, drop_first=drop_first))
        prev = (index, frames)
    record = {
        "schema": QA_SCHEMA,
        "run": run_dir.name,
        "model": logs[0].model.name if logs[0].model is not None else None,
        "thresholds": thresholds(),
        "reference": None
        if reference_hwc is None
        else {"path": str(reference), "fitted_sha256": _png_sha(reference_hwc)},
        "prompt_match_model": clip_repo if scorer is not None else None,
        "clips": [asdict(c) | {"verdicts": list(c.verdicts)} for c in clips],
        "seams": [asdict(s) for s in seams],
        "verdicts": run_verdicts(clips, seams),
    }
    atomic_write_json(layout.root / "qa.json", record)
    return record
