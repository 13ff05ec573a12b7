"""The parts of vgkit.scale that need no Ray: cells, shards, what a worker is sent, clip payloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from vgkit.errors import ArtifactError, SpecError
from vgkit.records.artifacts import CLIP_LOG_SCHEMA, RunLayout, sha256_bytes
from vgkit.scale.cells import SEED_STRIDE, make_cells, parse_shard, shard_cells, task_for
from vgkit.scale.transfer import clip_payload, clips_at_home, commit_payload


def test_import_vgkit_and_its_cli_and_scale_modules_never_import_ray() -> None:
    code = (
        "import sys, vgkit, vgkit.cli, vgkit.scale, vgkit.scale.scheduler, vgkit.scale.gpu_worker; "
        "print('ray' in sys.modules, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_without_ray_installed_a_ray_run_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from vgkit.scale.scheduler import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    with pytest.raises(SpecError, match=r"Ray is not installed.*pip install 'vgkit\[ray\]'"):
        import_ray()


def test_cells_are_grouped_by_model_with_distinct_seeds_and_folders(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.yaml", spec_dict())
    cells = make_cells([spec], models=["a-tiny", "b-tiny"], seeds=3, root=tmp_path / "sweep")
    assert [c.model for c in cells] == ["a-tiny"] * 3 + ["b-tiny"] * 3
    assert [c.seed for c in cells[:3]] == [7, 7 + SEED_STRIDE, 7 + 2 * SEED_STRIDE]
    assert len({c.run_dir for c in cells}) == 6
    assert cells[1].run_dir == tmp_path / "sweep" / f"t-a-tiny-seed{7 + SEED_STRIDE}"
    one = make_cells([spec], models=["a-tiny"], root=tmp_path / "sweep")
    assert [(c.seed, c.run_dir.name) for c in one] == [(None, "t-a-tiny")]  # the layout of `vgkit sweep`


def test_two_specs_with_one_name_are_refused(tmp_path: Path) -> None:
    a = write_spec(tmp_path / "a.yaml", spec_dict())
    b = write_spec(tmp_path / "b.yaml", spec_dict())
    with pytest.raises(SpecError, match="name 't' appears twice"):
        make_cells([a, b], models=["wan22-tiny"], root=tmp_path)


@pytest.mark.parametrize(("models", "seeds", "count"), [(3, 2, 2), (3, 2, 3), (2, 3, 4), (1, 4, 4), (3, 1, 5)])
def test_shards_together_cover_every_cell_exactly_once(tmp_path: Path, models: int, seeds: int, count: int) -> None:
    spec = write_spec(tmp_path / "spec.yaml", spec_dict())
    cells = make_cells([spec], models=[f"m{i}" for i in range(models)], seeds=seeds, root=tmp_path)
    shards = [shard_cells(cells, index=i, count=count) for i in range(count)]
    assert sorted(c.run_dir for s in shards for c in s) == sorted(c.run_dir for c in cells)
    if count <= models:  # each model on one host only: each host downloads only its own weights
        hosts = {c.model: {i for i, s in enumerate(shards) if any(x.model == c.model for x in s)} for c in cells}
        assert all(len(h) == 1 for h in hosts.values()), hosts
    else:  # more hosts than models: models are split, but no host is left idle while one has two cells
        assert all(shards) or len(cells) < count


def test_shard_text_is_checked() -> None:
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "1", "-1/2", "a/b"):
        with pytest.raises(SpecError, match=r"shard = .*fix: e.g. --shard 0/2"):
            parse_shard(bad)


def test_a_task_carries_the_spec_and_its_images_as_bytes_with_the_seed_written_in(tmp_path: Path) -> None:
    data = spec_dict()
    data["shots"][2]["source_image"] = data["reference_image"]
    spec = write_spec(tmp_path / "spec.yaml", data)
    [cell, _] = make_cells([spec], models=["wan22-tiny"], seeds=2, root=tmp_path)
    task = task_for(cell)
    assert task.spec_data["seed"] == 7
    assert task.spec_data["reference_image"] == "reference.png"
    assert task.spec_data["shots"][2]["source_image"] == "shot_002.png"
    original = Path(data["reference_image"]).read_bytes()
    assert task.images == {"reference.png": original, "shot_002.png": original}


def _fake_clip(layout: RunLayout, index: int) -> None:
    layout.make_dirs()
    clip, frame = layout.clip(index), layout.last_frame(index)
    clip.write_bytes(b"mp4 bytes %d" % index)
    frame.write_bytes(b"png bytes %d" % index)
    artifacts = {
        name: {"path": p.relative_to(layout.root).as_posix(), "sha256": sha256_bytes(p.read_bytes()), "bytes": 11}
        for name, p in (("clip", clip), ("last_frame", frame))
    }
    layout.log(index).write_text(
        json.dumps({"schema": CLIP_LOG_SCHEMA, "index": index, "status": "ok", "artifacts": artifacts})
    )


def test_a_clip_payload_commits_its_files_and_then_its_log(tmp_path: Path) -> None:
    worker, home = RunLayout(tmp_path / "worker"), RunLayout(tmp_path / "home")
    _fake_clip(worker, 0)
    _fake_clip(worker, 1)
    for index in (0, 1):
        commit_payload(home, clip_payload(worker, index))
    for index in (0, 1):
        assert home.clip(index).read_bytes() == worker.clip(index).read_bytes()
        assert home.log(index).read_bytes() == worker.log(index).read_bytes()
    assert [p["index"] for p in clips_at_home(home)] == [0, 1]
    home.clip(1).write_bytes(b"changed")  # a clip at home that no longer matches its log is not sent
    assert [p["index"] for p in clips_at_home(home)] == [0]


def test_a_payload_that_fails_its_sha256_check_writes_nothing(tmp_path: Path) -> None:
    worker, home = RunLayout(tmp_path / "worker"), RunLayout(tmp_path / "home")
    _fake_clip(worker, 0)
    payload = clip_payload(worker, 0)
    payload["files"]["clips/clip_000.mp4"] = b"torn in transit"
    with pytest.raises(ArtifactError, match=r"clip 000: clips/clip_000\.mp4 is missing or its sha256 differs"):
        commit_payload(home, payload)
    assert not home.clip(0).exists() and not home.log(0).exists()
    payload = clip_payload(worker, 0)
    payload["log"] = payload["log"].replace(b'"ok"', b'"OK"')
    with pytest.raises(ArtifactError, match="another sha256 than it left with"):
        commit_payload(home, payload)


@pytest.mark.slow
def test_two_cli_shards_without_ray_run_each_model_once_and_report_over_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``vgkit sweep --shard i/2`` on two "hosts" (two output folders), then ``vgkit report`` over both."""
    from vgkit.cli import main

    spec = write_spec(tmp_path / "spec.yaml", spec_dict(shots=spec_dict()["shots"][:1]))
    models = "wan22-tiny,cogvideox15-tiny"
    for i in (0, 1):
        host = str(tmp_path / f"h{i}")
        assert main(["sweep", str(spec), "--models", models, "--shard", f"{i}/2", "--out", host]) == 0
    out = capsys.readouterr().out
    assert "shard 0/2: 1 of 2 run(s); models: wan22-tiny" in out
    assert "shard 1/2: 1 of 2 run(s); models: cogvideox15-tiny" in out
    runs = sorted(p.parent.parent for p in tmp_path.glob("h?/t-*/final/final_stitched.mp4"))
    assert [r.relative_to(tmp_path).as_posix() for r in runs] == ["h0/t-wan22-tiny", "h1/t-cogvideox15-tiny"]
    assert (tmp_path / "h1" / "report-shard-1-of-2" / "report.html").is_file()
    record = json.loads((tmp_path / "h1" / "sweep.json").read_text())  # the report's header, as `sweep` writes
    assert record["name"] == "t" and record["models"] == ["wan22-tiny", "cogvideox15-tiny"]
    assert record["run_id"] in (tmp_path / "h1" / "report-shard-1-of-2" / "report.md").read_text()
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.md").read_text()
    assert "wan22-tiny" in report and "cogvideox15-tiny" in report


def test_scale_flags_are_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vgkit.cli import main

    spec = write_spec(tmp_path / "spec.yaml", spec_dict())
    cases = [
        (["--seeds", "0"], "seeds = 0: must be at least 1"),
        (["--shard", "2/2"], "shard = '2/2': must be i/N"),
        (["--logical-gpus", "2"], "--logical-gpus: only for a local Ray"),
        (["--ray", "10.0.0.1:6379", "--logical-gpus", "2"], "--logical-gpus: only for a local Ray"),
        (["--ray", str(spec)], "looks like a spec, not a Ray address; fix: put --ray after the specs"),
    ]
    for flags, message in cases:
        assert main(["sweep", str(spec), "--models", "wan22-tiny", *flags, "--out", str(tmp_path / "o")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_list_prints_a_shards_runs_and_runs_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vgkit.cli import main

    spec = write_spec(tmp_path / "spec.yaml", spec_dict())
    argv = ["sweep", str(spec), "--models", "a,b,c", "--seeds", "2", "--out", str(tmp_path / "o"), "--list"]
    listed = []
    for i in (0, 1):
        assert main([*argv, "--shard", f"{i}/2"]) == 0
        listed.append([line.split("\t") for line in capsys.readouterr().out.splitlines()])
    assert [row[0] for row in listed[0]] == ["a", "a", "c", "c"] and [row[0] for row in listed[1]] == ["b", "b"]
    assert listed[1][1] == ["b", f"seed {7 + SEED_STRIDE}", str(tmp_path / "o" / f"t-b-seed{7 + SEED_STRIDE}")]
    assert not (tmp_path / "o").exists()


def test_the_compare_notebooks_ray_parameter_takes_false_true_or_an_address_and_nothing_else() -> None:
    from vgkit.lab.compare import ray_options
    from vgkit.lab.notebook import check_parameters

    declared: dict[str, object] = {"ray": bool | str}
    for value in (False, True, "10.0.0.5:6379"):
        check_parameters({"ray": value}, declared)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"parameter ray = 3: must be bool or str; fix: pass True or False or a"):
        check_parameters({"ray": 3}, declared)  # type: ignore[arg-type]
    assert ray_options(False) is None
    assert ray_options(True) is not None and ray_options(True).address is None  # type: ignore[union-attr]
    assert ray_options(" 10.0.0.5:6379 ").address == "10.0.0.5:6379"  # type: ignore[union-attr]
    with pytest.raises(SpecError, match=r"parameter ray = '': must be False, True or a Ray address; fix: e.g."):
        ray_options("")
