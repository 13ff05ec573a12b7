"""The shot board: a run as a gallery, one card per shot of its plan.

Each card shows what the run's records hold about the shot, and nothing estimated:

- a preview (``read_board(preview=...)``): ``"animated"``, a short GIF (``PREVIEW_FRAMES`` frames
  spread over the clip, at most ``PREVIEW_WIDTH_PX`` wide) embedded as a data URI, so it shows in
  untrusted notebooks too; ``"still"``, the clip's lossless last frame (``frames/last_frame_NNN.png``)
  scaled and embedded; ``"linked"``, that last frame by a relative path, nothing embedded (the sweep
  report, which sits beside its run folders);
- the shot card as planned (``plan.json``): prompt, camera, frames and seconds, keyframe image;
- the seed the clip was made with (its log's request, else the plan's);
- timings from its clip log (denoise, VAE decode, encode + save, total) and whether the log is ok;
- QA verdicts from ``qa.json`` (vgkit.evaluate.qa): the clip's own and the seam into it; "not measured"
  when the run has no ``qa.json`` or a clip log is newer than it (``read_board(..., measure_qa=True)``
  measures it then);
- its other takes (``takes/``, vgkit.generate.takes): each one's last frame and seed, "picked" for the
  one that is the run's clip, and for the others the ``vgkit pick`` command that makes it so.

Records come from vgkit.records.schema (``read_plan``/``read_logs``); a clip whose log is missing or
not ``ok`` shows why instead of a preview. ``ShotBoard.html()`` is the notebook/page fragment,
``ShotBoard.markdown()`` the report's table and ``ShotBoard.lines()`` a plain-text summary
(no timings, so headless output stays comparable). ``boards_html``/``boards_markdown`` are the
sweep report's section: one board per run.
"""

from __future__ import annotations

import base64
import io
import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from html import escape
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vgkit.errors import ArtifactError
from vgkit.records.artifacts import RunLayout, read_json_object
from vgkit.records.schema import ClipLog, Plan, PlanClip, Timings, read_logs, read_plan

__all__ = ["PREVIEW_FRAMES", "ShotBoard", "ShotCard", "boards_html", "boards_markdown", "preview_gif", "read_board"]

Preview = Literal["animated", "still", "linked"]
PREVIEW_FRAMES = 12  # frames of the animated preview, spread evenly over the clip
PREVIEW_WIDTH_PX = 192
NOT_MEASURED = "not measured"

CSS = """
.vgkit-board { display: flex; flex-wrap: wrap; gap: 10px; font: 13px/1.4 system-ui, sans-serif; }
.vgkit-shot { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px; width: 220px; }
.vgkit-shot h4 { margin: 0 0 4px; font-size: 14px; }
.vgkit-shot img { width: 100%; image-rendering: auto; background: #eee; display: block; }
.vgkit-shot .prompt { color: #1d232a; margin: 4px 0; max-height: 7.2em; overflow: auto; }
.vgkit-shot .meta { color: #57606a; font-size: 12px; }
.vgkit-badge { display: inline-block; border-radius: 10px; padding: 0 6px; margin: 1px; font-size: 11px; }
.vgkit-badge.ok { background: #dafbe1; color: #1a7f37; } .vgkit-badge.warn { background: #fff8c5; color: #9a6700; }
.vgkit-take { margin: 2px 0; } .vgkit-take code { font-size: 10px; word-break: break-all; }
.vgkit-badge.na { background: #eaeef2; color: #57606a; } .vgkit-badge.bad { background: #ffebe9; color: #cf222e; }
"""


@dataclass(frozen=True)
class TakeCard:
    """Another take of a shot (vgkit.generate.takes): its seed, state, last frame and whether it is the clip."""

    seed: int
    status: str  # "ok", "failed", "aborted" or "running or killed" (no log yet)
    picked: bool  # the run's clip is this take (same seed and clip bytes)
    clip: Path | None
    last_frame: Path | None
    preview: tuple[str, bytes] | None = field(default=None, repr=False)

    def pick_hint(self, run_dir: Path, index: int) -> str:
        return f"vgkit pick SPEC --out {run_dir} --shot {index} --take {self.seed}"


@dataclass(frozen=True)
class ShotCard:
    """One shot of a run: its planned card, the record of its clip (if any) and its QA."""

    index: int
    prompt: str
    camera: str | None
    num_frames: int
    seconds: float
    seed: int | None
    source_image: str | None
    status: str  # "ok", "failed", "aborted" or "not made"
    detail: str  # the failure message of a failed clip; "" otherwise
    timings: Timings
    verdicts: tuple[str, ...]  # the clip's QA verdicts; (NOT_MEASURED,) without qa.json
    seam: str | None  # the seam into this shot as QA saw it ("clean", "visible ..."); None for shot 0
    clip: Path | None
    last_frame: Path | None
    preview: tuple[str, bytes] | None = field(default=None, repr=False)  # (MIME type, bytes)
    takes: tuple[TakeCard, ...] = ()

    def line(self) -> str:
        """The card as one line of text (no timings: headless output stays comparable)."""
        head = f"shot {self.index}: {self.status}, seed {self.seed}, {self.num_frames} frames ({self.seconds:.2f} s)"
        camera = f", camera {self.camera}" if self.camera else ""
        seam = f", seam {self.seam}" if self.seam else ""
        failure = f" ({self.detail})" if self.detail else ""
        takes = ", ".join(f"{t.seed} ({'picked' if t.picked else t.status})" for t in self.takes)
        takes = f", takes: {takes}" if takes else ""
        return f"{head}{camera}, QA: {', '.join(self.verdicts) or 'no clip'}{seam}{failure}{takes}"


@dataclass(frozen=True)
class ShotBoard:
    """Every shot of one run, in plan order."""

    run_dir: Path
    model: str
    fps: int
    cards: tuple[ShotCard, ...]

    def lines(self) -> list[str]:
        return [f"{self.model}: {len(self.cards)} shots ({self.run_dir.name})", *(c.line() for c in self.cards)]

    def html(self, *, base: Path | None = None) -> str:
        """The board as an HTML fragment; clip links (and linked previews) are relative to ``base``
        (the page's folder, by default the working directory: a notebook's folder in JupyterLab)."""
        cards = "".join(_card_html(card, run_dir=self.run_dir, base=base) for card in self.cards)
        title = f"{escape(self.model)}: {len(self.cards)} shots ({escape(self.run_dir.name)})"
        return f"<style>{CSS}</style><div class=vgkit-board><b style='flex-basis:100%'>{title}</b>{cards}</div>"

    def markdown(self, *, out: Path | None = None) -> list[str]:
        """The board as Markdown table lines; image and clip links relative to ``out`` (the report folder)."""
        lines = [
            "| Shot | Last frame | Seed | Frames | Denoise | VAE decode | Total | QA | Seam |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        for c in self.cards:
            picture = c.status
            if c.last_frame is not None and c.clip is not None:
                picture = f"[![shot {c.index}]({_relative(c.last_frame, out)})]({_relative(c.clip, out)})"
            t, qa = c.timings, ", ".join(c.verdicts) or "no clip"
            lines.append(
                f"| {c.index} | {picture} | {c.seed} | {c.num_frames} | {_seconds(t.denoise_s)} | "
                f"{_seconds(t.decode_s)} | {_seconds(t.total_s)} | {qa} | {c.seam or ''} |"
            )
        return lines


def _relative(path: Path, out: Path | None) -> str:
    return Path(os.path.relpath(path, out) if out is not None else path).as_posix()


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def _badge(verdict: str) -> str:
    kind = "ok" if verdict in ("ok", "clean") else "na" if verdict == NOT_MEASURED else "warn"
    return f"<span class='vgkit-badge {kind}'>{escape(verdict)}</span>"


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _picture(card: ShotCard | TakeCard, base: Path | None) -> str | None:
    """The card's embedded preview as a data URI, else its last frame's URL relative to ``base``."""
    from vgkit.evaluate.players import video_url

    if card.preview is not None:
        return data_uri(*card.preview)
    return None if card.last_frame is None else video_url(card.last_frame, base=base)


def _card_html(card: ShotCard, *, run_dir: Path, base: Path | None) -> str:
    from vgkit.evaluate.players import video_url

    source = _picture(card, base)
    picture = (
        f"<img alt='shot {card.index}' src='{escape(source)}'>"
        if source
        else f"<div class=meta>{escape(card.status)}</div>"
    )
    link = ""
    if card.clip is not None:
        link = f" · <a href='{escape(video_url(card.clip, base=base))}' target=_blank>{escape(card.clip.name)}</a>"
    t = card.timings
    timing = (
        f"denoise {_seconds(t.denoise_s)} · decode {_seconds(t.decode_s)} · "
        f"encode {_seconds(t.encode_s)} · total {_seconds(t.total_s)}"
        if card.status != "not made"
        else "not made yet"
    )
    keyframe = f"<div class=meta>keyframe: {escape(card.source_image)}</div>" if card.source_image else ""
    status = "" if card.status in ("ok", "not made") else f"<span class='vgkit-badge bad'>{escape(card.status)}</span>"
    detail = f"<div class=meta>{escape(card.detail)}</div>" if card.detail else ""
    seam = f"<div class=meta>seam in: {_badge(card.seam)}</div>" if card.seam else ""
    camera = f" · {escape(card.camera)}" if card.camera else ""
    takes = _takes_html(card, run_dir=run_dir, base=base)
    return (
        f"<div class=vgkit-shot><h4>Shot {card.index} {status}</h4>{picture}"
        f"<div class=meta>seed {card.seed} · {card.num_frames} frames ({card.seconds:.2f} s){camera}{link}</div>"
        f"<div class=prompt>{escape(card.prompt)}</div>{keyframe}"
        f"<div class=meta>{timing}</div>{detail}<div>{''.join(_badge(v) for v in card.verdicts)}</div>{seam}"
        f"{takes}</div>"
    )


def _takes_html(card: ShotCard, *, run_dir: Path, base: Path | None) -> str:
    """The shot's takes: a small last frame each, its seed, and the command that picks it."""
    from vgkit.evaluate.players import video_url

    if not card.takes:
        return ""
    items = []
    for take in card.takes:
        source = _picture(take, base)
        picture = f"<img alt='take {take.seed}' src='{escape(source)}' style='width:64px'>" if source else ""
        if take.clip is not None:
            picture = f"<a href='{escape(video_url(take.clip, base=base))}' target=_blank>{picture or 'clip'}</a>"
        if take.picked:
            state = "<span class='vgkit-badge ok'>picked</span>"
        elif take.status == "ok":
            state = f"<code title='pick it, then resume the run'>{escape(take.pick_hint(run_dir, card.index))}</code>"
        else:
            state = f"<span class='vgkit-badge warn'>{escape(take.status)}</span>"
        items.append(f"<div class=vgkit-take>{picture} seed {take.seed} {state}</div>")
    return f"<div class=meta><b>takes</b>{''.join(items)}</div>"


def preview_gif(video: Path, *, frames: int = PREVIEW_FRAMES, width_px: int = PREVIEW_WIDTH_PX) -> bytes:
    """A looping GIF of ``frames`` frames spread evenly over ``video``, at most ``width_px`` wide.

    ffmpeg scales while decoding, so a 720p clip never sits in memory at full size. The GIF plays
    the clip in about its own duration.
    """
    import imageio_ffmpeg
    from PIL import Image

    scale = f"scale='min({width_px},iw)':-2:flags=area"  # never upscaled
    logger = logging.getLogger("imageio_ffmpeg")  # it warns that the size read differs from the source's
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        reader = imageio_ffmpeg.read_frames(str(video), pix_fmt="rgb24", output_params=["-vf", scale])
        meta = next(reader)
        width, height = meta["size"]  # what the filter gives
        decoded = [np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3) for buf in reader]
    finally:
        logger.setLevel(level)
    if not decoded:
        raise ArtifactError(f"{video}: no frame could be decoded; fix: re-run the run to make the clip again")
    picks = sorted({round(i * (len(decoded) - 1) / max(frames - 1, 1)) for i in range(frames)})
    images = [Image.fromarray(decoded[i]) for i in picks]
    fps = float(meta.get("fps") or 24)
    frame_ms = max(20, round(1000 * len(decoded) / fps / len(images)))
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return buffer.getvalue()


def _still(path: Path) -> bytes:
    """The PNG at ``path`` scaled to ``PREVIEW_WIDTH_PX`` wide."""
    from PIL import Image

    from vgkit.spec.images import png_bytes

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        height = max(1, round(PREVIEW_WIDTH_PX * rgb.height / rgb.width))
        return png_bytes(np.asarray(rgb.resize((PREVIEW_WIDTH_PX, height), Image.Resampling.LANCZOS)))


def _qa(run_dir: Path, clip_indices: list[int], *, measure: bool) -> dict[str, Any] | None:
    """``qa.json`` of the run, unless a clip log is newer (a clip made again after QA); measured
    first when ``measure`` and missing or older; None without a current one."""
    from vgkit.evaluate.qa import QA_SCHEMA, run_qa

    path = run_dir / "qa.json"
    qa = read_json_object(path)
    layout = RunLayout(run_dir)
    log_paths = [layout.log(i) for i in clip_indices if layout.log(i).is_file()]
    stale = qa is not None and any(log.stat().st_mtime > path.stat().st_mtime for log in log_paths)
    if qa is None or qa.get("schema") != QA_SCHEMA or stale:
        qa = run_qa(run_dir) if measure else None
    return qa


def _verdicts(qa: dict[str, Any] | None, index: int) -> tuple[tuple[str, ...], str | None]:
    if qa is None:
        return (NOT_MEASURED,), (NOT_MEASURED if index > 0 else None)
    clip = next((c for c in qa.get("clips", []) if c.get("index") == index), None)
    verdicts = tuple(clip["verdicts"]) if clip is not None else (NOT_MEASURED,)
    seam = next((s for s in qa.get("seams", []) if s.get("index") == index), None)
    if index == 0:
        return verdicts, None
    if seam is None:
        return verdicts, NOT_MEASURED
    return verdicts, f"visible (jump {seam['ratio']:.1f}x in-clip motion)" if seam["visible"] else "clean"


def _card(clip: PlanClip, log: ClipLog | None, *, plan: Plan, run_dir: Path, qa: Any, preview_as: Preview) -> ShotCard:
    status = "not made" if log is None else log.status
    detail = "" if log is None or log.failure is None else log.failure.message.splitlines()[0][:200]
    seed = log.request.get("seed") if log is not None and log.request else clip.seed
    video = log.finished_clip(run_dir) if log is not None else None
    last = RunLayout(run_dir).last_frame(clip.index) if video is not None else None
    last = last if last is not None and last.is_file() else None
    preview = None
    if video is not None and preview_as == "animated":
        preview = ("image/gif", preview_gif(video))
    elif last is not None and preview_as == "still":
        preview = ("image/png", _still(last))
    verdicts, seam = _verdicts(qa, clip.index) if video is not None else ((), None)
    clip_sha = log.artifacts["clip"].sha256 if video is not None and log is not None else None
    return ShotCard(
        index=clip.index,
        prompt=clip.prompt,
        camera=clip.camera,
        num_frames=clip.num_frames,
        seconds=float(Fraction(clip.num_frames, plan.fps)),
        seed=seed,
        source_image=clip.source_image,
        status=status,
        detail=detail,
        timings=log.timings_s if log is not None and log.status == "ok" else Timings(),
        verdicts=verdicts,
        seam=seam,
        clip=video,
        last_frame=last,
        preview=preview,
        takes=_take_cards(run_dir, clip.index, clip_sha=clip_sha, embed=preview_as != "linked"),
    )


def _take_cards(run_dir: Path, index: int, *, clip_sha: str | None, embed: bool) -> tuple[TakeCard, ...]:
    from vgkit.generate.takes import read_takes

    cards = []
    for take in read_takes(run_dir, index):
        status = "running or killed" if take.log is None else take.log.status
        record = take.log.artifacts.get("clip") if take.log is not None else None
        cards.append(
            TakeCard(
                seed=take.seed,
                status=status,
                picked=take.ok and record is not None and record.sha256 == clip_sha,
                clip=take.clip if take.ok else None,
                last_frame=take.last_frame if take.ok else None,
                preview=("image/png", _still(take.last_frame)) if embed and take.ok else None,
            )
        )
    return tuple(cards)


def read_board(run_dir: Path, *, preview: Preview = "animated", measure_qa: bool = False) -> ShotBoard:
    """The shot board of ``run_dir`` (its ``plan.json`` must exist; ``FileNotFoundError`` otherwise).

    ``preview`` is how each clip is pictured (module docstring; ``"animated"`` decodes each clip
    once, scaled). ``measure_qa`` writes ``qa.json`` (vgkit.evaluate.qa) when the run has none.
    """
    run_dir = Path(run_dir)
    plan = read_plan(run_dir)
    logs = {log.index: log for log in read_logs(run_dir, lenient=True)}
    has_clip = any(log.finished_clip(run_dir) is not None for log in logs.values())
    qa = _qa(run_dir, [clip.index for clip in plan.clips], measure=measure_qa and has_clip)
    cards = tuple(
        _card(clip, logs.get(clip.index), plan=plan, run_dir=run_dir, qa=qa, preview_as=preview) for clip in plan.clips
    )
    return ShotBoard(run_dir=run_dir, model=plan.model or run_dir.name, fps=plan.fps, cards=cards)


def _boards(run_dirs: list[Path]) -> list[ShotBoard | Path]:
    """A board per run; a run without a readable plan stays its path (shown as "no plan")."""
    boards: list[ShotBoard | Path] = []
    for run_dir in run_dirs:
        try:
            boards.append(read_board(run_dir, preview="linked"))
        except (FileNotFoundError, ArtifactError):
            boards.append(Path(run_dir))
    return boards


def boards_html(run_dirs: list[Path], *, out_dir: Path | None = None) -> str:
    """The sweep report's Shot Boards section: one board per run, each shot's last frame linked by a
    path relative to ``out_dir`` (nothing embedded: the Shots Across Models section plays the clips)."""
    parts = [
        board.html(base=out_dir) if isinstance(board, ShotBoard) else f"<p>{escape(board.name)}: no plan.json</p>"
        for board in _boards(run_dirs)
    ]
    return "".join(parts) or "<p>n/a</p>"


def boards_markdown(
    run_dirs: list[Path], *, out: Path | None = None, labels: dict[Path, str] | None = None
) -> list[str]:
    """The Markdown report's Shot Boards section: per run, under its label (``labels``, else its
    model), a table with each shot's last frame (linking its clip), seed, timings and QA."""
    lines: list[str] = []
    for board in _boards(run_dirs):
        if isinstance(board, Path):
            lines += [f"### {board.name}", "", "No plan.json.", ""]
            continue
        lines += [f"### {(labels or {}).get(board.run_dir, board.model)}", "", *board.markdown(out=out), ""]
    return lines or ["n/a"]
