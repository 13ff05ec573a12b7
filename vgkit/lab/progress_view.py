"""Progress of a run in a notebook: a live widget (bars per clip and for the run, steps/s, ETAs,
phase, a thumbnail of each clip's last frame) or, headless, plain lines. For a sweep on Ray, a
live table with one row per run (``RunsTable``: where it runs, its stage, clip, step, last line),
filled from the scheduler's events (vgkit.scale.scheduler ``on_event``).

Both read a run's progress events (vgkit.records.events) through one small adapter, ``parse``,
from their fields (``stage``, ``clip_index``, ``clip_count``, ``step``, ``total``, ``figures``),
never from their wording. The run deadline is shown once, and again only when it is close.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vgkit.records.events import Event, Progress

__all__ = ["DEADLINE_CLOSE_S", "PlainProgress", "ProgressUpdate", "RunRow", "RunsTable", "WidgetProgress", "parse"]

DEADLINE_CLOSE_S = 120.0  # the run deadline is shown again when this close, or under a tenth left
_DEADLINE = re.compile(r",? ?run deadline in \d+(?:\.\d+)? s")  # the countdown on every step's line


@dataclass(frozen=True)
class ProgressUpdate:
    """One progress report: ``phase`` is denoise, decode, encode, done, or other (any other event)."""

    phase: str
    clip: int = 0  # 1-based; 0 when the line is not about a clip
    clip_count: int = 0
    step: int = 0
    total: int = 0
    deadline_in_s: float | None = None
    text: str = ""


# an event's stage -> the phase shown (any other stage: "other")
_PHASES = {"clip-start": "denoise", "denoise": "denoise", "decode": "decode", "encode": "encode"}
_PHASES |= {"clip-done": "done", "clip-reused": "done"}


def parse(event: Event) -> ProgressUpdate:
    """What the views show of one event: its fields, and its line without the deadline countdown."""
    deadline = event.figures.get("run_deadline_in_s")
    return ProgressUpdate(
        phase=_PHASES.get(event.stage, "other"),
        clip=0 if event.clip_index is None else event.clip_index + 1,
        clip_count=event.clip_count or 0,
        step=event.step or 0,
        total=event.total or 0,
        deadline_in_s=None if deadline is None else float(deadline),
        text=_DEADLINE.sub("", event),
    )


@dataclass
class _Deadline:
    """Says the run deadline the first time it is known, then only when it gets close."""

    first: float | None = None
    warned: bool = False

    def line(self, in_s: float | None) -> str | None:
        if in_s is None:
            return None
        if self.first is None:
            self.first = in_s
            return f"run deadline in {in_s:.0f} s"
        if not self.warned and (in_s <= DEADLINE_CLOSE_S or in_s <= self.first / 10):
            self.warned = True
            return f"run deadline close: {in_s:.0f} s left"
        return None


class PlainProgress:
    """Headless: each line as it came, without the deadline countdown on every step."""

    def __init__(self, write: Callable[[str], None] = print) -> None:
        self._write = write
        self._deadline = _Deadline()

    def __call__(self, event: Event) -> None:
        update = parse(event)
        if note := self._deadline.line(update.deadline_in_s):
            self._write(note)
        self._write(update.text)


class WidgetProgress:
    """Live bars (clip and run), steps/s, clip and run ETA, phase, deadline, last-frame thumbnails."""

    def __init__(self) -> None:
        import ipywidgets as w

        self.run_bar = w.FloatProgress(min=0, max=1, description="run", layout={"width": "40em"})
        self.clip_bar = w.FloatProgress(min=0, max=1, description="clip", layout={"width": "40em"})
        self.status = w.HTML()
        self.deadline = w.HTML()
        self.last_line = w.HTML()
        self.thumbnails = w.HBox(layout={"flex_flow": "row wrap"})
        self.widget = w.VBox([self.run_bar, self.clip_bar, self.status, self.deadline, self.last_line, self.thumbnails])
        self._deadline = _Deadline()
        self._started = time.monotonic()
        self._last_step: tuple[float, int] | None = None
        self._steps_per_s: float | None = None

    def __call__(self, event: Event) -> None:
        from html import escape

        update = parse(event)
        if note := self._deadline.line(update.deadline_in_s):
            self.deadline.value = f"<b>{escape(note)}</b>"
        self.last_line.value = f"<code>{escape(update.text)}</code>"
        if update.clip == 0:
            return
        now = time.monotonic()
        if update.phase == "denoise" and update.total:
            if self._last_step is not None and update.step > self._last_step[1] and now > self._last_step[0]:
                self._steps_per_s = (update.step - self._last_step[1]) / (now - self._last_step[0])
            self._last_step = (now, update.step)
        else:
            self._last_step = None
        after_denoise = 0.0 if update.phase == "denoise" else 1.0  # decode, encode, done: after the last step
        clip_fraction = update.step / update.total if update.total else after_denoise
        self.clip_bar.value = clip_fraction
        run_fraction = (update.clip - 1 + clip_fraction) / update.clip_count
        self.run_bar.value = run_fraction
        self.status.value = escape(self._status(update, clip_fraction, run_fraction, now))

    def _status(self, update: ProgressUpdate, clip_fraction: float, run_fraction: float, now: float) -> str:
        parts = [f"clip {update.clip}/{update.clip_count}", update.phase]
        if update.total:
            parts.append(f"step {update.step}/{update.total}")
        if self._steps_per_s:
            parts.append(f"{self._steps_per_s:.2f} steps/s")
            if update.phase == "denoise":
                parts.append(f"denoise ETA {(update.total - update.step) / self._steps_per_s:.0f} s")
        elapsed = now - self._started
        if 0 < run_fraction < 1:
            parts.append(f"run ETA {elapsed / run_fraction - elapsed:.0f} s")
        return " · ".join(parts)

    def on_clip(self, index: int, clip: Path) -> None:
        """Show the last frame of clip ``index`` as it lands."""
        import ipywidgets as w

        self.thumbnails.children = (*self.thumbnails.children, w.VBox([w.Image(value=_last_frame_png(clip)),
                                                                        w.Label(f"clip {index}")]))  # fmt: skip


def _last_frame_png(video: Path, *, width: int = 160) -> bytes:
    import imageio_ffmpeg

    from vgkit.finish.preview import decode_selected
    from vgkit.spec.images import png_bytes

    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    return png_bytes(decode_selected(video, [frames - 1], width=width)[frames - 1])


@dataclass
class RunRow:
    """One run's row of the live table: what its latest events said."""

    run: str
    where: str = "queued"
    state: str = "queued"
    clip: str = ""
    step: str = ""
    last: str = ""

    def update(self, event: dict[str, Any]) -> None:
        """Fold one scheduler event (vgkit.scale.scheduler ``on_event``) into the row."""
        kind = event["kind"]
        if event.get("gpu") is not None:
            self.where = f"{event.get('node')} GPU {event['gpu']}"
        if kind == "line":
            update = parse(event["line"])
            self.state = event["line"].stage
            if update.clip:
                self.clip = f"{update.clip}/{update.clip_count}"
                self.step = f"{update.step}/{update.total}" if update.total else ""
            self.last = update.text
        elif kind in ("start", "load", "clip_home", "done", "lost", "killed"):
            self.state = {"start": "started", "clip_home": "clip home", "done": "stitching"}.get(kind, kind)
            if kind == "clip_home":
                self.last = f"clip {event['index']:03d} came home (sha256 verified)"
            elif kind in ("lost", "killed"):
                self.last = str(event.get("error") or event.get("reason") or "")
        elif kind in ("completed", "failed"):
            self.state = str(event.get("status", kind))
            self.last = str(event.get("detail", ""))


class RunsTable:
    """A live table of a scaled-out sweep's runs (one row each), updated from the scheduler's
    events: pass the instance as ``on_event``; ``widget`` is what the notebook displays."""

    COLUMNS = ("Run", "Where (node, GPU)", "State", "Clip", "Step", "Last line")

    def __init__(self, runs: list[str]) -> None:
        import ipywidgets as w

        self.rows = {name: RunRow(name) for name in runs}
        self.widget = w.HTML(self.html())

    def __call__(self, event: dict[str, Any]) -> None:
        self.rows.setdefault(event["cell"], RunRow(event["cell"])).update(event)
        self.widget.value = self.html()

    def html(self) -> str:
        from html import escape

        head = "".join(f"<th>{escape(c)}</th>" for c in self.COLUMNS)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{escape(v)}</td>" for v in (r.run, r.where, r.state, r.clip, r.step, r.last))
            + "</tr>"
            for r in self.rows.values()
        )
        return f"<table><tr>{head}</tr>{body}</table>"


def runs_view(live: bool, runs: list[str]) -> tuple[Callable[[str], None], Callable[[dict[str, Any]], None] | None]:
    """``(progress, on_event)`` for a sweep's ``runs``: with ``live``, the table (displayed now) fed by
    the events and no lines; else each progress line printed as it comes (headless, papermill)."""
    if not live:
        return (lambda text: print(text, flush=True)), None
    from IPython.display import display

    table = RunsTable(runs)
    display(table.widget)
    return (lambda text: None), table


def view(live: bool) -> tuple[Progress, Any]:
    """``(progress, on_clip)`` for a run: the widget (displayed now) when ``live``, else plain lines."""
    if not live:
        return PlainProgress(lambda text: print(text, flush=True)), None
    from IPython.display import display

    widget = WidgetProgress()
    display(widget.widget)
    return widget, widget.on_clip
