"""Recommendations derived from a sweep's runs, each tied to the evidence that triggered it.

A recommendation is one sentence of advice (``_ADVICE``, one per failure kind, in the order of
``KINDS``) plus its evidence: which run, which failure kind or which measured figure. Then, for a
clip whose prompt match is below ``LOW_PROMPT_MATCH`` /10 on a multi-beat shot (its action has
"then" or ";": ``beats``): keyframe-first, a ``source_image`` per major beat.

Failure kinds are the failure records' ``kind`` (the unified vocabulary of ``vgkit.records.failures``):
``failure.json`` as the sweep writes it, and a failed clip's log ``failure`` (``vgkit.records.schema``). A
record without a kind the vocabulary names counts as ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vgkit import errors
from vgkit.records.failures import KINDS

if TYPE_CHECKING:
    from vgkit.evaluate.report.summary import RunSummary
    from vgkit.records.schema import ClipLog

__all__ = ["KINDS", "Recommendation", "beats", "failure_kind", "kind_sentence", "recommend"]

LOW_PROMPT_MATCH = 4.0  # /10: below this a clip "does not show its prompt"


@dataclass
class Recommendation:
    """``text``: the advice; ``evidence``: one line per run (or clip) that triggered it."""

    rule: str
    text: str
    evidence: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.text} Evidence: {'; '.join(self.evidence)}."


_SENTENCES = {
    "out-of-memory": "Out of memory",
    "timeout": "Ran past its time limit",
    "layout": "Checkpoint layout mismatch (missing files or not the diffusers layout)",
    "kwargs": "Runtime API mismatch: the pipeline rejected a call argument",
    "shape": "Tensor shape mismatch in the model adapter (image conditioning, size or frame count)",
    "infeasible": "Refused by the cost planner: infeasible on this card",
    "interrupted": "Interrupted (connection lost or worker killed)",
    "other": "Failed (unclassified)",
}


def kind_sentence(kind: str) -> str:
    """The verdict's opening words for a failure kind."""
    return _SENTENCES[kind if kind in KINDS else "other"]


def failure_kind(record: Mapping[str, Any] | None) -> str:
    """The failure kind (``KINDS``) a ``failure.json`` record names; ``other`` when it names none."""
    kind = (record or {}).get("kind")
    return kind if isinstance(kind, str) and kind in KINDS else "other"


@dataclass(frozen=True)
class _Failed:
    """One failure as a recommendation's evidence cites it: a run's or a clip's."""

    kind: str
    where: str  # " at stage load", " clip 1 during denoise", or ""
    error_class: str
    message: str
    elapsed_s: float | None = None

    @classmethod
    def of_run(cls, record: Mapping[str, Any]) -> _Failed:
        elapsed = record.get("elapsed_s")
        return cls(
            kind=failure_kind(record),
            where=f" at stage {record['stage']}" if record.get("stage") else "",
            error_class=str(record.get("error_class") or "failure"),
            message=str(record.get("message") or ""),
            elapsed_s=float(elapsed) if isinstance(elapsed, int | float) else None,
        )

    @classmethod
    def of_clip(cls, log: ClipLog) -> _Failed:
        failure = log.failure
        phase = f" during {failure.phase}" if failure is not None and failure.phase else ""
        return cls(
            kind=failure.kind if failure is not None and failure.kind in KINDS else "other",
            where=f" clip {log.index}{phase}",
            error_class=(failure.error_class if failure is not None else "") or "failure",
            message=failure.message if failure is not None else "",
        )


def beats(prompt: str) -> int:
    """How many beats a composed prompt's first sentence ("Subject, action.") asks for: one, plus
    one per "then" or ";" (``vgkit.spec.prompt.compose_prompt`` puts subject and action first)."""
    first = prompt.split(". ", 1)[0]
    return 1 + len(re.findall(r"\bthen\b|;", first, flags=re.IGNORECASE))


_EVIDENCE_CHARS = 240


def _first_line(message: str) -> str:
    """The message's first line, cut at a word boundary with "..." when long."""
    text = (message or "no message").strip()
    line = (text.splitlines() or [""])[0]
    if len(line) <= _EVIDENCE_CHARS:
        return line
    return line[:_EVIDENCE_CHARS].rsplit(" ", 1)[0].rstrip(",;:") + " ..."


_ADVICE = {
    "out-of-memory": "Use a low-memory preset (model offload, VAE tiling) or a smaller size for {models} "
    "before making it a default.",
    "kwargs": "Filter call arguments by the pipeline's signature for {models}; drop the rejected ones.",
    "shape": "Fix the model adapter's image conditioning and size/frame rules for {models} before judging "
    "creative quality.",
    "layout": "Fix the checkpoint layout for {models}: fetch the diffusers-format repo at its pinned revision "
    "(`vgkit prefetch --model NAME`).",
    "timeout": "Give {models} fewer steps or frames, a faster preset, or a longer limit.",
    "infeasible": "{models} cannot meet the plan on this card by the cost planner's projection: take a "
    "projected fix (preset, size, steps) or a larger card.",
    "interrupted": "After an SSH loss or a killed worker, end the remote process group "
    "(`vgkit remote kill NAME`) so no stale GPU job stays, then resume {models}.",
    "other": "Reproduce {models} alone with `vgkit run` and read the failure detail; the failure is unclassified.",
}


def lower_memory_preset(model: str, used: str | None) -> str | None:
    """The model's preset that saves the most memory, other than ``used``: offload first, then
    VAE tiling, then the smallest generation size (``"4090 (group offload, VAE tiling, 0.62x
    size)"``), or None for an unknown model or one without such a preset."""
    from vgkit.models import adapter

    try:
        presets = [p for p in adapter(model).presets if p.device != "cpu" and p.name != used]
    except errors.SpecError:
        return None
    lean = [p for p in presets if p.offload != "none" or p.vae_tiling or p.size_scale < 1.0]
    if not lean:
        return None
    best = min(lean, key=lambda p: (p.offload == "none", not p.vae_tiling, p.size_scale))
    parts = [f"{best.offload} offload" if best.offload != "none" else "", "VAE tiling" if best.vae_tiling else ""]
    parts.append(f"{best.size_scale:.2f}x size" if best.size_scale < 1.0 else "")
    return f"{best.name} ({', '.join(p for p in parts if p)})"


def _evidence(run: RunSummary, failed: _Failed) -> str:
    figure = ""
    if failed.kind == "out-of-memory":
        used = run.settings.get("preset", "").split(" (")[0] or None
        if run.peak_gpu_bytes is not None:
            figure = f", peak GPU memory {run.peak_gpu_bytes / 2**30:.1f} GiB"
        if lean := lower_memory_preset(run.model, used):
            figure += f", preset {used or 'n/a'}; try preset {lean}"
    if failed.kind == "timeout" and failed.elapsed_s is not None:
        figure = f", after {failed.elapsed_s:.1f} s"
    if failed.kind == "kwargs" and (m := re.search(r"keyword argument '(\w+)'", _first_line(failed.message))):
        figure = f", rejected `{m.group(1)}`"
    return f"{run.label} [{failed.kind}{failed.where}{figure}]: {failed.error_class}: {_first_line(failed.message)}"


def recommend(runs: list[RunSummary]) -> list[Recommendation]:
    """Every recommendation the runs support, each with its evidence (none when nothing failed
    and every scored clip matched its prompt)."""
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for run in runs:
        failures = ([_Failed.of_run(run.failure)] if run.failure else []) + [
            _Failed.of_clip(log) for log in run.clip_failures
        ]
        for failed in failures:
            by_kind.setdefault(failed.kind, []).append((run.model, _evidence(run, failed)))
    found: list[Recommendation] = []
    for kind in KINDS:
        if kind in by_kind:
            models = ", ".join(dict.fromkeys(model for model, _ in by_kind[kind]))
            evidence = list(dict.fromkeys(line for _, line in by_kind[kind]))
            found.append(Recommendation(kind, _ADVICE[kind].format(models=models), evidence))
    weak = [
        (
            run.model,
            f"{run.label} clip {clip['index']}: prompt match {clip['score']:.1f}/10 "
            f"(< {LOW_PROMPT_MATCH:g}) on a {n}-beat shot",
        )
        for run in runs
        for clip in run.prompt_clips
        if clip["score"] < LOW_PROMPT_MATCH and (n := beats(clip["prompt"])) > 1
    ]
    if weak:
        models = ", ".join(dict.fromkeys(model for model, _ in weak))
        found.append(
            Recommendation(
                "keyframe-first",
                f"Split multi-beat shots keyframe-first for {models}: one shot per major beat, each with "
                "its own `source_image`.",
                [line for _, line in weak],
            )
        )
    return found
