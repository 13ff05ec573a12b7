"""Notebook progress: the adapter reads an event's fields; the plain view drops the per-line
deadline countdown; the widget fills its bars and shows each clip's last frame."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from vgkit.lab.progress_view import DEADLINE_CLOSE_S, PlainProgress, ProgressUpdate, WidgetProgress, parse
from vgkit.records.events import Event, note


def _step(clip_index: int, step: int, elapsed_s: float, eta_s: float, deadline_in_s: float) -> Event:
    return Event("denoise", clip_index=clip_index, clip_count=2, step=step, total=4, elapsed_s=elapsed_s,
                 eta_s=eta_s, figures={"run_deadline_in_s": deadline_in_s})  # fmt: skip


LINES = [
    note("plan: 2 clips on wan22-tiny"),
    Event("clip-start", clip_index=0, clip_count=2, figures={"num_frames": 121, "seed": 7}),
    _step(0, 1, 0.5, 2, 1190),
    _step(0, 4, 1.9, 0, 1188),
    Event("clip-done", clip_index=0, clip_count=2, elapsed_s=3.0, figures={"clip": "clip_000.mp4"}),
    _step(1, 2, 0.9, 1, 100),
    _step(1, 3, 1.3, 1, 99),
]


def test_parse_reads_phase_clip_step_and_deadline_from_the_fields() -> None:
    assert parse(LINES[2]) == ProgressUpdate(
        "denoise", 1, 2, 1, 4, 1190.0, "clip 1/2: step 1/4 (25%), 0.5 s elapsed, denoise ETA 2 s"
    )
    assert parse(Event("decode", clip_index=0, clip_count=2)).phase == "decode"  # after the last step
    assert parse(LINES[4]).phase == "done" and parse(LINES[4]).clip == 1
    assert parse(LINES[0]) == ProgressUpdate("other", text=LINES[0])


class _Event(str):
    """Stands in for a structured event: a str (its line) with typed fields."""

    stage = "decode"
    clip_index = 1
    clip_count = 3
    step = 0
    total = 0
    figures: ClassVar[dict[str, float]] = {"run_deadline_in_s": 50.0}


def test_parse_prefers_an_events_fields_to_its_text() -> None:
    update = parse(_Event("clip 2/3: decoding"))
    assert (update.phase, update.clip, update.clip_count, update.deadline_in_s) == ("decode", 2, 3, 50.0)
    view = WidgetProgress()
    view(_Event("clip 2/3: decoding"))
    assert view.clip_bar.value == 1.0 and view.run_bar.value == 2 / 3 and "decode" in view.status.value


def test_plain_lines_say_the_deadline_once_and_again_only_when_close() -> None:
    shown: list[str] = []
    view = PlainProgress(shown.append)
    for line in LINES:
        view(line)
    deadlines = [s for s in shown if "deadline" in s]
    assert deadlines == ["run deadline in 1190 s", "run deadline close: 100 s left"]
    assert DEADLINE_CLOSE_S >= 100 and not any("run deadline in" in s for s in shown if s.startswith("clip"))


def test_widget_fills_bars_and_shows_last_frames(tmp_path: Path) -> None:
    from vgkit.finish.encode import ffmpeg_exe

    view = WidgetProgress()
    for line in LINES[:5]:
        view(line)
    assert view.clip_bar.value == 1.0 and view.run_bar.value == 0.5
    view(LINES[5])
    view(LINES[6])
    assert view.run_bar.value == (1 + 0.75) / 2 and "steps/s" in view.status.value and "run ETA" in view.status.value
    assert "close: 100 s left" in view.deadline.value
    import subprocess

    clip = tmp_path / "clip_000.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=64x48:r=24:d=1", "-pix_fmt",
                    "yuv420p", str(clip)], check=True)  # fmt: skip
    view.on_clip(0, clip)
    image = view.thumbnails.children[0].children[0]
    assert bytes(image.value)[:4] == b"\x89PNG"
