"""Takes: more tries at one shot of a run, each with its own seed, and picking one to chain from.

    vgkit take SPEC --out RUN --shot 1 --seed 555 --seed 556   # two more takes of shot 1
    vgkit pick SPEC --out RUN --shot 1 --take 555              # the seed-555 take becomes clip 1
    vgkit run SPEC --out RUN                                   # re-chains shots 2.. from it

A take is made as the run's clip would be: the run's plan (which must be what SPEC plans now), the
take's seed, and the same input as the run's clip (the reference image, the shot's keyframe, or clip
i-1's last frame), checked by sha256 against clip i's log. It lands in ``takes/shot_NNN/seed_S/``
(vgkit.records.rundir.take_root), a run folder of that one clip whose log records its seed; takes are
never stitched or bundled.

Picking. A plan records a shot's own seed as the spec's ``shots[i].seed``, so the spec must name the
take's seed there: set it yourself, or pass ``--edit-spec`` and ``pick`` writes it (comments and
formatting kept, vgkit.lab.editor.with_shot_seed; the spec is the user's file, so vgkit changes it only
when asked). ``pick`` records the seed in ``plan.json``, moves
clip i, every later clip and the final video, manifest and QA made from them into
``superseded/<UTC time>/``, then installs the take as clip i: clip, last frame, and last, as the
commit record, its log (with the run's clip count and a ``picked_take`` note). The next ``vgkit run``
plans seed S for shot i, finds clip i's log is exactly that request, reuses it, and chains i+1.. from
the picked take's last frame. Resume reuses only what the current plan makes: a spec that names
another seed for shot i makes clip i again.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vgkit.errors import ArtifactError, SpecError
from vgkit.generate.chain import existing_log, run_chain
from vgkit.generate.runner import check_before_run, device_lock, load_generator, plan_job
from vgkit.records.artifacts import RunLayout, atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file
from vgkit.records.events import Event, Progress, note, text_sink
from vgkit.records.rundir import open_run_dir, supersede_from, take_root, take_seeds
from vgkit.records.schema import ClipLog, picked_take_log
from vgkit.settings import offline_hub
from vgkit.spec.images import fit_to_size, load_rgb, png_bytes
from vgkit.spec.plan import RunPlan
from vgkit.spec.schema import RunSpec
from vgkit.supervise.guard import Deadlines, RunGuard

__all__ = ["Take", "make_takes", "pick_take", "read_takes"]

MAX_SEED = 2**63


@dataclass(frozen=True)
class Take:
    """Shot ``index``'s take with ``seed``, in its folder ``root``; ``log`` is None until it finished or failed."""

    index: int
    seed: int
    root: Path
    log: ClipLog | None

    @property
    def ok(self) -> bool:
        return self.log is not None and self.log.finished_clip(self.root) is not None

    @property
    def clip(self) -> Path:
        return RunLayout(self.root).clip(self.index)

    @property
    def last_frame(self) -> Path:
        return RunLayout(self.root).last_frame(self.index)


def read_take(run_dir: Path, index: int, seed: int) -> Take:
    """The take of shot ``index`` with ``seed`` as its folder holds it (``log`` None without a readable log)."""
    root = take_root(run_dir, index, seed)
    return Take(index=index, seed=seed, root=root, log=existing_log(RunLayout(root), index))


def read_takes(run_dir: Path, index: int) -> list[Take]:
    """Every take of shot ``index``, by seed."""
    return [read_take(run_dir, index, seed) for seed in take_seeds(run_dir, index)]


def _comparable(plan: dict[str, Any], shot: int) -> dict[str, Any]:
    """``plan`` (as plan.json holds it) without shot ``shot``'s seed, the one thing a take or pick changes."""
    clips = [{k: v for k, v in c.items() if not (c.get("index") == shot and k == "seed")} for c in plan["clips"]]
    return {**plan, "clips": clips}


def _check_run(run_dir: Path, plan: RunPlan, shot: int, *, command: str) -> dict[str, Any]:
    """The run's plan.json; ``SpecError`` unless it is what the spec plans now (but shot ``shot``'s seed)."""
    if not (0 <= shot < len(plan.clips)):
        raise SpecError(
            f"shot = {shot}: the plan has shots 0..{len(plan.clips) - 1}; fix: pass one of them to {command}"
        )
    try:
        recorded = json.loads((run_dir / "plan.json").read_text())
    except (OSError, ValueError):
        raise SpecError(
            f"out = '{run_dir}': not a run folder with a readable plan.json; fix: run `vgkit run SPEC --out "
            f"{run_dir}` first"
        ) from None
    current = json.loads(json.dumps(plan.to_dict()))
    if _comparable(recorded, shot) != _comparable(current, shot):
        raise SpecError(
            f"out = '{run_dir}': its plan.json is not what this spec plans now (another spec, model, preset or "
            f"edit); fix: pass the spec and --model/--preset the run used, or resume it first (vgkit run SPEC --out "
            f"{run_dir})"
        )
    return dict(recorded)


def _input(spec: RunSpec, plan: RunPlan, layout: RunLayout, shot: int) -> tuple[np.ndarray, str]:
    """What the run's clip ``shot`` starts from, at the plan's size, and its source as logs name it;
    ``ArtifactError`` when it is not the input clip ``shot``'s log recorded."""
    clip = plan.clips[shot]
    if clip.source_image is not None:
        image, source = load_rgb(Path(clip.source_image)), f"shots[{shot}].source_image"
    elif shot == 0:
        image, source = load_rgb(spec.reference_image), "reference_image"
    else:
        previous = layout.last_frame(shot - 1)
        log = existing_log(layout, shot - 1)
        if log is None or log.finished_clip(layout.root) is None or not previous.is_file():
            raise SpecError(
                f"shot = {shot}: clip {shot - 1:03d} has not finished, so shot {shot} has no input yet; fix: run "
                f"`vgkit run SPEC --out {layout.root}` first"
            )
        image, source = load_rgb(previous), f"frames/{previous.name}"
    image = fit_to_size(image, width=plan.width, height=plan.height)
    log = existing_log(layout, shot)
    recorded = log.input if log is not None else None
    if recorded is not None and recorded.sha256 and recorded.sha256 != sha256_bytes(png_bytes(image)):
        raise ArtifactError(
            f"shot = {shot}: clip {shot:03d} was made from another input than {source} now holds; fix: resume the "
            f"run (vgkit run SPEC --out {layout.root}) so clip {shot:03d} starts from it, then make takes"
        )
    return image, source


def _check_seeds(seeds: list[int]) -> None:
    for seed in seeds:
        if not (0 <= seed < MAX_SEED):
            raise SpecError(f"seed = {seed}: must be 0 <= seed < 2**63; fix: pass another --seed")
    if not seeds:
        raise SpecError("seed: none given; fix: pass --seed S (repeat it for several takes)")


def _numbered_as_in_the_run(progress: Progress, clip_count: int) -> Progress:
    """``progress`` with each clip event counted against the run's clips ("clip 2/3", not "clip 2/1")."""

    def send(event: Event) -> None:
        if event.clip_index is not None and event.clip_count is not None:
            fields = {k: v for k, v in event.__dict__.items() if k != "stage"}
            event = Event(event.stage, **{**fields, "clip_count": clip_count})  # type: ignore[arg-type]
        progress(event)

    return send


@offline_hub()
def make_takes(
    spec_path: str | Path,
    *,
    out: str | Path,
    shot: int,
    seeds: list[int],
    model: str | None = None,
    preset: str | None = None,
    progress: Progress = print,
) -> list[Take]:
    """Make a take of ``shot`` for each of ``seeds`` (loading the model once) in the run folder ``out``.

    A take that already finished for the same request is reused, as a resumed run reuses a clip.
    Holds the run folder's lock (and, on a GPU, the device lock) while it works.
    """
    _check_seeds(seeds)
    run_dir = Path(out)
    spec, choice, plan = plan_job(spec_path, model=model, preset=preset)
    _check_run(run_dir, plan, shot, command="vgkit take")
    snapshot = check_before_run(spec, choice, plan)
    takes = []
    progress = _numbered_as_in_the_run(progress, len(plan.clips))
    with open_run_dir(run_dir, progress=text_sink(progress)) as held:
        image, source = _input(spec, plan, held.layout, shot)
        gpu = choice.device != "cpu"
        with device_lock(choice.device, run_dir=run_dir, wait=False, progress=progress) if gpu else nullcontext():
            generator = load_generator(spec, choice, plan, snapshot)
            guard = RunGuard(Deadlines.for_spec(spec), clip_count=1, progress=progress)
            for seed in seeds:
                take_plan = replace(plan, clips=(replace(plan.clips[shot], seed=seed),))
                layout = RunLayout(take_root(run_dir, shot, seed))
                progress(
                    note(f"take of shot {shot} with seed {seed} -> {layout.root.relative_to(run_dir).as_posix()}/")
                )
                run_chain(
                    spec, take_plan, layout, generator, progress=progress, guard=guard, first_input=(image, source)
                )
                takes.append(read_take(run_dir, shot, seed))
    return takes


@dataclass(frozen=True)
class Pick:
    """What ``pick_take`` did: the take installed as clip ``index``, what it moved aside, the spec it wrote."""

    index: int
    seed: int
    previous_seed: int
    moved: list[str]
    spec: Path


def _verified_take(run_dir: Path, shot: int, seed: int) -> Take:
    take = read_take(run_dir, shot, seed)
    if not take.ok or take.log is None:
        have = ", ".join(str(t.seed) for t in read_takes(run_dir, shot) if t.ok) or "none"
        raise SpecError(
            f"take = {seed}: shot {shot} has no finished take with that seed (finished: {have}); fix: make it with "
            f"`vgkit take SPEC --out {run_dir} --shot {shot} --seed {seed}`"
        )
    for name, path in (("clip", take.clip), ("last_frame", take.last_frame)):
        record = take.log.artifacts.get(name)
        if record is None or not path.is_file() or sha256_file(path) != record.sha256:
            raise ArtifactError(
                f"take = {seed}: {path.relative_to(run_dir)} does not match the sha256 its log recorded; fix: "
                f"make the take again (delete {take.root.relative_to(run_dir)}/ and run `vgkit take`)"
            )
    return take


def pick_take(
    spec_path: str | Path,
    *,
    out: str | Path,
    shot: int,
    seed: int,
    model: str | None = None,
    preset: str | None = None,
    edit_spec: bool = False,
    progress: Progress = print,
) -> Pick:
    """Make shot ``shot``'s take with ``seed`` the run's clip (see the module docstring); ``vgkit run``
    afterwards re-chains the later shots from it. The spec must already name ``seed`` as
    ``shots[shot].seed`` unless ``edit_spec`` lets vgkit write it there."""
    from vgkit.lab.editor import with_shot_seed

    run_dir = Path(out)
    spec, _, plan = plan_job(spec_path, model=model, preset=preset)
    recorded = _check_run(run_dir, plan, shot, command="vgkit pick")
    take = _verified_take(run_dir, shot, seed)
    assert take.log is not None and take.log.request is not None  # _verified_take checked both
    if take.log.request.get("seed") != seed:
        raise ArtifactError(f"take = {seed}: its log records seed {take.log.request.get('seed')}; fix: make it again")
    previous_seed = int(recorded["clips"][shot]["seed"])
    spec_file = Path(spec_path)
    spec_text: bytes | None = None
    if spec.shots[shot].seed != seed:
        if not edit_spec:
            raise SpecError(
                f"shots[{shot}].seed = {spec.shots[shot].seed}: {spec_file.name} must name the picked take's seed, or "
                f"the next run makes clip {shot} again; fix: set shots[{shot}].seed: {seed} in {spec_file}, or pass "
                "--edit-spec to let vgkit write it (comments kept)"
            )
        spec_text = with_shot_seed(spec_file, shot, seed)  # read and changed before anything moves
    with open_run_dir(run_dir, progress=text_sink(progress)) as held:
        layout = held.layout
        image, source = _input(spec, plan, layout, shot)
        made_from = take.log.input
        if made_from is None or made_from.sha256 != sha256_bytes(png_bytes(image)) or made_from.source != source:
            raise ArtifactError(
                f"take = {seed}: made from another input than clip {shot:03d} starts from now ({source}); fix: make "
                "the take again with `vgkit take`"
            )
        moved = supersede_from(layout, shot, progress=text_sink(progress))
        atomic_write_bytes(layout.clip(shot), take.clip.read_bytes())
        atomic_write_bytes(layout.last_frame(shot), take.last_frame.read_bytes())
        picked = {
            "seed": seed,
            "from": take.root.relative_to(run_dir).as_posix(),
            "picked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        log = picked_take_log(take.log, clip_count=len(plan.clips), picked=picked)
        atomic_write_json(layout.log(shot), log)  # the clip's commit record, written last
        clips = [dict(c, seed=seed) if c["index"] == shot else c for c in recorded["clips"]]
        atomic_write_json(layout.plan, {**recorded, "clips": clips})
    if spec_text is not None:
        atomic_write_bytes(spec_file, spec_text)
    count = len(plan.clips)
    after = f"re-chains shots {shot + 1}..{count - 1} from it" if shot + 1 < count else "stitches it again"
    progress(
        note(
            f"clip {shot:03d} is now the take with seed {seed} (was seed {previous_seed})"
            + (f"; {spec_file.name}: shots[{shot}].seed = {seed} written" if spec_text is not None else "")
            + f"; next: `vgkit run {spec_path} --out {run_dir}` {after}"
        )
    )
    return Pick(index=shot, seed=seed, previous_seed=previous_seed, moved=moved, spec=spec_file)
