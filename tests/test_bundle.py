"""Bundles: everything the brief lists, reproducible bytes, safe member names."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.test_bundle_trust import write_plan
from tests.test_stitch import make_run
from vgkit.errors import ArtifactError
from vgkit.finish.manifest import write_manifest
from vgkit.finish.pack import write_bundle
from vgkit.finish.stitch import stitch_run
from vgkit.records.artifacts import sha256_file


def _finished(root: Path) -> Path:
    write_plan(make_run(root), [9, 9, 9])
    write_manifest(root, stitch=stitch_run(root))
    return root


def test_bundle_holds_every_artifact_under_the_run_name(tmp_path: Path) -> None:
    run = _finished(tmp_path / "myrun")
    path = write_bundle(run)
    assert path == tmp_path / "myrun.tar.gz"
    with tarfile.open(path) as tar:
        names = tar.getnames()
        members = tar.getmembers()
    assert "myrun/final/final_stitched.mp4" in names
    assert "myrun/manifest.json" in names
    for i in range(3):
        for rel in (f"clips/clip_{i:03d}.mp4", f"frames/last_frame_{i:03d}.png", f"logs/log_{i:03d}.json"):
            assert f"myrun/{rel}" in names
    assert names[0] == "myrun/bundle_index.json" and names[1:] == sorted(names[1:])
    assert all(m.mtime == 0 and m.uid == 0 and m.isfile() for m in members)


def test_bundle_bytes_are_reproducible(tmp_path: Path) -> None:
    run = _finished(tmp_path / "r")
    first = sha256_file(write_bundle(run))
    (run / "clips" / "clip_000.mp4").touch()  # a new mtime must not change the bundle
    assert sha256_file(write_bundle(run)) == first
    write_manifest(run, stitch=stitch_run(run))  # nor does stitching the same run again
    assert sha256_file(write_bundle(run)) == first


def test_manifest_lists_hashes_of_every_artifact(tmp_path: Path) -> None:
    import json

    run = _finished(tmp_path / "r")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["schema"] == "vgkit.manifest/2"
    assert manifest["clip_count"] == 3
    listed = {a["path"]: a["sha256"] for a in manifest["artifacts"]}
    assert listed["final/final_stitched.mp4"] == sha256_file(run / "final" / "final_stitched.mp4")
    assert listed["clips/clip_002.mp4"] == sha256_file(run / "clips" / "clip_002.mp4")
    assert manifest["stitch"]["final_frames"] == 25
    assert manifest["environment"]["ffmpeg"].startswith("ffmpeg version")


def test_bundle_before_stitch_names_the_fix(tmp_path: Path) -> None:
    run = make_run(tmp_path / "r").root
    with pytest.raises(ArtifactError, match="fix: run `vgkit stitch"):
        write_bundle(run)


def test_manifest_records_planned_vs_actual_recipe_and_cost(tmp_path: Path) -> None:
    import json

    from vgkit.cli import main

    run = make_run(tmp_path / "r").root  # its plan.json: 3 clips, 25 final frames at 24 fps
    argv = ["stitch", str(run), "--transition", "crossfade", "--overlap-frames", "2", "--usd-per-hour", "0.4"]
    assert main(argv) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["planned"]["final_frames"] == manifest["actual"]["final_frames"] == 25 - 2 * 2
    assert manifest["planned"]["transition_overlap_frames"] == 4
    assert manifest["stitch"]["transition"] == "crossfade" and manifest["stitch"]["overlap_frames"] == 2
    assert manifest["stitch"]["encoder_args"][:2] == ["-c:v", "libx264"]
    cost = manifest["cost"]
    assert cost["usd_per_hour"] == 0.4
    assert cost["estimate_usd"] == round(cost["billed_s"] / 3600 * 0.4, 4)
    assert cost["billed_s"] == 1.5  # three logged clips of 0.5 s each, model load 0 s


def test_negative_rate_is_refused_before_stitching(tmp_path: Path) -> None:
    from vgkit.cli import main

    run = make_run(tmp_path / "r").root
    assert main(["stitch", str(run), "--usd-per-hour", "-1"]) == 2
    assert not (run / "final" / "final_stitched.mp4").exists()


def test_stitch_export_notebook_is_current_and_exports_a_verified_bundle(tmp_path: Path) -> None:
    import importlib.util
    import json

    import nbformat
    import papermill

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("make_notebooks", REPO / "scripts" / "make_notebooks.py")
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    committed = nbformat.read(REPO / "notebooks" / "stitch_export.ipynb", as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in builder.stitch_export().cells], (
        "notebooks/stitch_export.ipynb is stale: run scripts/make_notebooks.py"
    )
    layout = make_run(tmp_path / "nbrun")
    write_plan(layout, [9, 9, 9])
    run = layout.root
    params = {"run_dir": str(run), "transition": "crossfade", "overlap_frames": 3, "usd_per_hour": 0.4}
    papermill.execute_notebook(
        str(REPO / "notebooks" / "stitch_export.ipynb"), str(tmp_path / "out.ipynb"), parameters=params, cwd=str(REPO)
    )
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stitch"]["transition"] == "crossfade" and manifest["actual"]["final_frames"] == 19
    assert manifest["cost"]["usd_per_hour"] == 0.4
    assert (run / "preview" / "seams.png").is_file()
    from vgkit.finish.verify import verify

    assert verify(tmp_path / "nbrun.tar.gz") == 3


def test_the_runs_events_are_bundled_and_read_back_from_the_extracted_run(tmp_path: Path) -> None:
    from vgkit.finish.bundle import extract_bundle
    from vgkit.records.events import Event, append_event, read_events

    run = _finished(tmp_path / "myrun")
    with tarfile.open(write_bundle(run)) as tar:
        assert "myrun/events.jsonl" not in tar.getnames()  # a run without events bundles none
    append_event(run, Event("load", figures={"model": "Wan", "snapshot": "snap"}))
    append_event(run, Event("clip-done", clip_index=0, clip_count=3, elapsed_s=1.5, figures={"clip": "clip_000.mp4"}))
    with tarfile.open(write_bundle(run)) as tar:
        assert "myrun/events.jsonl" in tar.getnames()
    extracted = extract_bundle(tmp_path / "myrun.tar.gz", tmp_path / "out")
    got = read_events(extracted)
    assert [(e.stage, e.clip_index, e.elapsed_s) for e in got] == [("load", None, None), ("clip-done", 0, 1.5)]
    assert [str(e) for e in got] == [str(e) for e in read_events(run)]


def test_stitch_export_notebook_on_its_defaults_makes_the_final_vgkit_stitch_makes_from_the_spec(
    tmp_path: Path,
) -> None:
    """Issue #16: with no stitch parameter the notebook takes the spec's `stitch:` section (plan.json),
    as `vgkit stitch` without flags does, and prints where each setting came from."""
    import json

    import papermill

    from tests.conftest import REPO
    from vgkit.cli import main

    layout = make_run(tmp_path / "specrun")
    write_plan(layout, [9, 9, 9])
    plan = json.loads(layout.plan.read_text())
    plan["stitch"] = {"transition": "crossfade", "overlap_frames": 2, "colour": "off", "seam_smoothing": "off"}
    layout.plan.write_text(json.dumps(plan))
    run = layout.root
    notebook = str(REPO / "notebooks" / "stitch_export.ipynb")
    out = papermill.execute_notebook(notebook, str(tmp_path / "out.ipynb"), {"run_dir": str(run)}, cwd=str(REPO))
    printed = "".join(o.get("text", "") for cell in out.cells for o in cell.get("outputs", []))
    assert "transition: crossfade (spec)" in printed and "overlap_frames: 2 (spec)" in printed
    by_notebook = sha256_file(run / "final" / "final_stitched.mp4")
    notebook_stitch = json.loads((run / "manifest.json").read_text())["stitch"]
    assert notebook_stitch["final_frames"] == 25 - 2 * 2
    assert main(["stitch", str(run)]) == 0
    assert sha256_file(run / "final" / "final_stitched.mp4") == by_notebook
    assert json.loads((run / "manifest.json").read_text())["stitch"] == notebook_stitch
