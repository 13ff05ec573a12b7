"""A bundle is untrusted input: what one can and cannot make vgkit do on the machine that opens it.

The bundles here are forged the way an attacker would: any member, with an index that matches it
(``forge``), so each test shows the defence that does not rely on the index being honest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import REPO
from tests.test_stitch import make_run
from vgkit.errors import ArtifactError
from vgkit.finish.manifest import stitch_and_record
from vgkit.finish.pack import write_bundle
from vgkit.finish.stitch import StitchSettings
from vgkit.finish.verify import find_problems, restitch, verify
from vgkit.records.artifacts import RunLayout, atomic_write_json, file_record

INDEX = "bundle_index.json"


def write_plan(layout: RunLayout, frames: list[int]) -> None:
    """``plan.json`` as `vgkit run` writes it (the fields verify reads), chained clips after the first."""
    clips = [{"index": i, "num_frames": n, "source_image": None} for i, n in enumerate(frames)]
    record = {"clip_count": len(frames), "fps": 24, "clips": clips, "final_frames": sum(frames) - (len(frames) - 1)}
    atomic_write_json(layout.plan, record)


def finished(root: Path, settings: StitchSettings | None = None, *, clips: list[np.ndarray] | None = None) -> Path:
    """A stitched run with its plan and manifest."""
    layout = make_run(root, clips=clips)
    write_plan(layout, [9] * (len(clips) if clips else 3))
    stitch_and_record(root, settings)
    return root


def artifacts(run: Path) -> dict[str, bytes]:
    """Every file under ``run`` by its relative name."""
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def forge(name: str, files: dict[str, bytes], dest: Path, *, listed: dict[str, bytes] | None = None) -> Path:
    """A bundle of ``files`` under ``name/``, its index first, matching ``listed`` (default: ``files``)."""
    entries = [
        {"path": k, "sha256": hashlib.sha256(v).hexdigest(), "bytes": len(v)}
        for k, v in sorted((files if listed is None else listed).items())
    ]
    index = json.dumps({"schema": "vgkit.bundle-index/1", "run": name, "members": entries}).encode()
    with gzip.open(dest, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for member, body in [(INDEX, index), *sorted(files.items())]:
            info = tarfile.TarInfo(f"{name}/{member}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return dest


def rehashed(files: dict[str, bytes]) -> dict[str, bytes]:
    """``files`` with the manifest's artifact records made to match them, as a forger would."""
    manifest = json.loads(files["manifest.json"])
    for record in manifest["artifacts"]:
        body = files.get(record["path"])
        if body is not None:
            record |= {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
    return files | {"manifest.json": json.dumps(manifest).encode()}


def edited_manifest(run: Path, **stitch_changes: Any) -> dict[str, bytes]:
    files = artifacts(run)
    manifest = json.loads(files["manifest.json"])
    manifest["stitch"] = {**manifest["stitch"], **stitch_changes}
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


class Spawned:
    """Every command line this process starts (real processes still run: a spy, not a stand-in)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.argv: list[list[str]] = []
        real = subprocess.Popen
        spawned = self

        class Recording(real):  # type: ignore[misc,valid-type]
            def __init__(self, args: Any, *a: Any, **kw: Any) -> None:
                spawned.argv.append([str(x) for x in args])
                super().__init__(args, *a, **kw)

        monkeypatch.setattr(subprocess, "Popen", Recording)

    def mentions(self, text: str) -> bool:
        return any(text in arg for argv in self.argv for arg in argv)


# --- 1. restitch never runs a stored graph -------------------------------------------------------


SECRET_MOVIE = "secret.mp4"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"filtergraph": "'movie'={secret},settb=1/24,setpts=N[out]"}, id="quoted-filter-name"),
        pytest.param({"filtergraph": "movie={secret}[out]"}, id="plain-movie"),
        pytest.param({"transition": "cut[a];movie={secret}"}, id="setting-text"),
        pytest.param({"overlap_frames": "0[x];movie={secret}"}, id="overlap-text"),
        pytest.param({"fps": "24[x];movie={secret}"}, id="fps-text"),
    ],
)
def test_a_tampered_graph_or_setting_never_reaches_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, str]
) -> None:
    run = finished(tmp_path / "run")
    secret = tmp_path / SECRET_MOVIE
    shutil.copy(run / "final" / "final_stitched.mp4", secret)  # a local file a bundle must not read
    changed = {k: v.format(secret=secret) for k, v in change.items()}
    bundle = forge("run", edited_manifest(run, **changed), tmp_path / "evil.tar.gz")
    spawned = Spawned(monkeypatch)
    with pytest.raises(ArtifactError, match=r"manifest\.json: stitch\."):
        restitch(bundle, out=tmp_path / "out.mp4")
    assert not spawned.mentions("movie") and not spawned.mentions(str(secret))
    assert not (tmp_path / "out.mp4").exists()


def test_a_tampered_colour_table_is_rebuilt_from_its_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored ``lutrgb`` text is never used: restitch remakes it from the gains and offsets."""
    run = finished(tmp_path / "run", StitchSettings(colour="mean_std"))
    manifest = json.loads((run / "manifest.json").read_text())
    colour = manifest["stitch"]["colour_matching"]
    assert any(t["lutrgb"] for t in colour["transforms"]), "the synthetic clips should need a colour table"
    forged = [{**t, "lutrgb": f"movie={tmp_path / SECRET_MOVIE}"} for t in colour["transforms"]]
    bundle = forge("run", edited_manifest(run, colour_matching={**colour, "transforms": forged}), tmp_path / "b.tar.gz")
    spawned = Spawned(monkeypatch)
    assert restitch(bundle, out=tmp_path / "out.mp4")["identical"] is True
    assert not spawned.mentions("movie")
    graphs = [argv[argv.index("-filter_complex") + 1] for argv in spawned.argv if "-filter_complex" in argv]
    assert graphs == [manifest["stitch"]["filtergraph"]]

    bad_gain = [{**colour["transforms"][0], "gain": ["1.0", 1.0, 1.0]}, *colour["transforms"][1:]]
    bundle = forge(
        "run", edited_manifest(run, colour_matching={**colour, "transforms": bad_gain}), tmp_path / "c.tar.gz"
    )
    with pytest.raises(ArtifactError, match=r"transforms\[0\]\.gain"):
        restitch(bundle, out=tmp_path / "out2.mp4")


# --- 2. the index signs off the manifest ---------------------------------------------------------


def test_the_index_covers_every_member_and_the_manifest(tmp_path: Path) -> None:
    run = finished(tmp_path / "run")
    with tarfile.open(write_bundle(run)) as tar:
        names = tar.getnames()
        index = json.loads(tar.extractfile(f"run/{INDEX}").read())  # type: ignore[union-attr]
        bodies = {m.name: tar.extractfile(m).read() for m in tar.getmembers()[1:]}  # type: ignore[union-attr]
    assert names[0] == f"run/{INDEX}"
    listed = {e["path"]: (e["sha256"], e["bytes"]) for e in index["members"]}
    assert "manifest.json" in listed and "plan.json" in listed
    assert {f"run/{p}" for p in listed} == set(bodies)
    for path, (digest, size) in listed.items():
        assert (hashlib.sha256(bodies[f"run/{path}"]).hexdigest(), len(bodies[f"run/{path}"])) == (digest, size)


def test_a_manifest_edited_inside_a_bundle_is_refused_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = finished(tmp_path / "run")
    honest = artifacts(run)
    files = edited_manifest(run, kept_frames_per_clip=[1, 2, 3])
    bundle = forge("run", files, tmp_path / "b.tar.gz", listed=honest)  # the index still lists the old manifest
    spawned = Spawned(monkeypatch)
    for call in (lambda: verify(bundle), lambda: restitch(bundle, out=tmp_path / "x.mp4")):
        with pytest.raises(ArtifactError, match=r"manifest\.json: \d+ bytes, bundle_index\.json says \d+; refused"):
            call()
    assert spawned.argv == []


# --- 3. paths in a manifest or log stay inside the bundle ----------------------------------------


@pytest.mark.parametrize("where", ["manifest", "log"])
@pytest.mark.parametrize("kind", ["absolute", "dotdot"])
def test_paths_outside_the_run_are_refused_without_being_opened(tmp_path: Path, where: str, kind: str) -> None:
    """Whether the outside file exists or not, the answer is the same: no existence oracle, no hashing."""
    run = finished(tmp_path / "run")
    outside = tmp_path / "private.key"
    outside.write_bytes(b"secret")
    name = str(outside) if kind == "absolute" else "../private.key"
    record = file_record(outside, root=tmp_path) | {"path": name}
    files = artifacts(run)
    if where == "manifest":
        manifest = json.loads(files["manifest.json"])
        manifest["artifacts"].append(record)
        files["manifest.json"] = json.dumps(manifest).encode()
    else:
        log = json.loads(files["logs/log_001.json"])
        log["artifacts"]["clip"] = record
        files = rehashed(files | {"logs/log_001.json": json.dumps(log).encode()})
    answers = []
    for exists in (True, False):
        if not exists:
            outside.unlink()
        with pytest.raises(ArtifactError) as info:
            verify(forge("run", files, tmp_path / f"b{exists}.tar.gz"))
        answers.append(str(info.value).replace(str(tmp_path / f"b{exists}.tar.gz"), "B"))
    assert answers[0] == answers[1]
    assert "refused (not opened)" in answers[0]
    assert "bytes" not in answers[0] and "sha256" not in answers[0]


def test_symlinked_artifacts_in_a_run_folder_are_refused(tmp_path: Path) -> None:
    """Same content through a symbolic link would hash fine; it must be refused all the same."""
    run = finished(tmp_path / "run")
    clip = run / "clips" / "clip_001.mp4"
    moved = tmp_path / "elsewhere.mp4"
    clip.rename(moved)
    clip.symlink_to(moved)
    problems = find_problems(run)
    assert "clips/clip_001.mp4: a symbolic link; refused (not opened)" in " | ".join(problems)
    with pytest.raises(ArtifactError, match="symbolic link"):
        write_bundle(run)
    logs = run / "logs"
    logs.rename(tmp_path / "logs-elsewhere")
    logs.symlink_to(tmp_path / "logs-elsewhere")
    assert any("logs/: a symbolic link or not a folder; refused" in p for p in find_problems(run))


# --- 4. extraction: index first, limits, nothing unknown -----------------------------------------


@pytest.fixture
def file_size_limit() -> Iterator[int]:
    """The kernel refuses any file write past 256 MiB in this process while the test runs (RLIMIT_FSIZE)."""
    limit = 256 << 20
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def _bomb(dest: Path, *, index: bool, declared: int | None) -> Path:
    """A ~2 MB gzip that inflates to a 2 GiB member (concatenated gzip members of one zero chunk).

    ``index``: start with an index; ``declared``: the size it gives the member (its sha256 is a
    placeholder: the refusal must come before anything is hashed).
    """
    size = 2 << 30
    head = b""
    if index:
        entry = {"path": "clips/clip_000.mp4", "sha256": "0" * 64, "bytes": declared}
        manifest = {"path": "manifest.json", "sha256": "0" * 64, "bytes": 2}
        body = json.dumps({"schema": "vgkit.bundle-index/1", "run": "run", "members": [entry, manifest]}).encode()
        info = tarfile.TarInfo(f"run/{INDEX}")
        info.size = len(body)
        head += info.tobuf() + body + b"\0" * (-len(body) % 512)
    info = tarfile.TarInfo("run/clips/clip_000.mp4")
    info.size = size
    head += info.tobuf()
    chunk = 64 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = compressor.compress(b"\0" * chunk) + compressor.flush()
    with dest.open("wb") as out:
        out.write(gzip.compress(head))
        for _ in range(size // chunk):
            out.write(zeros)
        out.write(gzip.compress(b"\0" * 1024))
    return dest


@pytest.mark.parametrize(
    "index, declared, match",
    [
        (False, None, "not <run>/bundle_index.json"),
        (True, 2 << 30, "decompression bomb"),
        (True, 1000, "2147483648 bytes, bundle_index.json says 1000"),
    ],
    ids=["no-index", "honest-index", "lying-index"],
)
def test_a_decompression_bomb_is_refused_before_it_is_written(
    tmp_path: Path, file_size_limit: int, index: bool, declared: int | None, match: str
) -> None:
    bundle = _bomb(tmp_path / "bomb.tar.gz", index=index, declared=declared)
    assert bundle.stat().st_size < 8 << 20
    dest = tmp_path / "out"
    with pytest.raises(ArtifactError, match=match):
        from vgkit.finish.bundle import extract_bundle

        extract_bundle(bundle, dest)
    assert not dest.exists() or not any(dest.rglob("*"))
    with pytest.raises(ArtifactError, match="refused"):
        verify(bundle)


@pytest.mark.parametrize(
    "extra, listed, match",
    [
        ({"notes.txt": b"hi"}, False, r"member 'run/notes\.txt' is not run/plan\.json, next in its index; refused"),
        ({"notes.txt": b"hi"}, True, "lists an unknown member"),
        ({"clips/clip_009.mp4": b"x"}, False, r"member 'run/clips/clip_009\.mp4' is not run/final"),
        ({"preview/seams.png": b"x"}, True, "lists an unknown member"),
    ],
)
def test_members_not_in_the_index_or_not_vgkits_are_refused_and_nothing_is_left(
    tmp_path: Path, extra: dict[str, bytes], listed: bool, match: str
) -> None:
    from vgkit.finish.bundle import extract_bundle

    files = artifacts(finished(tmp_path / "run"))
    bundle = forge("run", files | extra, tmp_path / "b.tar.gz", listed=(files | extra) if listed else files)
    dest = tmp_path / "out"
    with pytest.raises(ArtifactError, match=match):
        extract_bundle(bundle, dest)
    assert list(dest.iterdir()) == []


def test_a_member_whose_bytes_differ_from_the_index_is_refused(tmp_path: Path) -> None:
    from vgkit.finish.bundle import extract_bundle

    files = artifacts(finished(tmp_path / "run"))
    changed = {**files, "clips/clip_002.mp4": bytes(reversed(files["clips/clip_002.mp4"]))}
    bundle = forge("run", changed, tmp_path / "b.tar.gz", listed=files)
    with pytest.raises(ArtifactError, match=r"clips/clip_002\.mp4: sha256 differs from bundle_index\.json; refused"):
        extract_bundle(bundle, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_member_count_and_index_size_limits(tmp_path: Path) -> None:
    from vgkit.finish.bundle import MAX_BUNDLE_MEMBERS, extract_bundle

    many = {f"clips/clip_{i:03d}.mp4": b"" for i in range(1000)}
    many |= {f"logs/log_{i:03d}.json": b"" for i in range(MAX_BUNDLE_MEMBERS - 1000 + 1)}
    bundle = forge("run", {"manifest.json": b"{}"}, tmp_path / "b.tar.gz", listed=many | {"manifest.json": b"{}"})
    with pytest.raises(ArtifactError, match=f"more than the limit of {MAX_BUNDLE_MEMBERS}"):
        extract_bundle(bundle, tmp_path / "out")


def test_extraction_never_replaces_an_existing_folder(tmp_path: Path) -> None:
    from vgkit.finish.bundle import extract_bundle

    bundle = write_bundle(finished(tmp_path / "run"))
    dest = tmp_path / "dest"
    (dest / "run").mkdir(parents=True)
    (dest / "run" / "mine.txt").write_text("keep")
    with pytest.raises(ArtifactError, match="File exists"):
        extract_bundle(bundle, dest)
    assert (dest / "run" / "mine.txt").read_text() == "keep"


# --- 5. packing: only vgkit's own artifacts; disk full ---------------------------------------------


def test_only_vgkits_artifacts_of_the_planned_clips_are_packed(tmp_path: Path) -> None:
    run = finished(tmp_path / "run")
    for name in ("logs/notes.txt", "clips/take_2_good.mp4", "frames/.secret", "final/draft.mp4", "final/x/y.mp4"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(b"private")
    with tarfile.open(write_bundle(run)) as tar:
        names = tar.getnames()
    expected = ["bundle_index.json", "final/final_stitched.mp4", "manifest.json", "plan.json"]
    expected += [f"{d}/{f}_{i:03d}.{e}" for i in range(3) for d, f, e in _PER_CLIP]
    assert sorted(names) == sorted(f"run/{n}" for n in expected)


_PER_CLIP = [("clips", "clip", "mp4"), ("frames", "last_frame", "png"), ("logs", "log", "json")]


def _can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--mount", *([] if os.geteuid() == 0 else ["--user", "--map-root-user"]), "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(sys.platform != "linux" or not _can_unshare(), reason="needs a private mount namespace")
def test_disk_full_while_writing_the_bundle_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """A real full disk: a tmpfs just larger than the run, in a private mount namespace (unshare)."""
    noise = np.random.default_rng(0)
    clips = [noise.integers(0, 256, (9, 64, 64, 3), dtype=np.uint8) for _ in range(3)]
    run = finished(tmp_path / "src" / "run", clips=clips)
    size_kb = sum(p.stat().st_size for p in run.rglob("*") if p.is_file()) // 1024 + 96
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f"""
set -e
mount -t tmpfs -o size={size_kb}k tmpfs {disk}
cp -r {run} {disk}/run
set +e
{sys.executable} -m vgkit bundle {disk}/run
echo "exit=$?"
find {disk} -maxdepth 1 | sort
"""
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        ["unshare", "--mount", *user, "sh", "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert "exit=5" in done.stdout, done.stdout + done.stderr
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("vgkit: error: ") and "No space left on device" in error[0]
    assert "no bundle was written" in error[0]
    listing = [line for line in done.stdout.splitlines() if line.startswith(str(disk))]
    assert listing == [str(disk), f"{disk}/run"], "a partial or temp bundle was left behind"


# --- 6. verify against the plan ------------------------------------------------------------------


def _two_clip_manifest_for_three_planned(root: Path) -> Path:
    """The state a stitch left after clip 2's log was deleted: manifest of 2 clips, plan of 3."""
    scratch = make_run(root.parent / "scratch")
    run = finished(root, clips=[_solid(0), _solid(1)])
    layout = RunLayout(run)
    shutil.copy(scratch.clip(2), layout.clip(2))
    shutil.copy(scratch.last_frame(2), layout.last_frame(2))
    write_plan(layout, [9, 9, 9])
    return run


def _solid(i: int) -> np.ndarray:
    from tests.conftest import solid_frames
    from tests.test_stitch import COLOURS, MARKER

    frames = solid_frames(9, COLOURS[i])
    if i:
        frames[0] = MARKER
    return frames


def test_a_deleted_last_log_is_a_problem(tmp_path: Path) -> None:
    run = _two_clip_manifest_for_three_planned(tmp_path / "run")
    problems = find_problems(run)
    assert "manifest.json: clip_count 2, plan.json plans 3 clips" in problems
    assert "logs/log_002.json: missing" in problems
    assert "final/final_stitched.mp4: 17 frames, plan.json gives 25 (3 clips, 0 overlap frames per join)" in problems
    assert all("\n" not in p for p in problems)
    with pytest.raises(ArtifactError, match=r"plan\.json plans 3 clips"):
        verify(run)


def test_an_extra_clip_beyond_the_plan_is_a_problem(tmp_path: Path) -> None:
    """A spec lost a shot; the old run's clip 2 was left in the folder and stitched."""
    run = finished(tmp_path / "run")
    write_plan(RunLayout(run), [9, 9])
    problems = find_problems(run)
    assert "manifest.json: clip_count 3, plan.json plans 2 clips" in problems
    assert "clips/clip_002.mp4: clip 2 is not in plan.json, which plans 2 clips" in problems
    assert "logs/log_002.json: clip 2 is not in plan.json, which plans 2 clips" in problems
    assert "final/final_stitched.mp4: 25 frames, plan.json gives 17 (2 clips, 0 overlap frames per join)" in problems
    with pytest.raises(ArtifactError, match="not bundled"):
        write_bundle(run)


def test_a_wrong_frame_count_is_a_problem(tmp_path: Path) -> None:
    run = finished(tmp_path / "run", StitchSettings(transition="crossfade", overlap_frames=2))
    assert find_problems(run) == []
    write_plan(RunLayout(run), [9, 13, 9])
    problems = find_problems(run)
    assert "logs/log_001.json: 9 frames, plan.json plans 13" in problems
    assert "manifest.json: stitch.final_frames 21, plan.json gives 25 (3 clips, 2 overlap frames per join)" in problems
    assert "final/final_stitched.mp4: 21 frames, plan.json gives 25 (3 clips, 2 overlap frames per join)" in problems


def test_a_final_with_other_frames_than_recorded_is_a_problem(tmp_path: Path) -> None:
    """Hashes re-recorded to match, but the video is longer than the plan: counted, not trusted."""
    run = finished(tmp_path / "run")
    from vgkit.finish.encode import encode_frames

    encode_frames(np.zeros((30, 64, 64, 3), dtype=np.uint8), fps=24, dest=run / "final" / "final_stitched.mp4")
    manifest = json.loads((run / "manifest.json").read_text())
    final = file_record(run / "final" / "final_stitched.mp4", root=run)
    manifest["artifacts"] = [final if a["path"] == final["path"] else a for a in manifest["artifacts"]]
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert find_problems(run) == [
        "final/final_stitched.mp4: 30 frames, plan.json gives 25 (3 clips, 0 overlap frames per join)"
    ]


def test_a_clip_that_is_not_an_mp4_is_refused_before_ffmpeg_sees_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ffmpeg probes content, not names: a playlist named .mp4 could make it read other files."""
    run = finished(tmp_path / "run")
    files = artifacts(run)
    playlist = f"#EXTM3U\n#EXTINF:1,\nfile://{tmp_path / SECRET_MOVIE}\n".encode()
    files["clips/clip_001.mp4"] = playlist
    log = json.loads(files["logs/log_001.json"])
    log["artifacts"]["clip"] |= {"sha256": hashlib.sha256(playlist).hexdigest(), "bytes": len(playlist)}
    files = rehashed(files | {"logs/log_001.json": json.dumps(log).encode()})
    spawned = Spawned(monkeypatch)
    with pytest.raises(ArtifactError, match=r"clips/clip_001\.mp4: not an MP4 file \(no ftyp box\); refused"):
        restitch(forge("run", files, tmp_path / "b.tar.gz"), out=tmp_path / "x.mp4")
    assert not spawned.mentions("clip_001")


# --- 7. malformed records are problems, never tracebacks ----------------------------------------

ODD_VALUES: list[Any] = [None, "x", -1, 10**30, [1], {}, float("nan")]


def _set(record: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = json.loads(json.dumps(record))
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


def test_odd_values_in_the_fields_verify_reads_give_one_line_problems(tmp_path: Path) -> None:
    run = finished(tmp_path / "run")
    read = {
        "manifest.json": [("schema",), ("artifacts",), ("clip_count",), ("stitch",), ("actual",)],
        "plan.json": [("clip_count",), ("clips",), ("clips", 1)],
        "logs/log_001.json": [("schema",), ("index",), ("effective",), ("effective", "num_frames"), ("artifacts",)],
    }
    read["manifest.json"] += [("stitch", "overlap_frames"), ("stitch", "final_frames"), ("artifacts", 0)]
    read["logs/log_001.json"] += [("artifacts", "clip")]
    for name, paths in read.items():
        text = (run / name).read_text()
        for path in paths:
            for value in (None, "x", [1]):
                (run / name).write_text(json.dumps(_set(json.loads(text), path, value)))
                problems = find_problems(run)  # must not raise
                assert problems and all("\n" not in p for p in problems), (name, path, value)
        (run / name).write_text(text)
    assert find_problems(run) == []


def test_odd_values_in_a_stitch_record_or_log_are_refused_by_the_rebuild(tmp_path: Path) -> None:
    """``filtergraph_from_record`` returns vgkit's own graph or raises ``ArtifactError``; nothing else."""
    from vgkit.finish.stitch import filtergraph_from_record
    from vgkit.records.schema import parse_log

    run = finished(tmp_path / "run", StitchSettings(colour="mean_std"))
    stitch = json.loads((run / "manifest.json").read_text())["stitch"]
    logs = [json.loads((run / "logs" / f"log_{i:03d}.json").read_text()) for i in range(3)]
    parsed = [parse_log(log, source="log") for log in logs]
    assert filtergraph_from_record(stitch, parsed) == stitch["filtergraph"]
    paths = [(k,) for k in stitch] + [("colour_matching", "transforms", 1, k) for k in ("gain", "offset")]
    paths += [("colour_matching", "transforms", 1, "gain", 0), ("seam_smoothing", "mode")]
    for path in paths:
        for value in ODD_VALUES:
            try:
                graph = filtergraph_from_record(_set(stitch, path, value), parsed)
            except ArtifactError:
                continue
            assert graph == stitch["filtergraph"], (path, value)  # a field the graph does not depend on
    for path in [("index",), ("effective",), ("effective", "num_frames"), ("effective", "fps"), ("input",)]:
        for value in ODD_VALUES:
            odd = [logs[0], _set(logs[1], path, value), logs[2]]
            try:
                graph = filtergraph_from_record(stitch, [parse_log(log, source="log") for log in odd])
            except ArtifactError:
                continue
            assert graph == stitch["filtergraph"], (path, value)
