"""verify and restitch: hashes, schema, required files, safe extraction, byte-identical rebuild."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.test_bundle_trust import artifacts, finished, forge, rehashed, write_plan
from tests.test_stitch import make_run
from vgkit.cli import main
from vgkit.errors import ArtifactError
from vgkit.finish.encode import ENCODER_ARGS
from vgkit.finish.manifest import stitch_and_record
from vgkit.finish.pack import write_bundle
from vgkit.finish.stitch import StitchSettings
from vgkit.finish.verify import find_problems, restitch, verify
from vgkit.records.artifacts import sha256_file


def _bundled(root: Path, settings: StitchSettings | None = None) -> Path:
    return write_bundle(finished(root, settings))


def _rewrite(bundle: Path, dest: Path, *, change: str, data: bytes) -> Path:
    """A copy of ``bundle`` with member ``change`` (under the run dir) replaced by ``data``."""
    with tarfile.open(bundle) as src, tarfile.open(dest, "w:gz") as out:
        for member in src.getmembers():
            payload = src.extractfile(member)
            body = payload.read() if payload else b""
            if member.name.endswith("/" + change):
                body = data
                member.size = len(data)
            out.addfile(member, io.BytesIO(body))
    return dest


def test_a_fresh_bundle_and_run_dir_verify(tmp_path: Path) -> None:
    bundle = _bundled(tmp_path / "run")
    assert verify(bundle) == 3
    assert verify(tmp_path / "run") == 3
    assert main(["verify", str(bundle)]) == 0


@pytest.mark.parametrize("transition, overlap, colour", [("cut", 0, "off"), ("crossfade", 3, "mean_std")])
def test_restitch_reproduces_the_final_byte_for_byte(
    tmp_path: Path, transition: str, overlap: int, colour: str
) -> None:
    settings = StitchSettings(transition=transition, overlap_frames=overlap, colour=colour)
    bundle = _bundled(tmp_path / "run", settings)
    out = tmp_path / "again" / "rebuilt.mp4"
    result = restitch(bundle, out=out)
    assert result["identical"] is True
    assert sha256_file(out) == sha256_file(tmp_path / "run" / "final" / "final_stitched.mp4")
    assert main(["restitch", str(bundle), "--out", str(tmp_path / "cli.mp4")]) == 0


def test_tampered_clip_fails_verify_naming_the_file(tmp_path: Path) -> None:
    bundle = _bundled(tmp_path / "run")
    tampered = _rewrite(bundle, tmp_path / "tampered.tar.gz", change="clips/clip_001.mp4", data=b"not a video")
    with pytest.raises(ArtifactError) as info:
        verify(tampered)
    message = str(info.value)
    assert "clips/clip_001.mp4: 11 bytes, bundle_index.json says" in message
    assert "clip_000" not in message and "final_stitched" not in message
    run = tmp_path / "run"  # the same change in a run folder: caught by the manifest and the clip log
    (run / "clips" / "clip_001.mp4").write_bytes(b"not a video")
    problems = find_problems(run)
    assert "clips/clip_001.mp4: 11 bytes, manifest.json says" in " | ".join(problems)
    assert "clips/clip_001.mp4: sha256 differs from logs/log_001.json" in problems
    assert "clips/clip_001.mp4: not an MP4 file (no ftyp box); refused" in problems
    assert main(["verify", str(tampered)]) == ArtifactError.exit_code
    with pytest.raises(ArtifactError, match="clip_001"):
        restitch(tampered, out=tmp_path / "x.mp4")


def test_missing_files_and_wrong_schema_are_listed(tmp_path: Path) -> None:
    run = finished(tmp_path / "run")
    (run / "frames" / "last_frame_002.png").unlink()
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "schema": "vgkit.manifest/0"}))
    problems = find_problems(run)
    assert "frames/last_frame_002.png: missing" in problems
    assert "manifest.json: schema 'vgkit.manifest/0', expected 'vgkit.manifest/2'" in problems
    assert find_problems(tmp_path) == ["manifest.json: missing", "plan.json: missing"]


def _evil_bundle(dest: Path, member: tarfile.TarInfo) -> Path:
    """An index covering the manifest (and a clip, for the links), then ``member``."""
    listed = {"manifest.json": b"{}", **({"clips/clip_000.mp4": b""} if member.issym() else {})}
    forge("run", {"manifest.json": b"{}"}, dest, listed=listed)
    with gzip.open(dest) as gz:
        body = gz.read()
    with tarfile.open(fileobj=io.BytesIO(body)) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]  # type: ignore[union-attr]
    with gzip.open(dest, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for m, data in members:
            tar.addfile(m, io.BytesIO(data))
        tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return dest


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "abs_symlink", "rel_symlink_out"])
def test_unsafe_bundles_are_refused_before_anything_is_written(tmp_path: Path, kind: str) -> None:
    if kind == "dotdot":
        member = tarfile.TarInfo("run/../../escaped.txt")
        member.size = 1
    elif kind == "absolute":
        member = tarfile.TarInfo(str(tmp_path / "escaped.txt"))
        member.size = 1
    else:
        member = tarfile.TarInfo("run/clips/clip_000.mp4")
        member.type = tarfile.SYMTYPE
        member.linkname = "/etc/passwd" if kind == "abs_symlink" else "../../../etc/passwd"
    bundle = _evil_bundle(tmp_path / "evil.tar.gz", member)
    with pytest.raises(ArtifactError, match="refused"):
        verify(bundle)
    with pytest.raises(ArtifactError, match="refused"):
        restitch(bundle, out=tmp_path / "x.mp4")
    assert not (tmp_path / "escaped.txt").exists()
    assert not list(tmp_path.parent.glob("escaped.txt"))


@pytest.mark.parametrize(
    "change, match",
    [
        ({"filtergraph": "movie=/etc/passwd[out]"}, r"stitch\.filtergraph is not the graph vgkit's recipe builds"),
        ({"encoder_args": ["-c:v", "libx264", "/tmp/elsewhere.mp4"]}, "not vgkit's pinned recipe"),
        ({"encoder_args": [*ENCODER_ARGS, "-threads", "4", "-y"]}, "not vgkit's pinned recipe"),
        ({"version": 1}, "stitch.version 1: this vgkit rebuilds recipe 2"),
    ],
)
def test_restitch_refuses_a_recipe_vgkit_did_not_write(tmp_path: Path, change: dict[str, object], match: str) -> None:
    run = finished(tmp_path / "run", StitchSettings(colour="mean_std"))
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "stitch": {**manifest["stitch"], **change}}))
    with pytest.raises(ArtifactError, match=match):
        restitch(run, out=tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_restitch_rebuilds_an_upscaled_run_byte_for_byte(tmp_path: Path) -> None:
    """The upscale is rebuilt from the clip logs' sizes (whole numbers), not from a stored filter string."""
    layout = make_run(tmp_path / "run", output_size=(96, 96))
    write_plan(layout, [9, 9, 9])
    manifest = stitch_and_record(layout.root)
    assert manifest["stitch"]["upscale"]["to"] == {"width": 96, "height": 96}
    assert restitch(write_bundle(layout.root), out=tmp_path / "again.mp4")["identical"] is True
    log = json.loads(layout.log(0).read_text())
    log["output_size"] = {"width": "96:flags=lanczos,movie=x", "height": 96}
    files = rehashed(artifacts(layout.root) | {"logs/log_000.json": json.dumps(log).encode()})
    with pytest.raises(ArtifactError, match=r"output_size\.width"):
        restitch(forge("run", files, tmp_path / "b.tar.gz"), out=tmp_path / "x.mp4")
