"""Run folders: only vgkit's own are written to, one run at a time, nothing of a previous run lost
or stitched by mistake, saved latents checked, fetch never replacing a folder.

Each test named after a finding reproduced it on the code before this change (issue 14).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from vgkit.errors import SpecError
from vgkit.finish.encode import count_frames
from vgkit.generate.runner import JobResult, run_job
from vgkit.records.artifacts import RunLayout, sha256_file, temp_path_for


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256); symlinks and folders by name."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        found[rel] = "link" if path.is_symlink() else sha256_file(path) if path.is_file() else "dir"
    return found


def _two_shots() -> dict[str, object]:
    data = spec_dict()
    data["shots"] = data["shots"][:2]  # type: ignore[index]
    return data


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> JobResult:
    """A finished two-clip run of the tiny Wan (64x64, 2 steps); tests copy it before changing it."""
    tmp = tmp_path_factory.mktemp("finished")
    return run_job(write_spec(tmp / "spec.yaml", _two_shots()), out=tmp / "run", progress=lambda _: None)


def _copy(finished: JobResult, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(finished.run_dir, run_dir, symlinks=True)
    return run_dir


# -- temp-file sweep ------------------------------------------------------------------------------


def test_sweep_deletes_only_vgkit_temp_names_in_vgkit_folders(tmp_path: Path) -> None:
    """Found by hand: the sweep (``rglob('.*.part*')``) deleted a user's ``.env.part`` and
    ``notes/.chapter1.partial.md`` under ``--out``."""
    layout = RunLayout(tmp_path / "run")
    layout.make_dirs()
    user_files = [
        layout.root / ".env.part",
        layout.root / "notes" / ".chapter1.partial.md",
        layout.clips / ".holiday.part.mp4",
        layout.clips / "sub" / ".clip_000.1.part.mp4",  # below a vgkit folder: never looked at
    ]
    for path in user_files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")
    dead_pid = 2**22 + 1  # above Linux's pid_max: no such process
    stale = [
        layout.clips / f".clip_000.{dead_pid}.part.mp4",
        layout.logs / f".log_001.{dead_pid}.part.json",
        layout.root / f".plan.{dead_pid}.part.json",
    ]
    live = temp_path_for(layout.clip(1)).with_name(f".clip_001.{os.getppid()}.part.mp4")  # a live writer
    for path in [*stale, live]:
        path.write_bytes(b"torn")
    removed = layout.sweep_temp_files()
    assert sorted(removed) == sorted(stale)
    assert all(p.read_text() == "mine" for p in user_files)
    assert live.is_file()


# -- plan-time checks and folder ownership ----------------------------------------------------------


def test_foreign_out_is_refused_in_one_line_and_left_untouched(tmp_path: Path, small_spec: Path) -> None:
    """Found by hand: ``--out`` at an existing folder of the user's was written into and swept."""
    out = tmp_path / "mine"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / ".chapter1.partial.md").write_text("draft")
    (out / ".env.part").write_text("SECRET=1")
    (out / "clips").mkdir()
    (out / "clips" / "holiday.mp4").write_bytes(b"video")
    before = _tree(out)
    with pytest.raises(SpecError) as caught:
        run_job(small_spec, out=out, progress=lambda _: None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"out = '{out}': a folder vgkit did not make (no .vgkit-run.json; it holds '.env.part'")
    assert message.endswith("fix: choose a new or empty --out")
    assert _tree(out) == before


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"speed": {"attention_backend": "flash"}}, r"speed\.attention_backend = 'flash': does not run on CPU"),
        ({"negative_prompt": "blur " * 600}, r"shots\[0\]: the composed negative prompt is \d+ tokens, over"),
    ],
)
def test_plan_time_refusals_leave_no_folder_behind(tmp_path: Path, change: dict[str, object], match: str) -> None:
    """Found by hand: an unusable attention backend on CPU and an over-long prompt were refused only
    after the run folder was made (and the model loaded), leaving the folder behind."""
    spec = write_spec(tmp_path / "spec.yaml", {**spec_dict(), **change})
    out = tmp_path / "new" / "run"
    with pytest.raises(SpecError, match=match):
        run_job(spec, out=out, progress=lambda _: None)
    assert not (tmp_path / "new").exists()


def test_refused_plan_leaves_the_previous_run_untouched(finished: JobResult, tmp_path: Path) -> None:
    """Found by hand: a run refused over the token budget had already overwritten plan.json of the
    finished run in that folder, so the good run no longer verified."""
    run_dir = _copy(finished, tmp_path)
    before = _tree(run_dir)
    data = _two_shots()
    data["negative_prompt"] = "blur " * 600
    with pytest.raises(SpecError, match="over wan22-tiny's budget"):
        run_job(write_spec(tmp_path / "spec.yaml", data), out=run_dir, progress=lambda _: None)
    assert _tree(run_dir) == before


def test_a_load_time_refusal_removes_the_new_folder(tmp_path: Path) -> None:
    """A refusal only the loaded pipeline can make (e.g. a cache the transformer cannot take) leaves
    no folder. Stand-in: a generator factory that refuses, at the seam where the pipeline loads."""
    out = tmp_path / "a" / "b"

    def refuse(*_: object) -> object:
        raise SpecError("speed.cache = 'first-block': refused at load")

    with pytest.raises(SpecError, match="refused at load"):
        run_job(write_spec(tmp_path / "spec.yaml", spec_dict()), out=out, make_generator=refuse, progress=print)
    assert not (tmp_path / "a").exists()


# -- the run lock -------------------------------------------------------------------------------------


def test_second_run_on_the_same_out_is_refused_while_the_first_holds_it(tmp_path: Path, small_spec: Path) -> None:
    """Found by hand: two ``vgkit run`` on the same ``--out`` both did all the work."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from vgkit.records.rundir import open_run_dir\n"
            "with open_run_dir(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)",
            str(out),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        done = subprocess.run(
            [sys.executable, "-m", "vgkit", "run", str(small_spec), "--out", str(out)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 6, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("vgkit: error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert f"another vgkit run (pid {holder.pid} on " in errors[0]
    assert errors[0].endswith("fix: wait for it to end, or choose another --out")
    assert sorted(p.name for p in out.iterdir()) == [".vgkit-run.json", ".vgkit-run.lock"]


# -- re-runs after the spec changed -------------------------------------------------------------------


def test_a_dropped_shot_is_moved_aside_not_stitched(finished: JobResult, tmp_path: Path) -> None:
    """Found by hand: after a spec lost a shot, re-running into the same folder stitched the old
    run's leftover clip into the final (the CLI said 10.04 s, the video was 15 s)."""
    run_dir = _copy(finished, tmp_path)
    (run_dir / "notes").mkdir()
    (run_dir / "notes" / ".mine.part.md").write_text("kept")  # a user's file added to a vgkit run folder
    data = _two_shots()
    data["shots"] = data["shots"][:1]  # type: ignore[index]
    lines: list[str] = []
    result = run_job(write_spec(tmp_path / "spec.yaml", data), out=run_dir, progress=lines.append)
    assert result.final_frames == count_frames(result.final_video) == 121
    moved = [line for line in lines if line.startswith("moved ")]
    assert len(moved) == 1 and "clip(s) 001 beyond the new plan and the previous plan, manifest and final" in moved[0]
    (aside,) = (run_dir / "superseded").iterdir()
    assert moved[0].endswith(f"to superseded/{aside.name}/ (kept there; not stitched or bundled)")
    old = finished.run_dir
    for rel in ("clips/clip_001.mp4", "frames/last_frame_001.png", "logs/log_001.json", "latents/latents_001.pt"):
        assert sha256_file(aside / rel) == sha256_file(old / rel)
        assert not (run_dir / rel).exists()
    assert sha256_file(aside / "final" / "final_stitched.mp4") == sha256_file(old / "final" / "final_stitched.mp4")
    with tarfile.open(result.bundle) as tar:
        names = tar.getnames()
    assert "run/clips/clip_000.mp4" in names and not any("_001" in n or "superseded" in n for n in names)
    assert (run_dir / "notes" / ".mine.part.md").read_text() == "kept"


def test_a_run_folder_from_before_the_marker_is_adopted(finished: JobResult, tmp_path: Path) -> None:
    run_dir = _copy(finished, tmp_path)
    (run_dir / ".vgkit-run.json").unlink()
    (run_dir / ".vgkit-run.lock").unlink()
    lines: list[str] = []
    again = run_job(write_spec(tmp_path / "spec.yaml", _two_shots()), out=run_dir, progress=lines.append)
    assert sum("verified, reusing" in line for line in lines) == 2
    assert f"out = '{run_dir}': holds only files vgkit writes; adopted as a vgkit run folder (.vgkit-run.json)" in lines
    assert sha256_file(again.final_video) == sha256_file(finished.final_video)
    assert (run_dir / ".vgkit-run.json").is_file()


# -- saved latents -----------------------------------------------------------------------------------


def _flip_a_latent_value(path: Path) -> None:
    """Flip one bit in the exponent of a value inside the stored tensor data (the zip member is
    uncompressed), so the file still loads but holds clearly different latents."""
    with zipfile.ZipFile(path) as archive:
        member = max(archive.infolist(), key=lambda info: info.file_size)
        with path.open("rb") as fh:
            fh.seek(member.header_offset + 26)
            name_len, extra_len = (int.from_bytes(fh.read(2), "little") for _ in range(2))
    start = member.header_offset + 30 + name_len + extra_len
    data = bytearray(path.read_bytes())
    data[start + member.file_size // 8 * 4 + 3] ^= 0x40  # the exponent byte of a float32 mid-tensor
    path.write_bytes(bytes(data))


def test_flipped_or_unrecorded_latents_are_discarded_and_the_clip_made_again(
    finished: JobResult, tmp_path: Path
) -> None:
    """Found by hand: flipped bytes in latents_NNN.pt were decoded on resume into a different clip."""
    run_dir = _copy(finished, tmp_path)
    layout = RunLayout(run_dir)
    for index in (0, 1):  # both clips must be made again: from their saved latents, if those verify
        layout.clip(index).unlink()
    (run_dir / "latents" / "latents_000.json").unlink(missing_ok=True)  # as a kill between .pt and record
    _flip_a_latent_value(run_dir / "latents" / "latents_001.pt")
    lines: list[str] = []
    result = run_job(write_spec(tmp_path / "spec.yaml", _two_shots()), out=run_dir, progress=lines.append)
    assert sha256_file(result.final_video) == sha256_file(finished.final_video)
    assert _tree(run_dir / "latents") == _tree(finished.run_dir / "latents")
    recorded = json.loads((finished.run_dir / "latents" / "latents_001.json").read_text())["sha256"]
    assert [line for line in lines if "discarded" in line] == [
        "latents/latents_000.pt: no sha256 was recorded for them (saved by a killed or older run); "
        "discarded, denoising the clip again",
        f"latents/latents_001.pt: sha256 differs from the one recorded when they were saved ({recorded}); "
        "discarded, denoising the clip again",
    ]
    assert any(line.startswith("clip 1/2: generating") for line in lines)
    assert any(line.startswith("clip 2/2: generating") for line in lines)


# -- fetch ----------------------------------------------------------------------------------------------


def test_fetch_never_replaces_a_local_folder(finished: JobResult, tmp_path: Path) -> None:
    """Found by hand: ``vgkit remote fetch`` replaced a local folder of the fetched run's name with
    ``rmtree``. The SSH transfer itself is tested in test_remote.py; here the local placement."""
    from vgkit.remote.fetch import _extract, local_names

    dest = tmp_path / "runs"
    mine = dest / "run"
    mine.mkdir(parents=True)
    (mine / "notes.md").write_text("mine")
    with pytest.raises(SpecError, match=r"run: already exists, .* or pass --force to fetch beside it"):
        local_names(dest, "run", force=False)
    bundle, run_dir = local_names(dest, "run", force=True)
    assert bundle.name.startswith("run.fetched-") and bundle.name.endswith(".tar.gz")
    assert run_dir.name == bundle.name.removesuffix(".tar.gz")
    _extract(finished.bundle, run_dir, "run")
    assert (mine / "notes.md").read_text() == "mine" and sorted(p.name for p in mine.iterdir()) == ["notes.md"]
    assert sha256_file(run_dir / "final" / "final_stitched.mp4") == sha256_file(finished.final_video)
    assert local_names(tmp_path / "empty", "run", force=False) == (
        tmp_path / "empty" / "run.tar.gz",
        tmp_path / "empty" / "run",
    )
