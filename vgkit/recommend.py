"""Recommendations derived from a sweep's runs, each tied to the evidence that triggered it.

A recommendation is one sentence of advice plus its evidence: which run, which failure kind (the
vocabulary of ``vgkit.failures``) or which measured figure. Rules, in the order they print:

- ``out-of-memory`` -> a low-memory preset (offload, VAE tiling) or a smaller size;
- ``kwargs`` -> filter call arguments by the pipeline's signature (the rejected one named);
- ``shape`` / ``layout`` -> fix the model adapter (image conditioning, sizes) or the checkpoint
  layout before judging creative quality;
- ``timeout`` -> fewer steps or frames, a faster preset, or a longer limit;
- ``infeasible`` -> the cost planner refused the plan on this card (its projected fixes quoted);
- ``interrupted`` / an SSH loss -> kill the remote process group, then resume;
- ``other`` -> reproduce the model alone and read the failure detail;
- a clip whose prompt match is below ``LOW_PROMPT_MATCH`` /10 on a multi-beat shot (its action has
  "then" or ";": ``beats``) -> keyframe-first: a ``source_image`` per major beat.

Failure kinds come from ``failure.json``'s ``kind`` when the sweep wrote one, else from
``vgkit.failures.classify`` applied to the recorded error class and message (the supervised worker
hands back the class and message, not the exception).
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vgkit import errors

if TYPE_CHECKING:
    from vgkit.report import RunSummary

__all__ = [
    "KINDS",
    "LOW_PROMPT_MATCH",
    "Recommendation",
    "beats",
    "failure_kind",
    "kind_sentence",
    "lower_memory_preset",
    "recommend",
]

KINDS = ("out-of-memory", "timeout", "layout", "kwargs", "shape", "infeasible", "interrupted", "other")
# vgkit.failures' older spellings (accepted until the unified vocabulary is merged).
_SPELLINGS = {"layout-mismatch": "layout", "kwargs-mismatch": "kwargs", "shape-error": "shape"}
LOW_PROMPT_MATCH = 4.0  # /10: below this a clip "does not show its prompt"
_SSH_MARKERS = ("ssh", "connection reset", "connection lost", "broken pipe", "host unreachable")


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
    return _SENTENCES[_normal(kind)]


def _normal(kind: str) -> str:
    kind = _SPELLINGS.get(kind, kind)
    return kind if kind in KINDS else "other"


def _exception(error_class: str, message: str) -> BaseException:
    """A stand-in for the recorded exception: its class by name (vgkit's or a built-in), with the
    wrapped pipeline error (``"TypeError: ..."`` in a GenerationError's message) as its cause."""
    outer_cls = getattr(errors, error_class, None) or getattr(builtins, error_class, None)
    if not (isinstance(outer_cls, type) and issubclass(outer_cls, BaseException)):
        outer_cls = RuntimeError
    outer = outer_cls(message)
    if m := re.search(r"\b([A-Z][A-Za-z]*(?:Error|Exception)): (.*)", message):
        inner_cls = getattr(builtins, m.group(1), None)
        if isinstance(inner_cls, type) and issubclass(inner_cls, BaseException) and inner_cls is not outer_cls:
            outer.__cause__ = inner_cls(m.group(2))
    return outer


def failure_kind(failure: dict[str, Any]) -> str:
    """The failure kind (``KINDS``) of a ``failure.json`` record or a failed clip's log."""
    from vgkit.failures import classify

    if failure.get("kind"):
        return _normal(str(failure["kind"]))
    error_class = str(failure.get("error_class") or "")
    message = str(failure.get("message") or failure.get("failure") or "")
    if error_class == "InfeasiblePlanError":
        return "infeasible"
    if error_class in ("RemoteConnectionError", "WorkerKilledError", "KeyboardInterrupt") or any(
        m in message.lower() for m in _SSH_MARKERS
    ):
        return "interrupted"
    if error_class == "GuardrailError":
        return "timeout"
    return _normal(classify(_exception(error_class, message)).kind)


def beats(prompt: str) -> int:
    """How many beats a composed prompt's first sentence ("Subject, action.") asks for: one, plus
    one per "then" or ";" (``vgkit.prompt.compose_prompt`` puts subject and action first)."""
    first = prompt.split(". ", 1)[0]
    return 1 + len(re.findall(r"\bthen\b|;", first, flags=re.IGNORECASE))


_EVIDENCE_CHARS = 240


def _first_line(failure: dict[str, Any]) -> str:
    """The message's first line, cut at a word boundary with "..." when long."""
    text = str(failure.get("message") or failure.get("failure") or "no message").strip()
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


def _evidence(run: RunSummary, failure: dict[str, Any], kind: str) -> str:
    where = f" at stage {failure['stage']}" if failure.get("stage") else ""
    figure = ""
    if kind == "out-of-memory":
        used = run.settings.get("preset", "").split(" (")[0] or None
        if run.peak_gpu_bytes is not None:
            figure = f", peak GPU memory {run.peak_gpu_bytes / 2**30:.1f} GiB"
        if lean := lower_memory_preset(run.model, used):
            figure += f", preset {used or 'n/a'}; try preset {lean}"
    if kind == "timeout" and failure.get("elapsed_s") is not None:
        figure = f", after {float(failure['elapsed_s']):.1f} s"
    if kind == "kwargs" and (m := re.search(r"keyword argument '(\w+)'", _first_line(failure))):
        figure = f", rejected `{m.group(1)}`"
    error = failure.get("error_class") or failure.get("failure_class") or "failure"
    return f"{run.model} [{kind}{where}{figure}]: {error}: {_first_line(failure)}"


def recommend(runs: list[RunSummary]) -> list[Recommendation]:
    """Every recommendation the runs support, each with its evidence (none when nothing failed
    and every scored clip matched its prompt)."""
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for run in runs:
        records = ([run.failure] if run.failure else []) + run.clip_failures
        for failure in records:
            kind = failure_kind(failure)
            by_kind.setdefault(kind, []).append((run.model, _evidence(run, failure, kind)))
    found: list[Recommendation] = []
    for kind in KINDS:
        if kind in by_kind:
            models = ", ".join(dict.fromkeys(model for model, _ in by_kind[kind]))
            evidence = list(dict.fromkeys(line for _, line in by_kind[kind]))
            found.append(Recommendation(kind, _ADVICE[kind].format(models=models), evidence))
    weak: list[tuple[str, str]] = []
    for run in runs:
        for clip in run.prompt_clips:
            if clip["score"] < LOW_PROMPT_MATCH and (n := beats(clip["prompt"])) > 1:
                weak.append(
                    (
                        run.model,
                        f"{run.model} clip {clip['index']}: prompt match {clip['score']:.1f}/10 "
                        f"(< {LOW_PROMPT_MATCH:g}) on a {n}-beat shot",
                    )
                )
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
