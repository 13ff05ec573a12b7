"""``vgkit`` command line. Thin: every command calls one library function.

Only the standard library is imported at module level, so ``python3 -m vgkit choose`` works
before the virtual environment exists (the quick start uses that to announce its model first).
User errors print one line, ``vgkit: error: ...``, and exit with the error's code (errors.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from vgkit import __version__
from vgkit.errors import InfeasiblePlanError, SpecError, VgkitError

__all__ = ["main"]

GENERATE_NOTEBOOK = Path("notebooks") / "generate.ipynb"


def _cmd_choose(args: argparse.Namespace) -> int:
    from vgkit.models import choose_model

    choice = choose_model(args.model)
    print(choice.announce(), file=sys.stderr, flush=True)
    print(choice.model.name)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from vgkit.host.doctor import diagnose

    report = diagnose(models=args.model or None, verify=args.verify)
    print(report.text())
    return 0 if report.ok else 1


def _cmd_check(args: argparse.Namespace) -> int:
    from vgkit.generate.runner import check_cost, plan_job
    from vgkit.hub.cache import snapshot_dir
    from vgkit.hub.checkpoints import locate_checkpoint
    from vgkit.spec.tokens import check_token_budget
    from vgkit.supervise.guard import Deadlines

    spec, choice, plan = plan_job(args.spec, model=args.model, preset=args.preset, planning_only=True)
    print(choice.announce())
    model = choice.model
    refusal = None
    if args.gpu is not None and not model.tiny:  # plan with the preset `auto` takes on that card
        from vgkit.cost.gpus import card
        from vgkit.models import ModelChoice
        from vgkit.spec.plan import make_plan

        gpu = card(args.gpu)
        choice = ModelChoice(model, "cuda", f"projected on the {gpu.name}", gpu_memory_gib=gpu.memory_gib)
        plan = make_plan(spec, model, preset=choice.preset(args.preset or spec.preset))
    print(plan.summary())
    if model.tiny:
        print("cost: a tiny model runs far inside the limits; no projection")
    elif choice.device == "cpu" and args.gpu is None:
        print("cost: no GPU here; name a card to project this plan on, e.g. --gpu 4090 or --gpu h100")
    else:
        try:
            check_cost(choice, plan, Deadlines.for_spec(spec), gpu=args.gpu, progress=print)
        except InfeasiblePlanError as exc:
            refusal = exc
    cached = snapshot_dir(model.repo_id, model.revision) if not model.tiny else locate_checkpoint(model)
    tokens = check_token_budget(plan, model.load_tokenizer(cached)) if cached is not None else {}
    for clip in plan.clips:
        used = f" [{tokens[clip.index]}/{plan.max_sequence_length} tokens]" if tokens else ""
        print(f"  prompt {clip.index:03d}{used}: {clip.prompt}")
    if refusal is not None:
        raise refusal  # `vgkit run` would refuse this plan: exit 2, one line with the fixes
    return 0


def _print_now(line: object) -> None:
    print(line, flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from vgkit.supervise.guard import check_grace

    check_grace(args.watchdog_grace_s)
    limits = {
        "model": args.model,
        "preset": args.preset,
        "out": args.out,
        "progress": _print_now,
        "clip_timeout_s": args.clip_timeout_s,
        "run_timeout_s": args.run_timeout_s,
        "lock": args.lock,
        "wait_for_gpu": args.wait_for_gpu,
        "resume": args.resume,
        "gpu": args.gpu,
        "force": args.force,
    }
    if not args.in_process:
        from vgkit.supervise.worker import run_supervised

        result = run_supervised(args.spec, grace_s=args.watchdog_grace_s, **limits)
    else:
        limits.update(run_started_at=args.run_started_at, cost_check=args.cost_check)
        if args.worker_state_file is not None:  # the child of a supervised run: the parent prints the result
            from vgkit.supervise.worker import run_in_worker

            run_in_worker(args.spec, state_file=args.worker_state_file, **limits)
            return 0
        from vgkit.generate.runner import run_job
        from vgkit.settings import describe_hub_cache

        print(describe_hub_cache(), flush=True)
        result = run_job(args.spec, **limits)
    print(f"final: {result.final_video} ({result.final_frames} frames, {result.final_seconds:.2f} s)")
    print(f"bundle: {result.bundle}")
    return 0


def _cmd_stitch(args: argparse.Namespace) -> int:
    from vgkit.finish.manifest import stitch_and_record
    from vgkit.finish.stitch import settings_for_run

    settings, source = settings_for_run(  # the spec's stitch section (plan.json); each flag given overrides
        args.run_dir,
        transition=args.transition,
        overlap_frames=args.overlap_frames,
        colour=args.colour,
        colour_anchor_image=args.colour_anchor,
        seam_smoothing=args.seam_smoothing,
    )
    manifest = stitch_and_record(args.run_dir, settings, usd_per_hour=args.usd_per_hour, settings_source=source)
    record = manifest["stitch"]
    print(f"final: {args.run_dir / record['final']['path']} ({record['final_frames']} frames)")
    if manifest["cost"] is not None:
        print(f"cost estimate: ${manifest['cost']['estimate_usd']:.4f} at ${args.usd_per_hour}/hour")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from vgkit.finish.verify import verify

    print(f"ok: {args.path} ({verify(args.path)} clips; every hash, size and schema checks out)")
    return 0


def _cmd_restitch(args: argparse.Namespace) -> int:
    from vgkit.finish.verify import restitch

    result = restitch(args.bundle, out=args.out)
    print(f"restitched: {result['out']} sha256 {result['sha256']}")
    print(f"byte-identical to the bundled final: {'yes' if result['identical'] else 'NO'}")
    return 0 if result["identical"] else 5


def _cmd_bundle(args: argparse.Namespace) -> int:
    from vgkit.finish.pack import write_bundle

    print(f"bundle: {write_bundle(args.run_dir)}")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from vgkit.evaluate.diff import diff_runs, format_diff

    print(format_diff(args.run_a, args.run_b, diff_runs(args.run_a, args.run_b)))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from vgkit.cost.planner import native_preset_lines
    from vgkit.hub.cache import snapshot_dir
    from vgkit.models import adapter, model_names
    from vgkit.settings import describe_hub_cache

    print(f"{'model':<16} {'native size':<12} {'fps':>4} {'frames':>7}  weights  repo")
    for name in model_names():
        m = adapter(name)
        b = m.baseline
        cached = "built on use" if m.tiny else ("cached" if snapshot_dir(m.repo_id, m.revision) else "missing")
        print(f"{name:<16} {b.width}x{b.height:<7} {b.fps:>4} {m.frame_rule.describe():>7}  {cached:<8} {m.repo_id}")
        if not m.tiny:
            for preset in m.presets:
                w, h = preset.generation_size(b.width, b.height, multiple=m.size_multiple)
                upscale = f", upscaled to {b.width}x{b.height}" if (w, h) != (b.width, b.height) else ""
                runs = f"runs {w}x{h}, {preset.scaled_steps(b.steps)} steps{upscale}"
                print(f"{'':<16} preset {preset.name:<5} {preset.describe()}; {runs}")
                for line in native_preset_lines(m, preset):
                    print(f"{'':<29} projected {line}")
    print(describe_hub_cache().replace("vgkit: HF cache", "weights are looked up in the HF cache", 1))
    return 0


def _cmd_prefetch(args: argparse.Namespace) -> int:
    from vgkit.hub.prefetch import run_prefetch
    from vgkit.hub.results import format_table

    if not args.model and not args.all and not args.check and not args.attention_backend:
        raise SpecError("prefetch: no models named; fix: --model NAME (repeatable) or --all")
    rows = []
    if args.model or args.all or not args.attention_backend:  # --check alone checks every model
        rows = run_prefetch(args.model or "all", check_only=args.check, verify_all=args.verify)
        print(format_table(rows))
    for backend in args.attention_backend:  # Hub attention kernels (vgkit.hub.kernels), like weights
        from vgkit.hub.kernels import fetch, verify

        print(f"attention kernel {backend}: {verify(backend) if args.check else fetch(backend)}")
    return 0 if all(r["complete"] for r in rows) else 3


def _cmd_demo(args: argparse.Namespace) -> int:
    from vgkit.lab.notebook import run_generate_notebook

    result = run_generate_notebook(
        GENERATE_NOTEBOOK,
        spec=args.spec,
        model=args.model,
        preset=args.preset,
        out=args.out,
        executed=args.executed,
        watchdog_grace_s=args.watchdog_grace_s,
    )
    print(f"notebook: {result['executed_notebook']}")
    print(f"final: {result['final_video']}")
    print(f"bundle: {result['bundle']}")
    return 0


def _cmd_lab(args: argparse.Namespace) -> int:
    import subprocess

    from vgkit.lab.notebook import lab_command

    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    return subprocess.call(lab_command(port=args.port, extra=extra))


def _cmd_take(args: argparse.Namespace) -> int:
    from vgkit.generate.takes import make_takes

    takes = make_takes(
        args.spec, out=args.out, shot=args.shot, seeds=args.seed, model=args.model, preset=args.preset,
        progress=_print_now,
    )  # fmt: skip
    for take in takes:
        state = "ok" if take.ok else (take.log.status if take.log is not None else "no log")
        print(f"take: shot {take.index} seed {take.seed}: {state} ({take.clip})")
    print(f"pick one: vgkit pick {args.spec} --out {args.out} --shot {args.shot} --take SEED")
    return 0


def _cmd_pick(args: argparse.Namespace) -> int:
    from vgkit.generate.takes import pick_take

    pick_take(
        args.spec, out=args.out, shot=args.shot, seed=args.take, model=args.model, preset=args.preset,
        edit_spec=args.edit_spec, progress=_print_now,
    )  # fmt: skip
    return 0


def _cmd_qa(args: argparse.Namespace) -> int:
    from vgkit.evaluate.qa import run_qa

    record = run_qa(args.run_dir, reference=args.reference, clip_repo=args.clip_model or None)
    for clip in record["clips"]:
        print(f"clip {clip['index']:03d}: {'; '.join(clip['verdicts'])}")
    print(f"verdict: {'; '.join(record['verdicts'])}")
    print(f"qa: {args.run_dir / 'qa.json'}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from vgkit.evaluate.report.write import write_report

    paths = write_report(args.run_dirs, out=args.out, usd_per_hour=args.usd_per_hour)
    print(f"report: {paths['markdown']}")
    print(f"report: {paths['html']}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from vgkit.evaluate.sweep import parse_models, sweep

    models = parse_models(args.models)
    _check_scale_flags(args)
    if args.ray is None and args.seeds == 1 and args.shard is None and not args.list:  # the one-GPU sweep, in turn
        result = sweep(
            args.spec,
            models=models,
            out=args.out,
            usd_per_hour=args.usd_per_hour,
            watchdog_grace_s=args.watchdog_grace_s,
        )
        for row in result.rows:
            print(f"{row.model}: {row.status} ({row.detail})")
        print(f"report: {result.report_html}")
        return 0
    from vgkit.spec.schema import load_spec

    name = load_spec(args.spec).name
    return _scaled([args.spec], models, args, root=args.out or Path("runs") / f"sweep-{name}", sweep_name=name)


def _cmd_batch(args: argparse.Namespace) -> int:
    if not args.model:
        raise SpecError("batch: --model is empty; fix: name one model, e.g. --model wan22")
    return _scaled(args.specs, [args.model], args, root=args.out or Path("runs") / f"batch-{args.model}")


def _check_scale_flags(args: argparse.Namespace) -> None:
    if args.ray and Path(args.ray).suffix.lower() in (".yaml", ".yml", ".json"):  # `--ray a.yaml b.yaml`
        raise SpecError(
            f"--ray = {args.ray!r}: looks like a spec, not a Ray address; fix: put --ray after the specs "
            "or write --ray=ADDRESS"
        )
    if args.logical_gpus is not None and (args.ray is None or args.ray or os.environ.get("RAY_ADDRESS")):
        raise SpecError("--logical-gpus: only for a local Ray; fix: use it with a bare --ray and no RAY_ADDRESS")


def _scaled(
    specs: list[Path], models: list[str], args: argparse.Namespace, *, root: Path, sweep_name: str | None = None
) -> int:
    """Sweep or batch cells on Ray (``--ray``) or here in turn, one shard of them with ``--shard``; a
    sweep (``sweep_name``) writes its ``sweep.json`` (the report's header) as the one-GPU sweep does."""
    from vgkit.scale import make_cells, parse_shard
    from vgkit.scale.runs import run_scaled
    from vgkit.scale.scheduler import RayOptions
    from vgkit.supervise.guard import check_grace

    check_grace(args.watchdog_grace_s)
    _check_scale_flags(args)
    cells = make_cells(specs, models=models, seeds=args.seeds, root=root)
    shard = parse_shard(args.shard) if args.shard is not None else None
    if args.list:  # what this shard (or the whole sweep) would run, one run per line; runs nothing
        from vgkit.scale import shard_cells

        for cell in shard_cells(cells, index=shard[0], count=shard[1]) if shard else cells:
            seed = "spec seed" if cell.seed is None else f"seed {cell.seed}"
            print(f"{cell.model}\t{seed}\t{cell.run_dir}")
        return 0
    if sweep_name is not None:
        from vgkit.evaluate.sweep import write_sweep_record

        root.mkdir(parents=True, exist_ok=True)
        write_sweep_record(root, sweep_name, models)
    options = None if args.ray is None else RayOptions(address=args.ray or None, logical_gpus=args.logical_gpus)
    result = run_scaled(
        cells,
        root=root,
        ray=options,
        shard=shard,
        progress=_print_now,
        usd_per_hour=args.usd_per_hour,
        grace_s=args.watchdog_grace_s,
        prompt_match_model=None if args.prompt_match_model == "none" else args.prompt_match_model,
    )
    for outcome in result.outcomes:
        print(f"{outcome.cell.name}: {outcome.status} ({outcome.detail})")
    if result.report_html is not None:
        print(f"report: {result.report_html}")
    return 0 if all(o.status == "completed" for o in result.outcomes) else 1


def _add_scale_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prompt-match-model",
        default="clip",
        choices=("clip", "clip-tiny", "none"),
        help="CLIP that scores prompt match after each job (clip: `vgkit prefetch --model clip` first; "
        "clip-tiny: random weights, tests only)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="one worker per GPU on Ray: a local Ray over this machine's GPUs, or the cluster at "
        "ADDRESS (or RAY_ADDRESS); needs vgkit[ray]",
    )
    p.add_argument(
        "--logical-gpus",
        type=int,
        metavar="N",
        help="local Ray only: declare N GPUs on a machine without them (the tiny models on CPU)",
    )
    p.add_argument("--shard", metavar="I/N", help="run only shard I of N (whole models per shard), e.g. 0/2")
    p.add_argument("--list", action="store_true", help="print the runs (of the shard): model, seed, folder; run none")


def _parser() -> argparse.ArgumentParser:
    from vgkit.supervise.guard import DEFAULT_GRACE_S  # standard library only, like this module

    parser = argparse.ArgumentParser(prog="vgkit", description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"vgkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    model_help = "model name (see `vgkit models`) or auto; default: the spec's `model`, else auto"
    gpu_help = "project the plan on this card (4090, l40s, a100, h100, h200; default: this machine's GPU)"
    preset_help = "preset (4090, 80gb, cpu; see `vgkit models`) or auto; default: the spec's `preset`, else auto"
    grace_help = (
        "the watchdog kills a hung worker's process group this long past a deadline "
        f"(seconds >= 0; default {DEFAULT_GRACE_S:g})"
    )
    p = add("run", _cmd_run, "generate every clip of a spec, stitch, write the manifest and bundle")
    p.add_argument("spec", type=Path, help="run spec (.yaml or .json)")
    p.add_argument("--model", help=model_help)
    p.add_argument("--preset", help=preset_help)
    p.add_argument("--out", type=Path, help="run directory (default runs/<spec name>-<model>)")
    p.add_argument("--clip-timeout-s", type=float, help="deadline per clip (default: spec, 600)")
    p.add_argument("--run-timeout-s", type=float, help="deadline for the run (default: clips x clip timeout)")
    p.add_argument("--watchdog-grace-s", type=float, default=DEFAULT_GRACE_S, help=grace_help)
    p.add_argument(
        "--wait-for-gpu", action="store_true", help="queue behind a run holding the device instead of refusing"
    )
    p.add_argument(
        "--lock",
        action=argparse.BooleanOptionalAction,
        help="take the one-job-per-device lock (default: on a GPU only)",
    )
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse clips whose logs and artifacts verify, decode saved latents (default); --no-resume regenerates all",
    )
    p.add_argument("--in-process", action="store_true", help="generate in this process, without the watchdog child")
    p.add_argument("--gpu", help=gpu_help)
    p.add_argument(
        "--force", action="store_true", help="run a plan projected past its deadlines or the card's memory anyway"
    )
    p.add_argument("--no-cost-check", dest="cost_check", action="store_false", help=argparse.SUPPRESS)
    p.add_argument("--run-started-at", type=float, help=argparse.SUPPRESS)
    p.add_argument("--worker-state-file", type=Path, help=argparse.SUPPRESS)

    p = add("check", _cmd_check, "validate a spec and print its plan, projected cost and prompts; loads no model")
    p.add_argument("spec", type=Path)
    p.add_argument("--gpu", help=gpu_help)
    p.add_argument("--model", help=model_help)
    p.add_argument("--preset", help=preset_help)

    p = add("stitch", _cmd_stitch, "stitch a run's clips into final/final_stitched.mp4 and write manifest.json")
    p.add_argument("run_dir", type=Path)
    from vgkit.spec.choices import COLOUR_MODES, SEAM_MODES, TRANSITIONS

    spec_default = "default: the spec's stitch section"
    p.add_argument("--transition", choices=TRANSITIONS, help=f"join recipe ({spec_default})")
    p.add_argument("--overlap-frames", type=int, help=f"crossfade length in frames ({spec_default})")
    p.add_argument("--colour", choices=COLOUR_MODES, help=f"colour matching ({spec_default})")
    p.add_argument("--colour-anchor", type=Path, help="anchor image (default: the spec's, else the first clip)")
    p.add_argument("--seam-smoothing", choices=SEAM_MODES, help=f"bridge cuts ({spec_default})")
    p.add_argument("--usd-per-hour", type=float, help="machine rate for a cost estimate")

    p = add("verify", _cmd_verify, "check every hash, size and schema of a run directory or bundle")
    p.add_argument("path", type=Path, help="run directory or .tar.gz bundle")

    p = add("restitch", _cmd_restitch, "rebuild a bundle's final video from its clips; say if byte-identical")
    p.add_argument("bundle", type=Path)
    p.add_argument("--out", type=Path, required=True, help="where to write the rebuilt video (.mp4)")

    p = add("bundle", _cmd_bundle, "pack a stitched run into one reproducible .tar.gz beside it")
    p.add_argument("run_dir", type=Path)

    p = add("diff", _cmd_diff, "show which config values differ between two runs (one variable at a time?)")
    p.add_argument("run_a", type=Path)
    p.add_argument("run_b", type=Path)

    add("models", _cmd_models, "list models, presets, native sizes and whether weights are present")

    p = add(
        "prefetch",
        _cmd_prefetch,
        "download model weights into the HF cache, verified (download only; --check is offline)",
    )
    p.add_argument("--model", action="append", default=[], help="model to fetch; repeat for several")
    p.add_argument("--all", action="store_true", help="every real model (with --check: every model)")
    p.add_argument("--check", action="store_true", help="offline: report which models are complete in the cache")
    p.add_argument("--verify", action="store_true", help="hash every file, not only new downloads")
    p.add_argument("--attention-backend", action="append", default=[], help="also fetch this *_hub attention "
                   "backend's kernel for this torch/CUDA (needs the kernels package)")  # fmt: skip

    p = add("take", _cmd_take, "make more takes of one shot of a run, each with its own seed (from the same input)")
    p.add_argument("spec", type=Path, help="the run's spec (its plan must be the run's plan.json)")
    p.add_argument("--out", type=Path, required=True, help="the run directory")
    p.add_argument("--shot", type=int, required=True, help="shot index (0 is the first)")
    p.add_argument("--seed", type=int, action="append", required=True, help="the take's seed; repeat for several")
    p.add_argument("--model", help=model_help)
    p.add_argument("--preset", help=preset_help)

    p = add(
        "pick",
        _cmd_pick,
        "make a take the run's clip (later clips move to superseded/); then `vgkit run` re-chains from it",
    )
    p.add_argument("spec", type=Path, help="the run's spec; its shots[SHOT].seed must be the take's seed")
    p.add_argument("--out", type=Path, required=True, help="the run directory")
    p.add_argument("--shot", type=int, required=True, help="shot index (0 is the first)")
    p.add_argument("--take", type=int, required=True, metavar="SEED", help="the seed of the take to pick")
    p.add_argument(
        "--edit-spec", action="store_true", help="write shots[SHOT].seed into the spec (comments kept) if it differs"
    )
    p.add_argument("--model", help=model_help)
    p.add_argument("--preset", help=preset_help)

    p = add("qa", _cmd_qa, "measure every clip and seam of a run (black, static, seams, drift, sharpness) -> qa.json")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--reference", type=Path, help="the spec's reference image (for colour drift)")
    p.add_argument("--clip-model", default="openai/clip-vit-base-patch32", help="CLIP repo for prompt match if cached")

    usd_help = "GPU price in USD per hour for the billing timeline (default: no cost column)"
    p = add("report", _cmd_report, "write a Markdown + self-contained HTML report comparing finished or failed runs")
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", type=Path, required=True, help="report directory")
    p.add_argument("--usd-per-hour", type=float, help=usd_help)

    p = add("sweep", _cmd_sweep, "run one spec on several models in turn (failures recorded), then report")
    p.add_argument("spec", type=Path)
    p.add_argument("--models", required=True, help="comma-separated model names, e.g. wan22,hunyuan-i2v,cogvideox15")
    p.add_argument("--out", type=Path, help="sweep directory (default runs/sweep-<spec name>)")
    p.add_argument("--usd-per-hour", type=float, help=usd_help)
    p.add_argument("--watchdog-grace-s", type=float, default=DEFAULT_GRACE_S, help=grace_help)
    p.add_argument("--seeds", type=int, default=1, help="runs per model, seeds spec.seed + k*1000 (default 1)")
    _add_scale_flags(p)

    p = add("batch", _cmd_batch, "run several specs on one model (on Ray with --ray), then report")
    p.add_argument("specs", type=Path, nargs="+", metavar="SPEC")
    p.add_argument("--model", required=True, help="model name (see `vgkit models`)")
    p.add_argument("--out", type=Path, help="batch directory (default runs/batch-<model>)")
    p.add_argument("--usd-per-hour", type=float, help=usd_help)
    p.add_argument("--watchdog-grace-s", type=float, default=DEFAULT_GRACE_S, help=grace_help)
    p.set_defaults(seeds=1)
    _add_scale_flags(p)

    p = add("doctor", _cmd_doctor, "can a run succeed here? GPU, driver, torch, attention, weights, disk, ffmpeg")
    p.add_argument("--model", action="append", default=[], help="model(s) to check for (default: what auto picks)")
    p.add_argument("--verify", action="store_true", help="hash every cached weight file (reads every byte)")

    p = add("choose", _cmd_choose, "say which model a run would use (announcement on stderr, name on stdout)")
    p.add_argument("--model", default="auto", help=model_help)

    p = add("demo", _cmd_demo, "run the generate notebook headless (papermill) on a spec: the quick start")
    p.add_argument("--spec", type=Path, default=Path("params") / "demo.yaml")
    p.add_argument("--model", default="auto", help=model_help)
    p.add_argument("--preset", help=preset_help)
    p.add_argument("--out", type=Path, help="run directory (default runs/<spec name>-<model>)")
    p.add_argument("--executed", type=Path, help="where to save the executed notebook")
    p.add_argument("--watchdog-grace-s", type=float, default=DEFAULT_GRACE_S, help=grace_help)

    p = add(
        "lab", _cmd_lab, "start JupyterLab on 127.0.0.1 (token; --allow-root as root); saving keeps notebooks/ clean"
    )
    p.add_argument("--port", type=int, default=8888)
    p.add_argument("extra", nargs=argparse.REMAINDER, help="more `jupyter lab` options, after --")

    from vgkit.remote.cli import add_remote_commands

    add_remote_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from vgkit.settings import apply_env_file

    apply_env_file()  # before any HF library is imported: the same HF cache on every entry point
    args = _parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except VgkitError as exc:
        print(f"vgkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vgkit: interrupted; finished clips are kept, re-run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code
