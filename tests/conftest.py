"""Shared fixtures, and the cost markers and xdist groups every test gets here, centrally.

No test touches the user's HF cache or writes outside tmp paths. Each xdist worker has its own
``tmp_path_factory`` base folder, so the session fixtures (the HF cache with the tiny checkpoints
built in it) are per worker: nothing is shared between two workers but what an ``xdist_group``
puts on one worker (``pytest_collection_modifyitems`` below).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

# One OpenMP/BLAS thread per xdist worker (and every process it starts: kernels, papermill, the CLI),
# set before torch is imported. Two workers on two cores with torch's default of one thread per core
# spent about half their CPU time spinning in OpenMP waits (user CPU 137 s vs 76 s for the same tests,
# benchmarks/test_suite_times.md). Serial runs keep torch's default.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _threads in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_threads, "1")

# A shell without job control starts a background command (`bash .ci/run &`) with SIGINT ignored,
# and an ignored signal stays ignored in every child: the Ctrl-C tests' commands would never see
# their SIGINT. Python's own handler again, so children start with the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parent.parent
DEMO_IMAGE = REPO / "params" / "images" / "lighthouse.png"


@pytest.fixture(scope="session")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One HF hub cache for the session, so the tiny checkpoint is built once."""
    return tmp_path_factory.mktemp("hf-hub-cache")


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(hub_cache: Path) -> Iterator[None]:
    """Session-wide (module fixtures run before function ones): HF caches in tmp, offline, no GPU."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(hub_cache))
        mp.setenv("HF_HOME", str(hub_cache.parent / "hf-home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("VGKIT_FORCE_CPU", "1")
        mp.delenv("VGKIT_FFMPEG_THREADS", raising=False)
        yield


def spec_dict(**changes: Any) -> dict[str, Any]:
    """A valid spec as a dict (three 5 s shots, any length allowed), with top-level changes."""
    base: dict[str, Any] = {
        "name": "t",
        "model": "wan22-tiny",
        "reference_image": str(DEMO_IMAGE),
        "seed": 7,
        "globals": {
            "style": "photoreal",
            "era_location": "modern coast",
            "lighting": "bright day",
            "lens": "35mm",
            "aspect": "16:9",
        },
        "negative_prompt": "blur",
        "shots": [
            {
                "subject": f"boat {i}",
                "action": "sails",
                "environment": "sea",
                "camera": "pan",
                "duration_s": 5,
            }
            for i in range(3)
        ],
        "overrides": {"width": 64, "height": 64, "steps": 2},
        "allow_any_length": True,
    }
    base.update(changes)
    return base


def write_spec(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps(data))
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def small_spec(tmp_path: Path) -> Path:
    return write_spec(tmp_path / "spec.yaml", spec_dict())


def solid_frames(count: int, color: tuple[int, int, int], *, size: tuple[int, int] = (64, 48)) -> np.ndarray:
    """``count`` frames of one colour, (F, H, W, 3) uint8; ``size`` is (width, height)."""
    width, height = size
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    frames[...] = color
    return frames


# ---------------------------------------------------------------------------------------------
# Cost markers and xdist groups (markers registered in pyproject.toml; README "How it is built").
#
# A test's markers come from what it uses, so test files rarely need one: the modules in
# MODULE_COSTS, the fixtures in FIXTURE_COSTS, and the text of the test, of the module-level
# helpers it calls and of the module fixtures it uses (COST_PATTERNS). A test may still carry a
# marker of its own. The inner loop (`bash scripts/test.sh --fast`) deselects every costly marker.

MODULE_COSTS: dict[str, tuple[str, ...]] = {
    "test_browser": ("browser", "notebook"),  # JupyterLab + headless Chromium, Run All on the notebooks
    "test_remote": ("sshd", "subprocess"),  # the loopback OpenSSH server; a real setup.sh on the "host"
    "test_remote_doctor": ("sshd",),
    "test_ray_scale": ("ray", "e2e"),  # a local Ray cluster running sweeps
    "test_ray_nodes": ("ray", "e2e", "subprocess"),  # three `ray start` nodes
    "test_quickstart": ("e2e", "notebook", "subprocess"),  # `vgkit demo`: 30 s of video through papermill
    "test_resume": ("e2e", "subprocess"),  # a job SIGKILLed and resumed, in child processes
    "test_durations": ("e2e",),  # 60 s films on all three twins
    "test_rundir_property": ("e2e",),
    "test_kernel_prefetch": ("e2e", "notebook"),
}
# Tests over ~5 s on two idle cores that no decorator marks slow (measured in the runs of
# benchmarks/test_suite_times.md): meta-device FLOP counts at the models' native sizes, and
# whole multi-clip jobs.
SLOW_TESTS: dict[str, tuple[str, ...]] = {
    "test_cost": (
        "test_transformer_flops_at_the_native_grid_match_hand_formulas",
        "test_an_infeasible_plan_is_refused_with_its_figures_and_fixes",
    ),
    "test_resume": ("test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run",),
    "test_models_hunyuan": ("test_a_chain_under_the_4090_preset_generates_smaller_and_the_stitch_upscales",),
    "test_models_cogvideox": ("test_three_clip_chain_runs",),
    "test_offline": ("test_a_job_is_offline_while_it_runs_and_the_kernel_is_online_after",),
}
FIXTURE_COSTS: dict[str, tuple[str, ...]] = {
    "sshd": ("sshd",),
    "lab": ("browser",),
    "cluster": ("ray",),
    "two_nodes": ("ray",),
}
COST_PATTERNS: dict[str, re.Pattern[str]] = {
    # a Python child process (a vgkit command, a worker, a shell script): seconds of imports each
    "subprocess": re.compile(r"sys\.executable|\"-m\", \"(vgkit|papermill)\"|\[\"bash\""),
    # a Jupyter kernel: papermill, nbclient, nbval
    "notebook": re.compile(r"\bpapermill\.|\"papermill\"|\bnbclient\.|--nbval|\bwarm_kernel\("),
    # a whole job (plan, generate, stitch, bundle) or a sweep of them
    "e2e": re.compile(r"\brun_job\(|\b(run_)?sweep\(|\brun_cells\(|main\(\[\"(run|sweep|demo)\""),
    # a tiny model's diffusers pipeline loaded and run in this process (seconds per call on CPU)
    "pipeline": re.compile(
        r"\btiny_generator\(|\.generate\(|\.denoise\(|\bdirect_frames\(|\.pipe\(|\.load\([^)]*device="
    ),
    # headless Chromium
    "browser": re.compile(r"\bCHROMIUM\b"),
}
# xdist groups (_group): the tests that must share one worker: one sshd host (its set-up lives in
# .pytest_cache), one Ray cluster at a time (two would fight over ports and the CPUs), one
# JupyterLab with its browser (the `lab` fixture). Any other test using a module-scoped fixture
# of its module is grouped by its module, so that fixture is built once.
# Under xdist, the groups and tests that take longest start first (the worker that gets the long
# one keeps busy while the other takes the many short ones); serial runs keep the file order.
START_FIRST = ("browser", "sshd", "ray", "e2e", "notebook", "slow", "subprocess", "pipeline")


@functools.cache  # parametrized tests, helpers and fixtures repeat: each read once per process
def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def _text_of(item: pytest.Function) -> str:
    """The test's source, the module-level ``_helpers`` it calls, and its module's own fixtures."""
    module = item.module
    texts = [_source(item.function)]
    for name in set(re.findall(r"\b(_\w+)\(", texts[0])):
        helper = getattr(module, name, None)
        if inspect.isfunction(helper):
            texts.append(_source(helper))
    for definition in _module_fixtures(item):
        texts.append(_source(definition.func))
    return "\n".join(texts)


def _module_fixtures(item: pytest.Function) -> list[Any]:
    """The fixtures ``item`` uses that its own test module defines."""
    module_file = str(item.path)
    found = []
    for definitions in item._fixtureinfo.name2fixturedefs.values():
        definition = definitions[-1]
        if inspect.getsourcefile(definition.func) == module_file:
            found.append(definition)
    return found


def _costs(item: pytest.Function) -> set[str]:
    costs = set(MODULE_COSTS.get(item.path.stem, ()))
    if item.originalname in SLOW_TESTS.get(item.path.stem, ()):
        costs.add("slow")
    for name in item.fixturenames:
        costs.update(FIXTURE_COSTS.get(name, ()))
    text = _text_of(item)
    costs.update(marker for marker, pattern in COST_PATTERNS.items() if pattern.search(text))
    return costs


def _group(item: pytest.Function, costs: set[str]) -> str | None:
    if "lab" in item.fixturenames:
        return "browser"
    for name in ("sshd", "ray"):
        if name in costs:
            return name
    if any(d.scope in ("module", "class", "package") for d in _module_fixtures(item)):
        return item.path.stem
    return None


def _start_rank(markers: set[str]) -> int:
    return min((START_FIRST.index(m) for m in markers if m in START_FIRST), default=len(START_FIRST))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unit_of: dict[str, str] = {}  # nodeid -> its group, or itself
    rank_of: dict[str, int] = {}  # unit -> the earliest START_FIRST rank of its tests
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        costs = _costs(item)
        for marker in sorted(costs - {m.name for m in item.iter_markers()}):
            item.add_marker(marker)
        group = _group(item, costs)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        unit = unit_of[item.nodeid] = group or item.nodeid
        rank = _start_rank({m.name for m in item.iter_markers()})
        rank_of[unit] = min(rank, rank_of.get(unit, rank))
    if hasattr(config, "workerinput"):  # an xdist worker: every worker sorts alike; the controller follows
        items.sort(key=lambda item: rank_of.get(unit_of.get(item.nodeid, ""), len(START_FIRST)))
        if config.getvalue("loadgroup"):
            for item in items:
                if unit_of.get(item.nodeid, item.nodeid) != item.nodeid:
                    _suffix_group(item, unit_of[item.nodeid])


def _suffix_group(item: pytest.Item, group: str) -> None:
    """What xdist's loadgroup does to a grouped test's node id (``<nodeid>@<group>``, read by its
    scheduler), in pytest 9.2's structured node id: xdist 3.8 still writes the old ``_nodeid``
    field, which pytest 9.2 no longer reads, so without this no group holds (pytest-xdist #1386)."""
    from _pytest.nodeid import NodeId

    item._id = NodeId.parse(f"{item.nodeid}@{group}")
