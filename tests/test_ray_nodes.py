"""A two-node Ray cluster on loopback: the node running a run dies, the run finishes on the other one.

Three ``ray start --block`` processes, each in its own session (so killing its process group kills
that node: raylet, its workers, its log monitor): a head on 127.0.0.2 with no GPU, and two nodes
on 127.0.0.3 and 127.0.0.4 with one logical GPU each and their own temp and scratch folders, so
nothing of a run in progress is shared between them (Ray replaces 127.0.0.1 with the host's
address, hence the other loopback addresses).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.records.artifacts import sha256_file

ray = pytest.importorskip("ray")

HEAD_IP, NODE_IPS = "127.0.0.2", ("127.0.0.3", "127.0.0.4")
RAY_CLI = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HEAD_IP, 0))
        port: int = s.getsockname()[1]
        return port


def _start_node(args: list[str], folder: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``ray start --block ...`` in its own session; returns once it says the runtime started."""
    folder.mkdir(parents=True)
    # Ray's socket paths must stay under 107 bytes: its temp folder is a short one of its own.
    short = Path(tempfile.mkdtemp(prefix="vgkit-rt-", dir="/tmp"))
    (folder / "ray-temp-dir").write_text(str(short))
    # No log monitor: it only forwards workers' prints to drivers, and vgkit's driver reads its events
    argv = [str(RAY_CLI), "start", "--block", "--disable-usage-stats", "--include-log-monitor=false"]
    argv += [f"--temp-dir={short}", *args]
    node = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    assert node.stdout is not None
    seen = []
    for line in node.stdout:
        seen.append(line)
        if "Ray runtime started" in line:
            threading.Thread(target=node.stdout.read, daemon=True).start()  # keep its pipe drained
            return node
    logs = "".join(f"{p}:\n{p.read_text(errors='replace')[-1500:]}" for p in short.glob("session_*/logs/raylet.out"))
    raise AssertionError("ray start ended without starting:\n" + "".join(seen[-20:]) + logs)


def _kill_node(node: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    node.wait()


@pytest.fixture
def two_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, subprocess.Popen[str]]]]:
    port = _free_port()
    # Token auth on, with this test's own token (nothing read from or written to ~/.ray): every
    # node and the driver get it through their environment.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    env = {**os.environ, "RAY_raylet_start_wait_time_s": "180", "RAY_prestart_worker_first_driver": "0"}
    started: list[subprocess.Popen[str]] = []
    nodes: dict[str, subprocess.Popen[str]] = {}
    try:
        head_args = ["--head", f"--port={port}", f"--node-ip-address={HEAD_IP}", "--num-cpus=1", "--num-gpus=0"]
        started.append(_start_node([*head_args, "--include-dashboard=false"], tmp_path / "head", env))

        def join(ip: str) -> None:
            own = {**env, "VGKIT_RAY_SCRATCH": str(tmp_path / ip / "scratch"), "VGKIT_LOCK_DIR": str(tmp_path / ip)}
            node_args = [f"--address={HEAD_IP}:{port}", f"--node-ip-address={ip}", "--num-cpus=1", "--num-gpus=1"]
            nodes[ip] = _start_node(node_args, tmp_path / ip, own)
            started.append(nodes[ip])

        with ThreadPoolExecutor(len(NODE_IPS)) as pool:  # the two nodes join at once
            list(pool.map(join, NODE_IPS))
        yield f"{HEAD_IP}:{port}", nodes
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for node in reversed(started):
            _kill_node(node)
        for made in tmp_path.glob("*/ray-temp-dir"):
            shutil.rmtree(made.read_text(), ignore_errors=True)


@pytest.mark.slow
def test_a_run_whose_node_dies_finishes_on_the_other_node_byte_identical(
    two_nodes: tuple[str, dict[str, subprocess.Popen[str]]], tmp_path: Path
) -> None:
    """``vgkit sweep --ray ADDRESS`` as its own process (Ray reads its auth mode when imported, so
    the driver gets ``RAY_AUTH_MODE=token`` the way a user's shell would give it). The node's death
    is the worker's loss the driver handles (a killed worker process takes the same path): the run
    resumes on a fresh worker from the one clip that came home and makes no clip twice."""
    import json
    import re

    from vgkit.generate.runner import run_job
    from vgkit.hub.checkpoints import locate_checkpoint
    from vgkit.models import adapter

    address, nodes = two_nodes
    locate_checkpoint(adapter("wan22-tiny"))  # built once here, before a worker looks for it
    spec = write_spec(tmp_path / "spec.yaml", spec_dict(shots=spec_dict()["shots"][:2]))
    out = tmp_path / "driver"
    argv = [sys.executable, "-m", "vgkit", "sweep", str(spec), "--models", "wan22-tiny", "--ray", address]
    driver = subprocess.Popen([*argv, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert driver.stdout is not None
    seen, placed, killed = [], [], []
    for line in driver.stdout:
        seen.append(line)
        placed += re.findall(r"running on node (\S+) GPU", line)
        if "clip 000 came home" in line and not killed:
            killed.append(placed[-1])
            _kill_node(nodes[placed[-1]])
    assert driver.wait(timeout=60) == 0, "".join(seen)
    text = "".join(seen)
    assert len(placed) == 2 and placed[0] == killed[0] and placed[1] != killed[0] and placed[1] in NODE_IPS, text
    assert "resuming after 1 clip(s) that came home" in text
    run = out / "t-wan22-tiny"
    lost, resumed = json.loads((run / "sweep_run.json").read_text())["placements"]
    assert (lost["attempt"], lost["clips_home_at_start"], lost["outcome"]) == (1, 0, "worker lost"), lost
    assert (resumed["attempt"], resumed["clips_home_at_start"]) == (2, 1) and resumed["pid"] != lost["pid"], resumed
    assert text.count("lost (") == 1  # one `worker N lost (why); resuming on another worker` line
    assert [text.count(f"clip {i:03d} came home") for i in (0, 1)] == [1, 1]  # no clip made twice
    undisturbed = run_job(spec, model="wan22-tiny", out=tmp_path / "local", progress=lambda line: None)
    assert sha256_file(run / "final" / "final_stitched.mp4") == sha256_file(undisturbed.final_video)
