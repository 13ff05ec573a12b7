"""Prefetch against a local Hub stand-in (tests/hub_server.py) with the real huggingface_hub client.

The served repo is the real ``wan22`` adapter's repo id holding the tiny Wan 2.2 checkpoint, plus
a pickle file and a README that prefetch must skip.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.hub_server import HubRepo, HubServer
from vgkit.errors import ModelUnavailableError, SpecError
from vgkit.hub.cache import check_snapshot, read_file_record, repo_cache_dir, snapshot_dir
from vgkit.hub.checkpoints import locate_checkpoint
from vgkit.hub.prefetch import check_models, prefetch, prefetch_repo, wanted
from vgkit.hub.results import human_bytes
from vgkit.models import adapter

WAN = adapter("wan22")
CANARY = "hf_CANARYtoken0123456789"  # the token the server accepts; must never land in a file
LFS_FILE = "transformer/diffusion_pytorch_model-00001-of-00005.safetensors"  # the real repo shards it


@pytest.fixture(scope="module")
def tiny_files() -> dict[str, bytes]:
    snap = locate_checkpoint(adapter("wan22-tiny"))
    files = HubRepo.from_dir(WAN.repo_id, snap).files
    return files | {"pytorch_model.bin": b"pickle" * 50, "README.md": b"# tiny\n"}


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_files: dict[str, bytes]) -> Iterator[HubServer]:
    """A running Hub stand-in; the client points at it; caches, HF_HOME and token file in tmp."""
    import huggingface_hub.constants as hf_constants

    repos = [HubRepo(WAN.repo_id, dict(tiny_files)), HubRepo("gated/model", dict(tiny_files), gated=True)]
    with HubServer(repos, valid_tokens={CANARY}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("HF_TOKEN", CANARY)
        monkeypatch.delenv("HF_HUB_OFFLINE")
        # The client reads these at import; conftest imported it offline.
        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "home" / "token"))
        yield server


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _vgkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vgkit", *args], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120
    )


def test_full_prefetch_then_second_run_downloads_nothing(hub: HubServer) -> None:
    lines: list[str] = []
    report = prefetch("wan22", progress=lines.append)
    assert report.complete and report.commit == hub.repos[0].commit
    kept = {path: data for path, data in hub.repos[0].files.items() if wanted(path)}  # not the .bin/README
    assert report.downloaded == len(report.files) == len(kept) > 10  # the twin's real file set, sharded
    assert {f.check for f in report.files} == {"sha256", "git-sha1"} and all(f.ok for f in report.files)
    assert f"need {human_bytes(sum(map(len, kept.values())))}, cached 0 B, free disk" in lines[0]
    snap = snapshot_dir(WAN.repo_id, WAN.revision)
    assert snap is not None and (snap / LFS_FILE).is_file()
    assert not (snap / "pytorch_model.bin").exists() and not (snap / "README.md").exists()
    assert not any(p.endswith((".bin", "README.md")) for p in hub.downloads())
    assert (repo_cache_dir(WAN.repo_id) / "refs" / "main").read_text() == report.commit

    before = len(hub.requests)
    again = prefetch("wan22", progress=lines.append)
    new_requests = hub.requests[before:]
    assert again.complete and again.downloaded == 0 and again.bytes_cached == again.bytes_needed
    assert [m for m, _ in new_requests] == ["GET"] and "/api/models/" in new_requests[0][1]


def test_downloads_go_through_snapshot_download(hub: HubServer) -> None:
    """The Hub's request log shows huggingface_hub's ``snapshot_download`` at work: it resolves the
    revision once, lists the tree at that commit, then asks for each wanted file at the commit
    (never at the branch), every request sent as vgkit and flagged as part of a download."""
    import huggingface_hub

    import vgkit

    report = prefetch("wan22", progress=lambda _: None)
    repo, commit, served = WAN.repo_id, report.commit, hub.repos[0]
    api = f"/api/models/{repo}"
    assert hub.requests[:2] == [("GET", f"{api}/revision/main"), ("GET", f"{api}/tree/{commit}")]
    assert [p for _, p in hub.requests].count(f"{api}/revision/main") == 1
    kept = [p for p in served.files if wanted(p)]
    asked = {p.removeprefix(f"/{repo}/resolve/{commit}/") for m, p in hub.requests if m == "HEAD"}
    assert asked == set(kept) and not any("/resolve/main/" in p for _, p in hub.requests)
    small = [f"/{repo}/resolve/{commit}/{p}" for p in kept if not served.is_lfs(p)]
    lfs = [f"/lfs/{hashlib.sha256(served.files[p]).hexdigest()}" for p in kept if served.is_lfs(p)]
    assert sorted(hub.downloads()) == sorted(small + lfs)  # each wanted file fetched once, bytes from the CDN
    agent = f"vgkit/{vgkit.__version__}; hf_hub/{huggingface_hub.__version__};"
    assert all(h["user-agent"].startswith(agent) and h["x-hf-download-counter"] == "1" for h in hub.headers)


def test_check_is_offline_and_reports_completeness(hub: HubServer) -> None:
    assert _vgkit("prefetch", "--check", "--model", "wan22").returncode == 3  # not fetched yet
    assert check_models(["wan22-tiny"])[0].status == "not built (built on first use)"
    prefetch("wan22", progress=lambda _: None)
    prefetch("wan22-tiny", progress=lambda _: None)  # tiny checkpoints share the layout and the check
    before = len(hub.requests)
    (status,) = check_models(["wan22"])
    assert status.complete and status.status == "complete"
    assert status.num_files == len([p for p in hub.repos[0].files if wanted(p)])
    assert os.environ.get("HF_HUB_OFFLINE") is None  # restored after the check
    done = _vgkit("prefetch", "--check", "--model", "wan22", "--model", "wan22-tiny")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("True") == 2 and "False" not in done.stdout
    assert len(hub.requests) == before  # neither the in-process nor the CLI check touched the network


def test_corrupt_blob_of_right_size_is_detected_and_refetched(hub: HubServer) -> None:
    prefetch("wan22", progress=lambda _: None)
    snap = snapshot_dir(WAN.repo_id, WAN.revision)
    assert snap is not None
    blob = (snap / LFS_FILE).resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))  # same size, different content

    assert check_models(["wan22"])[0].complete  # sizes alone cannot see it
    (status,) = check_models(["wan22"], verify=True)
    assert not status.complete and "corrupt" in status.status and LFS_FILE in status.status

    before = len(hub.downloads())
    report = prefetch("wan22", verify_all=True, progress=lambda _: None)
    assert report.complete and len(hub.downloads()) - before == 1
    assert [f.path for f in report.files if f.downloaded] == [LFS_FILE]
    assert check_snapshot(WAN.repo_id, WAN.revision, verify=True).complete


def test_dropped_connection_is_retried_without_orphans(hub: HubServer) -> None:
    hub.drop_after_bytes[LFS_FILE] = 10_000
    report = prefetch("wan22", progress=lambda _: None)
    assert report.complete and all(f.ok for f in report.files)
    lfs_files = [p for p in hub.repos[0].files if hub.repos[0].is_lfs(p)]
    assert sum(p.startswith("/lfs/") for p in hub.downloads()) == len(lfs_files) + 1  # + 1 retry
    assert not list((repo_cache_dir(WAN.repo_id) / "blobs").glob("*.incomplete"))


def test_killed_download_leaves_orphan_that_next_prefetch_sweeps(hub: HubServer) -> None:
    hub.stall_after_bytes[LFS_FILE] = 10_000
    blobs = repo_cache_dir(WAN.repo_id) / "blobs"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from vgkit.hub.prefetch import prefetch; prefetch('wan22')"],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    snap = repo_cache_dir(WAN.repo_id) / "snapshots" / hub.repos[0].commit
    others = [p for p in hub.repos[0].files if wanted(p) and p != LFS_FILE]
    try:
        deadline = time.monotonic() + 90
        # Files download in parallel: the other workers land every other file while one stalls. The
        # client writes in 10 MB chunks, so the stalled file's .incomplete stays empty.
        while not (hub.stalled.is_set() and all((snap / p).is_file() for p in others)):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"download never started: {proc.communicate()[0]!r}")
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(list(blobs.glob("*.incomplete"))) == 1
    hub.release.set()

    report = prefetch("wan22", progress=lambda _: None)
    assert report.complete and report.orphans_removed == 1
    assert not list(blobs.glob("*.incomplete"))


def _one_line_error(exc: pytest.ExceptionInfo[Exception]) -> str:
    message = str(exc.value)
    assert "\n" not in message and CANARY not in message
    return message


def test_missing_repo_gated_repo_bad_token_and_no_network(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SpecError) as missing:
        prefetch_repo("nobody/nothing", "main", progress=lambda _: None)
    assert "not found" in _one_line_error(missing) and "nobody/nothing" in str(missing.value)

    with pytest.raises(SpecError) as bad_rev:
        prefetch_repo(WAN.repo_id, "v9", progress=lambda _: None)
    assert "revision 'v9' not found" in _one_line_error(bad_rev)

    with pytest.raises(ModelUnavailableError) as gated_403:  # a token without access
        prefetch_repo("gated/model", "main", progress=lambda _: None)
    assert "gated" in _one_line_error(gated_403) and "HTTP 403" in str(gated_403.value)

    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(ModelUnavailableError) as gated_401:  # no token at all
        prefetch_repo("gated/model", "main", progress=lambda _: None)
    assert "gated" in _one_line_error(gated_401) and "HTTP 401" in str(gated_401.value)

    monkeypatch.setenv("HF_TOKEN", "hf_revoked")
    with pytest.raises(ModelUnavailableError) as bad_token:
        prefetch("wan22", progress=lambda _: None)
    assert "rejected your token" in _one_line_error(bad_token)

    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # as the client reads HF_HUB_OFFLINE=1 at import
    with pytest.raises(ModelUnavailableError) as offline_mode:
        prefetch("wan22", progress=lambda _: None)
    assert "prefetch needs the network but HF_HUB_OFFLINE is set" in _one_line_error(offline_mode)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ModelUnavailableError) as offline:
        prefetch("wan22", progress=lambda _: None)
    assert "cannot reach http://127.0.0.1:9" in _one_line_error(offline)
    assert hub.downloads() == []


def test_refuses_when_disk_cannot_hold_it(hub: HubServer) -> None:
    hub.repos[0].claimed_sizes[LFS_FILE] = 2**60
    with pytest.raises(ModelUnavailableError) as full:
        prefetch("wan22", progress=lambda _: None)
    assert "free; fix: free space or point HF_HUB_CACHE" in _one_line_error(full)
    assert hub.downloads() == []


def test_cli_prints_plain_progress_and_never_writes_the_token(hub: HubServer, tmp_path: Path) -> None:
    done = _vgkit("prefetch", "--model", "wan22")
    assert done.returncode == 0, done.stderr
    count = len([p for p in hub.repos[0].files if wanted(p)])
    assert f"[{count}/{count}]" in done.stdout and "sha256 ok" in done.stdout and "\r" not in done.stdout + done.stderr
    assert _vgkit("prefetch").returncode == 2  # no models named
    assert any(CANARY in h for h in hub.auth_headers)  # the token was used ...
    written = [p for p in tmp_path.rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()]
    assert written == []  # ... and written nowhere
    assert read_file_record(WAN.repo_id, hub.repos[0].commit) is not None


def test_incomplete_snapshot_is_not_offered_to_runs(hub: HubServer) -> None:
    prefetch("wan22", progress=lambda _: None)
    snap = snapshot_dir(WAN.repo_id, WAN.revision)
    assert snap is not None
    (snap / "vae" / "config.json").unlink()
    assert snapshot_dir(WAN.repo_id, WAN.revision) is None
    assert check_snapshot(WAN.repo_id, WAN.revision).problems["missing"] == ["vae/config.json"]


def test_prefetch_notebook_runs_headless(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill

    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel inherits os.environ
    out = tmp_path / "prefetch-out.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / "prefetch.ipynb"),
        str(out),
        parameters={"models": "wan22", "check_only": False},
        cwd=str(REPO),
        kernel_name="python3",
        progress_bar=False,
    )
    text = out.read_text()
    count = len([p for p in hub.repos[0].files if wanted(p)])
    assert f"complete, {count} downloaded" in text and CANARY not in text
    assert check_models(["wan22"])[0].complete
