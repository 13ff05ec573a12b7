"""Structured progress events: typed fields, the rendered line, the JSON line, the run's events.jsonl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from vgkit.records.events import EVENTS_FILE, STAGES, Event, append_event, note, read_events, text_sink


def test_an_event_is_its_rendered_line_and_carries_its_fields() -> None:
    event = Event("denoise", clip_index=1, clip_count=3, step=5, total=20, elapsed_s=2.5, eta_s=7.5,
                  figures={"run_deadline_in_s": 100.0})  # fmt: skip
    assert str(event) == ("clip 2/3: step 5/20 (25%), 2.5 s elapsed, denoise ETA 8 s, run deadline in 100 s")
    assert (event.stage, event.clip_index, event.step, event.total, event.eta_s) == ("denoise", 1, 5, 20, 7.5)
    lines: list[str] = []
    lines.append(event)  # a plain list of lines (or print) takes it as its text
    assert lines == [str(event)]


def test_json_line_round_trips_and_other_lines_are_not_events() -> None:
    event = Event("clip-done", clip_index=0, clip_count=2, elapsed_s=3.25, figures={"clip": "clip_000.mp4"})
    line = event.to_json()
    assert json.loads(line)["schema"] == "vgkit.event/1" and json.loads(line)["text"] == str(event)
    back = Event.from_json(line)
    assert back is not None and back.__dict__ == event.__dict__ and str(back) == str(event)
    for other in ("clip 1/2: done in 3.2 s", "{not json", '{"schema": "vgkit.event/1", "stage": "nope"}', "[]"):
        assert Event.from_json(other) is None


def test_unknown_stage_is_refused_naming_the_stages() -> None:
    with pytest.raises(ValueError, match=r"event stage = 'dance': not one of plan, load"):
        Event("dance")  # type: ignore[arg-type]
    assert "failed" in STAGES and "clip-reused" in STAGES


def test_text_sink_turns_plain_lines_into_notes() -> None:
    got: list[Event] = []
    text_sink(got.append)("device cuda: busy; waiting")
    assert [(e.stage, e.detail, str(e)) for e in got] == [
        ("note", "device cuda: busy; waiting", "device cuda: busy; waiting")
    ]
    assert note("x").stage == "note"


def test_concurrent_appends_never_tear_a_line(tmp_path: Path) -> None:
    """Four processes append 300 events each, with long details, to the same events.jsonl."""
    script = (
        "import sys; from pathlib import Path; from vgkit.records.events import Event, append_event\n"
        "for i in range(300):\n"
        "    append_event(Path(sys.argv[1]), Event('note', detail=sys.argv[2] * 2000 + str(i)))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), letter], cwd=REPO) for letter in "abcd"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    lines = (tmp_path / EVENTS_FILE).read_text().splitlines()
    assert len(lines) == 1200 and all(Event.from_json(line) is not None for line in lines)
    assert len(read_events(tmp_path)) == 1200


def test_read_events_skips_a_torn_last_line_and_filters_by_time(tmp_path: Path) -> None:
    append_event(tmp_path, Event("load", figures={"model": "m", "snapshot": "s"}, at=100.0))
    append_event(tmp_path, Event("loaded", elapsed_s=1.0, at=200.0))
    with (tmp_path / EVENTS_FILE).open("a") as fh:
        fh.write('{"schema": "vgkit.event/1", "stage": "clip-st')
    assert [e.stage for e in read_events(tmp_path)] == ["load", "loaded"]
    assert [e.stage for e in read_events(tmp_path, since=150.0)] == ["loaded"]
    assert read_events(tmp_path / "missing") == []


def test_an_event_survives_pickling_with_its_fields() -> None:
    """Ray ships events between processes by pickle; a str subclass would otherwise be rebuilt
    from its rendered text (which is not a stage) and fail on the receiving side."""
    import pickle

    from vgkit.records.events import Event

    event = Event("clip-start", clip_index=1, clip_count=3, figures={"num_frames": 9, "seed": 7}, at=5.0)
    back = pickle.loads(pickle.dumps(event))
    assert back == event and back.record() == event.record()
