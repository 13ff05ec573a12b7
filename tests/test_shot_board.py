"""The shot board read from a run folder's records: plan, clip logs, clips (real ffmpeg) and qa.json
(real vgkit.evaluate.qa). The run folder is written here the way vgkit.generate.chain writes one, with
solid-colour clips instead of a model's (the board only reads records; tests/test_notebooks.py runs it
after a real tiny run)."""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import solid_frames
from vgkit.evaluate.qa import run_qa
from vgkit.evaluate.shot_board import PREVIEW_FRAMES, boards_markdown, preview_gif, read_board
from vgkit.finish.encode import encode_frames
from vgkit.records.artifacts import CLIP_LOG_SCHEMA, RunLayout, atomic_write_json, file_record
from vgkit.records.schema import parse_log
from vgkit.spec.images import png_bytes

FPS = 24
FRAMES = 9


def _plan(count: int) -> dict[str, Any]:
    clips = [
        {"index": i, "num_frames": FRAMES, "prompt": f"shot {i} prompt", "seed": 100 + i, "camera": "pan"}
        for i in range(count)
    ]
    return {"clip_count": count, "clips": clips, "final_frames": FRAMES * count, "fps": FPS, "model": "wan22-tiny"}


def _write_clip(layout: RunLayout, index: int, frames: np.ndarray, *, seed: int) -> None:
    """Clip, last frame and an ``ok`` log, as the chain commits them (the log validated first)."""
    encode_frames(frames, fps=FPS, dest=layout.clip(index))
    layout.last_frame(index).write_bytes(png_bytes(frames[-1]))
    record = {
        "schema": CLIP_LOG_SCHEMA,
        "index": index,
        "status": "ok",
        "request": {"seed": seed, "prompt": f"shot {index} prompt"},
        "input": {"source": "reference_image" if index == 0 else f"frames/last_frame_{index - 1:03d}.png"},
        "artifacts": {
            "clip": file_record(layout.clip(index), root=layout.root),
            "last_frame": file_record(layout.last_frame(index), root=layout.root),
        },
        "timings_s": {"denoise_s": 1.5 + index, "decode_s": 0.25, "encode_s": 0.1, "total_s": 2.0 + index},
    }
    parse_log(record, source="test")
    atomic_write_json(layout.log(index), record)


def _fading(count: int, start: int, stop: int) -> np.ndarray:
    """Grey frames whose level goes from ``start`` to ``stop`` (so each frame differs), with texture."""
    frames = np.zeros((count, 48, 64, 3), dtype=np.uint8)
    checker = (np.indices((48, 64)).sum(axis=0) % 2 * 60).astype(np.int16)[..., None]
    for i, level in enumerate(np.linspace(start, stop, count).round().astype(int)):
        frames[i] = np.clip(level + checker, 0, 255)
    return frames


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """Four planned shots: 0 fades (ok), 1 is black (ok, but QA says so), 2 failed, 3 not made."""
    layout = RunLayout(tmp_path / "run")
    layout.make_dirs()
    atomic_write_json(layout.plan, _plan(4))
    _write_clip(layout, 0, _fading(FRAMES, 60, 180), seed=100)
    _write_clip(layout, 1, solid_frames(FRAMES, (0, 0, 0), size=(64, 48)), seed=555)  # the log's seed wins
    failed = {
        "schema": CLIP_LOG_SCHEMA,
        "index": 2,
        "status": "failed",
        "failure": {"kind": "out-of-memory", "phase": "decode", "message": "decode ran out of memory\nmore"},
    }
    atomic_write_json(layout.log(2), failed)
    return layout.root


def test_each_planned_shot_gets_a_card_with_its_record_and_qa(run_dir: Path) -> None:
    qa = run_qa(run_dir, clip_repo=None)
    board = read_board(run_dir, preview="still")
    assert [c.index for c in board.cards] == [0, 1, 2, 3]
    ok, black, failed, missing = board.cards
    assert (ok.seed, black.seed, failed.seed, missing.seed) == (100, 555, 102, 103)
    assert ok.verdicts == tuple(qa["clips"][0]["verdicts"]) == ("ok",)
    assert black.verdicts == ("effectively black",)
    seam = qa["seams"][0]
    assert seam["index"] == 1 and seam["visible"] and black.seam is not None and black.seam.startswith("visible")
    assert ok.seam is None  # shot 0 has no seam into it
    assert (ok.timings.denoise_s, black.timings.total_s) == (1.5, 3.0)
    assert (failed.status, failed.detail, failed.preview, failed.verdicts) == (
        "failed",
        "decode ran out of memory",
        None,
        (),
    )
    assert (missing.status, missing.clip, missing.preview) == ("not made", None, None)
    assert ok.seconds == pytest.approx(FRAMES / FPS)
    assert board.lines()[1:] == [
        "shot 0: ok, seed 100, 9 frames (0.38 s), camera pan, QA: ok",
        f"shot 1: ok, seed 555, 9 frames (0.38 s), camera pan, QA: effectively black, seam {black.seam}",
        "shot 2: failed, seed 102, 9 frames (0.38 s), camera pan, QA: no clip (decode ran out of memory)",
        "shot 3: not made, seed 103, 9 frames (0.38 s), camera pan, QA: no clip",
    ]


def test_still_previews_are_the_clips_last_frames(run_dir: Path) -> None:
    board = read_board(run_dir, preview="still")
    mime, data = board.cards[0].preview or ("", b"")
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert mime == "image/png" and image.shape[1] == 192  # scaled to the preview width
    last = np.asarray(Image.open(RunLayout(run_dir).last_frame(0)).convert("RGB"), dtype=np.float64)
    assert abs(image.mean() - last.mean()) < 2  # the same picture, resized


def test_animated_preview_spreads_frames_over_the_clip_and_never_upscales(run_dir: Path) -> None:
    clip = RunLayout(run_dir).clip(0)
    gif = Image.open(io.BytesIO(preview_gif(clip)))
    assert gif.format == "GIF" and gif.size == (64, 48)  # the clip is smaller than the preview width
    assert gif.n_frames == FRAMES  # a clip shorter than PREVIEW_FRAMES shows every frame once
    levels = []
    for i in range(gif.n_frames):
        gif.seek(i)
        levels.append(float(np.asarray(gif.convert("RGB")).mean()))
    assert levels == sorted(levels) and levels[-1] - levels[0] > 80  # the fade, in order
    long_clip = run_dir / "long.mp4"
    encode_frames(_fading(60, 0, 200), fps=FPS, dest=long_clip)
    assert Image.open(io.BytesIO(preview_gif(long_clip))).n_frames == PREVIEW_FRAMES


def test_without_qa_json_verdicts_say_not_measured_unless_asked_to_measure(run_dir: Path) -> None:
    board = read_board(run_dir, preview="still")
    assert board.cards[0].verdicts == ("not measured",) and board.cards[1].seam == "not measured"
    assert not (run_dir / "qa.json").exists()  # reading never writes
    measured = read_board(run_dir, preview="still", measure_qa=True)
    assert (run_dir / "qa.json").is_file() and measured.cards[1].verdicts == ("effectively black",)
    layout = RunLayout(run_dir)  # clip 1 made again after QA: its verdict would be stale
    _write_clip(layout, 1, _fading(FRAMES, 180, 60), seed=555)
    os.utime(layout.log(1), (time.time() + 5, time.time() + 5))  # later than qa.json, whatever the clock's grain
    assert read_board(run_dir, preview="still").cards[1].verdicts == ("not measured",)
    assert read_board(run_dir, preview="still", measure_qa=True).cards[1].verdicts == ("ok",)


def test_html_embeds_previews_links_clips_and_escapes_prompts(run_dir: Path) -> None:
    plan = _plan(4)
    plan["clips"][0]["prompt"] = "a <b>bold</b> boat"
    atomic_write_json(RunLayout(run_dir).plan, plan)
    html = read_board(run_dir).html(base=run_dir)
    assert html.count("data:image/gif;base64,") == 2  # the two finished clips, animated
    assert "href='clips/clip_000.mp4'" in html and "href='clips/clip_001.mp4'" in html
    assert "a &lt;b&gt;bold&lt;/b&gt; boat" in html and "<b>bold</b>" not in html
    assert "decode ran out of memory" in html and "not made yet" in html
    assert "<script" not in html and "http" not in html


def test_report_section_links_last_frames_that_exist_and_names_a_run_without_plan(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    no_plan = tmp_path / "empty-run"
    no_plan.mkdir()
    lines = boards_markdown([run_dir, no_plan], out=out)
    assert lines[0] == "### wan22-tiny" and "### empty-run" in lines and "No plan.json." in lines
    rows = [line for line in lines if re.match(r"\| \d ", line)]
    assert len(rows) == 4 and "| 555 |" in rows[1] and "not made" in rows[3]
    links = re.findall(r"\]\(([^)]+)\)", "\n".join(rows))
    assert links and all((out / link).resolve().is_file() for link in links)


def test_the_sweep_report_has_the_shot_boards_section(run_dir: Path, tmp_path: Path) -> None:
    from vgkit.evaluate.report.write import write_report

    paths = write_report([run_dir], out=tmp_path / "report")
    markdown = paths["markdown"].read_text()
    section = markdown.split("## Shot Boards", 1)[1].split("\n## ", 1)[0]
    assert "### wan22-tiny" in section and "| 1 |" in section
    html = paths["html"].read_text()
    board = html.split("<h2>Shot Boards</h2>", 1)[1].split("<h2>", 1)[0]
    assert "effectively black" in board and "data:" not in board  # linked, not embedded
    sources = re.findall(r"<img alt='shot \d' src='([^']+)'", board)
    assert len(sources) == 2 and all((tmp_path / "report" / src).resolve().is_file() for src in sources)
    assert json.loads((run_dir / "qa.json").read_text())["clips"]  # the report measured it
