"""Takes of a shot and picking one, on the real tiny Wan pipeline: a three-shot run, two takes of
shot 1, the pick, then a resume that reuses clips 0 and 1 and re-chains clip 2 from the take.

The tests share one story of six tiny clips (32x32, one step), about a minute on two cores: marked slow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import spec_dict
from vgkit.errors import SpecError
from vgkit.evaluate.shot_board import read_board
from vgkit.generate.runner import run_job
from vgkit.generate.takes import Take, make_takes, pick_take, read_takes
from vgkit.records.artifacts import RunLayout, sha256_bytes, sha256_file
from vgkit.records.events import Event
from vgkit.records.rundir import foreign_entries
from vgkit.records.schema import read_log, read_plan
from vgkit.spec.images import load_rgb, png_bytes

COMMENT = "# shot cards: keep this comment"


def _files(run_dir: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        p.relative_to(run_dir).as_posix(): sha256_file(p)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and not p.relative_to(run_dir).as_posix().startswith(skip) and p.name != ".vgkit-run.lock"
    }


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run, take twice, pick, resume; what each step left is recorded for the tests below."""
    tmp = tmp_path_factory.mktemp("takes")
    spec = tmp / "spec.yaml"
    small = spec_dict(overrides={"width": 32, "height": 32, "steps": 1})
    spec.write_text(f"{COMMENT}\n" + yaml.safe_dump(small, sort_keys=False))
    run_dir = tmp / "run"
    run_job(spec, out=run_dir, progress=lambda _: None)
    before = _files(run_dir)
    old = {name: sha256_file(run_dir / name) for name in ("clips/clip_001.mp4", "clips/clip_002.mp4")}
    takes = make_takes(spec, out=run_dir, shot=1, seeds=[555, 556], progress=lambda _: None)
    after_take = _files(run_dir, skip=("takes/",))
    spec_before_pick = spec.read_text()
    with pytest.raises(SpecError, match=r"^shots\[1\]\.seed = None: spec\.yaml must name .*--edit-spec"):
        pick_take(spec, out=run_dir, shot=1, seed=555)  # the user's spec is changed only when asked
    refusal_changed_nothing = _files(run_dir, skip=("takes/",)) == after_take and spec.read_text() == spec_before_pick
    lines: list[Event] = []
    pick = pick_take(spec, out=run_dir, shot=1, seed=555, edit_spec=True, progress=lines.append)
    picked = {"log": read_log(RunLayout(run_dir).log(1)), "spec": spec.read_text(), "plan": read_plan(run_dir)}
    board_after_pick = read_board(run_dir, preview="still")
    events: list[Event] = []
    run_job(spec, out=run_dir, progress=events.append)
    return {
        "refusal_changed_nothing": refusal_changed_nothing,
        "spec": spec,
        "run_dir": run_dir,
        "before": before,
        "after_take": after_take,
        "old": old,
        "takes": takes,
        "spec_before_pick": spec_before_pick,
        "pick": pick,
        "pick_lines": lines,
        "picked": picked,
        "board_after_pick": board_after_pick,
        "events": events,
    }


@pytest.mark.slow
def test_a_take_starts_from_the_input_the_runs_clip_had_and_records_its_seed(story: dict[str, Any]) -> None:
    run_dir: Path = story["run_dir"]
    takes: list[Take] = story["takes"]
    assert [(t.index, t.seed, t.ok) for t in takes] == [(1, 555, True), (1, 556, True)]
    assert takes[0].root == run_dir / "takes" / "shot_001" / "seed_555"
    run_log = story["picked"]["log"]  # the run's clip 1 was made (and its input recorded) before any take
    for take in takes:
        assert take.log is not None and take.log.request is not None and take.log.input is not None
        assert take.log.request["seed"] == take.seed
        assert take.log.input.source == "frames/last_frame_000.png"  # chained, as the run's clip 1 was
        frame = load_rgb(run_dir / "frames" / "last_frame_000.png")
        assert take.log.input.sha256 == sha256_bytes(png_bytes(frame))
        assert run_log.input is not None and take.log.input.sha256 == run_log.input.sha256
    assert sha256_file(takes[0].clip) != sha256_file(takes[1].clip) != story["old"]["clips/clip_001.mp4"]


@pytest.mark.slow
def test_making_takes_changes_nothing_else_in_the_run_folder(story: dict[str, Any]) -> None:
    assert story["after_take"] == story["before"]
    assert foreign_entries(story["run_dir"]) == []  # takes/ is a vgkit name: the folder stays adoptable


@pytest.mark.slow
def test_pick_installs_the_take_moves_later_clips_aside_and_records_the_seed(story: dict[str, Any]) -> None:
    run_dir: Path = story["run_dir"]
    picked = story["picked"]
    log = picked["log"]
    assert log.request["seed"] == 555 and log.clip_count == 3
    assert log.model_extra is not None and log.model_extra["picked_take"]["from"] == "takes/shot_001/seed_555"
    assert log.artifacts["clip"].sha256 == sha256_file(story["takes"][0].clip)
    assert picked["plan"].clips[1].seed == 555 and picked["plan"].clips[2].seed == 9  # only shot 1 changed
    moved = story["pick"].moved
    superseded = {"/".join(Path(p).parts[2:]) for p in moved}  # superseded/<time>/...
    assert {"clips/clip_001.mp4", "clips/clip_002.mp4", "logs/log_002.json", "manifest.json"} <= superseded
    assert "clips/clip_000.mp4" not in superseded
    assert all((run_dir / p).is_file() for p in moved)  # kept, not deleted
    old_clip_1 = next(p for p in moved if p.endswith("clips/clip_001.mp4"))
    assert sha256_file(run_dir / old_clip_1) == story["old"]["clips/clip_001.mp4"]
    assert story["refusal_changed_nothing"]  # without --edit-spec: refused before anything moved
    spec_text = picked["spec"]
    assert spec_text.startswith(COMMENT)  # the spec keeps its comment
    assert yaml.safe_load(spec_text)["shots"][1]["seed"] == 555
    assert yaml.safe_load(spec_text)["shots"][0].get("seed") is None
    assert "re-chains shots 2..2" in story["pick_lines"][-1].detail


@pytest.mark.slow
def test_the_board_shows_takes_with_the_picked_one_and_a_pick_hint(story: dict[str, Any]) -> None:
    board = story["board_after_pick"]
    shot_1 = board.cards[1]
    assert [(t.seed, t.picked) for t in shot_1.takes] == [(555, True), (556, False)]
    assert shot_1.seed == 555 and board.cards[2].status == "not made"
    html = board.html(base=story["run_dir"])
    assert f"vgkit pick SPEC --out {story['run_dir']} --shot 1 --take 556" in html
    assert "takes: 555 (picked), 556 (ok)" in board.lines()[2]


@pytest.mark.slow
def test_resume_reuses_the_pick_and_rechains_the_later_shots_from_it(story: dict[str, Any]) -> None:
    run_dir: Path = story["run_dir"]
    events: list[Event] = story["events"]
    reused = [e.clip_index for e in events if e.stage == "clip-reused"]
    made = [e.clip_index for e in events if e.stage == "clip-done"]
    assert (reused, made) == ([0, 1], [2])
    layout = RunLayout(run_dir)
    log_2 = read_log(layout.log(2))
    take_last = load_rgb(story["takes"][0].last_frame)
    assert log_2.input is not None and log_2.input.source == "frames/last_frame_001.png"
    assert log_2.input.sha256 == sha256_bytes(png_bytes(take_last))
    assert sha256_file(layout.clip(2)) != story["old"]["clips/clip_002.mp4"]
    assert layout.final.is_file() and json.loads(layout.manifest.read_text())["clip_count"] == 3
    assert read_log(layout.log(1)).request["seed"] == 555  # still the pick


@pytest.mark.slow
def test_take_and_pick_refuse_in_one_line(story: dict[str, Any], tmp_path: Path) -> None:
    spec, run_dir = story["spec"], story["run_dir"]
    with pytest.raises(SpecError, match=r"^shot = 7: the plan has shots 0\.\.2"):
        make_takes(spec, out=run_dir, shot=7, seeds=[1])
    with pytest.raises(
        SpecError, match=r"take = 999: shot 1 has no finished take with that seed \(finished: 555, 556\)"
    ):
        pick_take(spec, out=run_dir, shot=1, seed=999)
    other = tmp_path / "other.yaml"
    changed = spec_dict(overrides={"width": 32, "height": 32, "steps": 1}, negative_prompt="noise")
    other.write_text(yaml.safe_dump(changed, sort_keys=False))
    with pytest.raises(SpecError, match=r"its plan\.json is not what this spec plans now"):
        make_takes(other, out=run_dir, shot=1, seeds=[1])
    with pytest.raises(SpecError, match=r"^seed = -1: must be 0 <= seed"):
        make_takes(spec, out=run_dir, shot=1, seeds=[-1])
    assert [t.seed for t in read_takes(run_dir, 1)] == [555, 556]  # nothing was made by the refusals


def test_the_cli_refuses_a_folder_that_is_not_a_run_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vgkit.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(), sort_keys=False))
    for argv in (
        ["take", str(spec), "--out", str(tmp_path / "nothing"), "--shot", "1", "--seed", "5"],
        ["pick", str(spec), "--out", str(tmp_path / "nothing"), "--shot", "1", "--take", "5"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a run folder with a readable plan.json" in err
    assert not (tmp_path / "nothing").exists()  # refused before anything was written
