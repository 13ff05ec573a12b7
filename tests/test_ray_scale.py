"""Scale-out on Ray (vgkit.scale): one local Ray cluster for the module, 2 CPUs, 2 logical GPUs.

Logical GPUs stand in for real ones: Ray schedules one ``num_gpus=1`` worker per logical GPU and
sets its ``CUDA_VISIBLE_DEVICES``; the tiny model twins run on CPU (``VGKIT_FORCE_CPU=1``).
"""

from __future__ import annotations

import itertools
import os
import signal
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.scale.cells import make_cells
from vgkit.scale.scheduler import run_cells
from vgkit.supervise.lock import DeviceBusyError, acquire_device_lock

ray = pytest.importorskip("ray")

TINY_MODELS = ["wan22-tiny", "cogvideox15-tiny", "hunyuan-i2v-tiny"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One local Ray for these tests: 2 CPUs, 2 logical GPUs, a small object store, no dashboard.

    Its processes inherit this environment: device locks and worker scratch folders in tmp paths.
    The tiny checkpoints are built here first: two workers building one at once in a fresh cache
    would race (vgkit.hub.checkpoints builds them on first use without a lock).
    """
    from vgkit.hub.checkpoints import locate_checkpoint
    from vgkit.models import adapter

    for name in TINY_MODELS:
        locate_checkpoint(adapter(name))
    here = tmp_path_factory.mktemp("ray")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VGKIT_LOCK_DIR", str(here / "locks"))
        mp.setenv("VGKIT_RAY_SCRATCH", str(here / "scratch"))
        mp.setenv("RAY_raylet_start_wait_time_s", "180")  # two busy cores: a raylet can take over 30 s
        mp.setenv("RAY_prestart_worker_first_driver", "0")  # vgkit's actors never use a prestarted task worker
        yield from _local_ray(here)


def _local_ray(here: Path) -> Iterator[Path]:
    ray.init(
        address="local",
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        object_store_memory=100 * 1024 * 1024,
        log_to_driver=False,
    )
    yield here
    ray.shutdown()


@pytest.fixture
def scale_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Locks and worker scratch folders in this test's tmp path (forwarded to the workers)."""
    monkeypatch.setenv("VGKIT_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("VGKIT_RAY_SCRATCH", str(tmp_path / "scratch"))
    return tmp_path


def _shots(count: int) -> list[dict[str, Any]]:
    """``count`` of the 5 s shots of ``spec_dict`` (the shortest a shot may be)."""
    shots: list[dict[str, Any]] = spec_dict()["shots"][:count]
    return shots


@pytest.mark.slow
def test_a_two_by_two_sweep_on_ray_holds_each_gpus_lock_loads_each_model_once_and_reports_each_run(
    cluster: Path, scale_env: Path
) -> None:
    """What ``vgkit sweep --seeds 2 --ray`` runs (vgkit.scale.runs ``run_scaled``), two models by two seeds
    on the two GPUs: while a worker lives, vgkit's lock of its GPU is held and no two runs overlap on
    one GPU; each worker loads each model once; each run's progress lines are printed as its events
    come home (the lines are the events its events.jsonl holds), before the run is done; the report
    names each run's node and GPU, finds no GPU overlap and bills each GPU's timeline. (A driver in
    its own process joining the cluster by address: the Ctrl-C, batch and node-death tests.)"""
    import json
    import re

    from vgkit.evaluate.sweep import write_sweep_record
    from vgkit.records.events import read_events
    from vgkit.scale.runs import run_scaled
    from vgkit.scale.scheduler import RayOptions

    models = TINY_MODELS[:2]
    spec = write_spec(scale_env / "spec.yaml", spec_dict(shots=_shots(1)))
    out = scale_env / "sweep"
    cells = make_cells([spec], models=models, seeds=2, root=out)
    write_sweep_record(out, "t", models)
    events: list[dict[str, Any]] = []
    refused: list[str] = []
    lines: list[str] = []

    def record(event: dict[str, Any]) -> None:
        events.append(event)
        if event["kind"] == "start":  # while a worker lives, vgkit's lock of its GPU is held
            try:
                acquire_device_lock(f"cuda-{event['gpu']}", run_dir=scale_env, directory=scale_env / "locks")
            except DeviceBusyError as exc:
                refused.append(str(exc))

    result = run_scaled(
        cells, root=out, ray=RayOptions(), progress=lines.append, on_event=record, prompt_match_model=None
    )

    assert [o.status for o in result.outcomes] == ["completed"] * 4, [o.detail for o in result.outcomes]
    starts = [e for e in events if e["kind"] == "start"]
    gpus_by_pid = {e["pid"]: e["gpu"] for e in starts}
    assert len(gpus_by_pid) == 2 and sorted(gpus_by_pid.values()) == ["0", "1"]
    # No two jobs overlap on one GPU: per GPU, each run's [start, done] interval (the worker's clock).
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    began = {e["cell"]: e["worker_t"] for e in starts}
    for done in (e for e in events if e["kind"] == "done"):
        spans[done["gpu"]].append((began[done["cell"]], done["worker_t"]))
    for gpu, intervals in spans.items():
        intervals.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(intervals)), (gpu, intervals)
    loads = Counter((e["pid"], e["loaded"]) for e in events if e["kind"] == "load")
    assert loads and max(loads.values()) == 1, loads
    assert {model for _, model in loads} == set(models)
    assert not any((scale_env / "scratch").iterdir())  # workers deleted their scratch folders
    assert len(refused) == len(starts) and all(f"pid {e['pid']}" in r for e, r in zip(starts, refused, strict=True))

    runs = [cell.run_dir for cell in cells]
    for run in runs:
        assert (run / "final" / "final_stitched.mp4").is_file()
        mine = [line.removeprefix(f"[{run.name}] ") for line in lines if line.startswith(f"[{run.name}] ")]
        done = mine.index(next(line for line in mine if line.startswith("completed")))
        run_events = read_events(run)
        stages = [e.stage for e in run_events]
        assert {"load", "clip-start", "denoise", "clip-done", "stitch", "qa"} <= set(stages), stages
        # every event came home and was printed as it arrived, before the run completed
        firsts = [str(e).splitlines()[0] for e in run_events]  # a plan prints as several lines
        assert firsts == [line for line in mine[:done] if line in set(firsts)]
        assert any(re.fullmatch(r"clip 1/1: step \d+/\d+ .*", line) for line in mine[:done]), mine
    record_of_run = json.loads((runs[0] / "sweep_run.json").read_text())
    [placement] = record_of_run["placements"]
    where = f"node {placement['node']} GPU {placement['gpu']} (worker pid {placement['pid']})"
    assert f"[{runs[0].name}] running on {where}" in lines
    assert result.report_markdown is not None and result.report_html is not None
    report = result.report_markdown.read_text()
    assert "Ray placements: 4 attempt(s) of 4 run(s) on 2 GPU(s) of 1 node(s)." in report
    assert "GPU overlap (from placements): none (one job per GPU at a time)." in report
    assert report.count(f"#### {placement['node']} GPU ") == 2  # each GPU's billing timeline
    assert all(f"| {run.name} | " in report for run in runs)  # each run's placement row
    assert "Source: events.jsonl timestamps." in report  # each run's own timeline, from its events
    assert "Per GPU (Ray)" in result.report_html.read_text()
    in_json = json.loads((out / "report" / "report.json").read_text())["runs"]
    assert sorted((p["node"], p["gpu"]) for r in in_json for p in r["placements"]) == sorted(
        (p["node"], p["gpu"]) for run in runs for p in json.loads((run / "sweep_run.json").read_text())["placements"]
    )


def _processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_ctrl_c_on_a_cli_driver_leaves_no_worker_process(cluster: Path, scale_env: Path) -> None:
    """``vgkit sweep --ray ADDRESS`` joins the running cluster; SIGINT mid-clip kills its workers."""
    import re
    import subprocess
    import sys
    import time

    spec = write_spec(scale_env / "spec.yaml", spec_dict(shots=_shots(3)))
    address = ray.get_runtime_context().gcs_address
    argv = [sys.executable, "-m", "vgkit", "sweep", str(spec), "--models", "wan22-tiny", "--ray", address]
    argv += ["--out", str(scale_env / "sweep")]
    driver = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert driver.stdout is not None
    pids, seen = set(), []
    for line in driver.stdout:
        seen.append(line)
        pids |= {int(p) for p in re.findall(r"worker pid (\d+)", line)}
        if ": generating " in line:  # a clip is being made on a worker
            break
    assert pids, "".join(seen)
    assert all(_alive(pid) for pid in pids)
    driver.send_signal(signal.SIGINT)
    rest, _ = driver.communicate(timeout=120)
    assert driver.returncode == 130, rest
    assert "interrupted; finished clips are kept" in rest
    deadline = time.monotonic() + 30  # Ray reaps a killed actor's process asynchronously
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in pids if _alive(pid)]
    # nor an encoder (ffmpeg) of theirs still writing a clip into their scratch folders
    assert not _processes_mentioning(str(cluster / "scratch"))


@pytest.mark.slow
def test_a_cli_batch_on_a_running_cluster_shows_progress_and_a_deadline_holds_on_its_worker(
    cluster: Path, scale_env: Path
) -> None:
    """``vgkit batch A B --model M --ray ADDRESS``: A finishes; B's clip deadline (0.01 s) stops it on
    its worker, recorded as a guardrail failure (exit code 6) while A goes on; the batch exits 1."""
    import json
    import subprocess
    import sys

    one_shot = _shots(1)
    fine = write_spec(scale_env / "a.yaml", spec_dict(name="a", shots=one_shot))
    rushed = write_spec(scale_env / "b.yaml", spec_dict(name="b", shots=one_shot, clip_timeout_s=0.01))
    argv = [sys.executable, "-m", "vgkit", "batch", str(fine), str(rushed), "--model", "wan22-tiny"]
    argv += ["--ray", ray.get_runtime_context().gcs_address, "--out", str(scale_env / "batch")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[a-wan22-tiny] clip 000 came home (sha256 verified)" in done.stdout
    assert "a-wan22-tiny: completed" in done.stdout
    assert (scale_env / "batch" / "a-wan22-tiny" / "final" / "final_stitched.mp4").is_file()
    failure = json.loads((scale_env / "batch" / "b-wan22-tiny" / "failure.json").read_text())
    assert failure["exit_code"] == 6 and "deadline" in failure["message"], failure
    assert (scale_env / "batch" / "report" / "report.html").is_file()


@pytest.mark.slow
def test_a_gpu_another_vgkit_job_holds_is_not_used_and_the_run_fails_saying_why(cluster: Path, scale_env: Path) -> None:
    spec = write_spec(scale_env / "spec.yaml", spec_dict(shots=_shots(1)))
    cells = make_cells([spec], models=["wan22-tiny"], root=scale_env / "ray")
    held = [acquire_device_lock(f"cuda-{gpu}", run_dir=scale_env, directory=scale_env / "locks") for gpu in "01"]
    try:
        [outcome] = run_cells(cells, progress=lambda line: None, qa=False)
    finally:
        for lock in held:
            lock.release()
    assert outcome.status == "failed"
    assert "no worker left alive to run it; the last could not start" in outcome.detail
    assert "DeviceBusyError" in outcome.detail and f"pid {os.getpid()}" in outcome.detail


@pytest.mark.slow
def test_the_compare_notebooks_sweep_on_ray_shows_each_run_live_in_a_table(cluster: Path, scale_env: Path) -> None:
    """What compare_models.ipynb runs with ``ray`` set (vgkit.lab.compare): a table of the runs is
    displayed and updated as their events arrive; watched through ipywidgets' own construction hook.
    One model: the table's row per run and its states are the same for any count (the 2 x 2 sweep
    above runs several runs at once through the same ``run_scaled``)."""
    import re

    import ipywidgets

    from vgkit.lab.compare import compare

    snapshots: list[str] = []

    def watch(widget: ipywidgets.Widget) -> None:
        if isinstance(widget, ipywidgets.HTML):
            snapshots.append(widget.value)
            widget.observe(lambda change: snapshots.append(change["new"]), names="value")

    spec = write_spec(scale_env / "spec.yaml", spec_dict(shots=_shots(1)))
    previous = ipywidgets.Widget._widget_construction_callback
    ipywidgets.Widget.on_widget_constructed(watch)
    try:
        result = compare(
            spec,
            models=["wan22-tiny"],
            out=scale_env / "compare",
            ray=ray.get_runtime_context().gcs_address,
        )
    finally:
        ipywidgets.Widget.on_widget_constructed(previous)
    assert [row.status for row in result.rows] == ["completed"], [row.detail for row in result.rows]
    assert result.report_html.is_file()
    cells = r"<tr><td>{}</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>"
    for row in result.rows:
        seen = [m.groups() for html in snapshots if (m := re.search(cells.format(re.escape(row.run_dir.name)), html))]
        states = [state for _, state, _, _ in seen]
        assert states[0] == "queued" and states[-1] == "completed", states
        assert ("denoise", "1/1") in [(state, clip) for _, state, clip, _ in seen], seen  # while it ran
        assert re.fullmatch(r".+ GPU [01]", seen[-1][0]), seen[-1]
