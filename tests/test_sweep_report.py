"""The sweep report in the seed report's form (the model-sweep-report.md users read: header, Model
Outcomes table, Operational Notes, Recommendations), from a real sweep of the three tiny models
beside two planted failures (a model without weights, a model that does not exist), scored by the
tiny CLIP twin; then resumed. The same sweep shows that each model gets its own run folder and
failure record and that the sweep goes on past a failure.

The seed's structure is written out below (``SEED_*``) and the report is parsed, not grepped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import spec_dict, write_spec
from vgkit.evaluate.report.markdown import SECTIONS
from vgkit.evaluate.report.recommend import KINDS, beats, failure_kind, recommend
from vgkit.evaluate.report.summary import summarize_run
from vgkit.evaluate.sweep import FAILURE_SCHEMA, SWEEP_FILE, SweepResult, stage_reached, sweep
from vgkit.records.events import read_events

# The seed report's structure.
SEED_HEADER_KEYS = (
    "Published",
    "Run ID",
    "Remote movie directory",
    "Models tested",
    "Completed",
    "Failed",
    "Best completed model",
)
SEED_SECTIONS = ("Model Outcomes", "Operational Notes", "Recommendations")
SEED_TABLE = ("| Model | Status | Latency | Prompt Match | Verdict |", "| --- | --- | ---: | ---: | --- |")
SEED_NOTES = ("- Average GPU utilization during sampled run: ", "- Peak temperature: ", "- Multi-generator overlap")

TINY = ["wan22-tiny", "cogvideox15-tiny", "hunyuan-i2v-tiny"]
PLANTED = "wan22"  # the real Wan 2.2: no weights in the test cache, so it fails at load (layout)
UNKNOWN = "nope"  # no model at all: a spec error, and the sweep goes on
MODELS = [*TINY, PLANTED, UNKNOWN]
SHOTS = [
    {"subject": "a boat", "action": "leaves the harbour, then turns north", "environment": "sea", "duration_s": 5.0},
    {"subject": "a gull", "action": "circles", "environment": "sky over the sea", "duration_s": 5.0},
]
FAST = {"width": 32, "height": 32, "steps": 1}


def parse_report(markdown: str) -> dict[str, object]:
    """Title, header fields, section names in order, the outcome table and the section bodies."""
    lines = markdown.splitlines()
    assert lines[0].startswith("# ")
    first_section = next(i for i, line in enumerate(lines) if line.startswith("## "))
    header = dict(line[2:].split(": ", 1) for line in lines[1:first_section] if line.startswith("- ") and ": " in line)
    header_keys = [line[2:].split(": ", 1)[0] for line in lines[1:first_section] if line.startswith("- ")]
    sections: dict[str, list[str]] = {}
    current = ""
    for line in lines[first_section:]:
        if line.startswith("## "):
            current = line[3:].split(" (")[0]
            sections[current] = []
        elif line:
            sections[current].append(line)
    table = [line for line in sections["Model Outcomes"] if line.startswith("|")]
    rows = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in table[2:]]
    return {"title": lines[0][2:], "header": header, "header_keys": header_keys, "sections": sections,
            "table": table, "rows": rows}  # fmt: skip


@dataclass(frozen=True)
class Swept:
    result: SweepResult
    spec: Path
    lines: list[str]  # the sweep's progress lines


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Swept:
    tmp = tmp_path_factory.mktemp("sweep-report")
    spec = write_spec(tmp / "spec.yaml", spec_dict(shots=SHOTS, overrides=FAST))
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VGKIT_REMOTE_JOB", "test-job")  # as inside a `vgkit remote` job
        result = sweep(
            spec,
            models=MODELS,
            out=tmp / "sw",
            usd_per_hour=2.0,
            progress=lines.append,
            prompt_match_model="clip-tiny",
        )
    return Swept(result, spec, lines)


def test_each_model_gets_its_own_run_dir_its_bundle_and_row_and_the_sweep_goes_on(swept: Swept) -> None:
    result, lines = swept.result, swept.lines
    statuses = [*((m, "completed") for m in TINY), (PLANTED, "failed"), (UNKNOWN, "failed")]
    assert [(r.model, r.status) for r in result.rows] == statuses
    assert [r.run_dir.name for r in result.rows] == [f"t-{m}" for m in MODELS]
    out = result.report_markdown.parent.parent
    assert sorted(p.name for p in out.glob("*.tar.gz")) == sorted(f"t-{m}.tar.gz" for m in TINY)
    assert lines[0] == "sweep: model 1/5: wan22-tiny" and "sweep: model 5/5: nope" in lines
    ok = result.rows[0].run_dir
    assert json.loads((ok / "qa.json").read_text())["reference"] is not None  # the spec's reference image
    record = json.loads((ok / "sweep_run.json").read_text())
    stages = [e.stage for e in read_events(ok, since=record["started_at_s"])]
    assert stages[0] == "note" and "plan" in stages and stages[-2:] == ["run-done", "qa"]
    assert record["gpu_samples"] == []


def test_rewording_every_message_changes_nothing_in_a_sweep_report(
    swept: Swept, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stage detection and billing read the events' fields: other wording of every line (as
    ``render`` makes it) gives the same report."""
    from vgkit.records import events

    ok = swept.result.rows[0].run_dir
    before = summarize_run(ok)
    before_stage = stage_reached(read_events(ok))
    monkeypatch.setattr(events, "render", lambda stage, fields: f"{stage} (reworded)")
    assert {str(e) for e in read_events(ok)} >= {"load (reworded)", "stitch (reworded)"}
    after = summarize_run(ok)
    assert (after.segments, after.timeline_source) == (before.segments, before.timeline_source)
    assert [s.label for s in after.segments] == [
        "start-up (plan, checkpoint)", "model load", "clip 0", "clip 1", "stitch + manifest + bundle", "qa"
    ]  # fmt: skip
    assert after.timeline_source == "events.jsonl timestamps"
    assert stage_reached(read_events(ok)) == before_stage == "qa"


def test_failures_are_recorded_with_class_message_and_stage(swept: Swept) -> None:
    rows = swept.result.rows
    missing = json.loads((rows[3].run_dir / "failure.json").read_text())
    assert missing["schema"] == FAILURE_SCHEMA
    assert (missing["error_class"], missing["exit_code"], missing["stage"]) == ("ModelUnavailableError", 3, "plan")
    assert (missing["kind"], rows[3].kind) == ("layout", "layout")
    assert "not in the local HF cache" in missing["message"]
    unknown = json.loads((rows[4].run_dir / "failure.json").read_text())
    assert (unknown["error_class"], unknown["exit_code"], unknown["kind"]) == ("SpecError", 2, "other")
    assert not any((row.run_dir / "failure.json").exists() for row in rows[:3])


def test_the_report_shows_failed_rows_with_class_and_message(swept: Swept) -> None:
    result = swept.result
    md = result.report_markdown.read_text()
    assert all(f"| {m} | completed |" in md for m in TINY)
    assert f"| {PLANTED} | failed | " in md and "| n/a | Checkpoint layout mismatch" in md
    assert "(ModelUnavailableError: model 'wan22': weights for" in md
    assert f"| {UNKNOWN} | failed | " in md and "SpecError: model = 'nope': unknown model" in md
    assert "- Completed: 3" in md and "- Failed: 2" in md
    assert "start-up (plan, checkpoint)" in md and "stitch + manifest + bundle" in md
    assert "ModelUnavailableError" in result.report_html.read_text()


@pytest.mark.slow  # shares the module's one sweep of five models
def test_the_report_has_the_seed_header_table_and_sections(swept: Swept) -> None:
    result = swept.result
    report = parse_report(result.report_markdown.read_text())
    header, sections = report["header"], report["sections"]
    assert isinstance(header, dict) and isinstance(sections, dict)
    keys = report["header_keys"]
    assert isinstance(keys, list) and [k for k in keys if k in SEED_HEADER_KEYS] == list(SEED_HEADER_KEYS)
    record = json.loads((result.report_markdown.parent.parent / SWEEP_FILE).read_text())
    assert header["Run ID"] == f"`{record['run_id']}`" and re.fullmatch(r"`t-\d{8}T\d{6}Z`", header["Run ID"])
    assert header["Published"] == record["started_at"][:10]
    assert header["Remote movie directory"] == f"`{result.report_markdown.parent.parent.resolve()}`"
    assert (header["Models tested"], header["Completed"], header["Failed"]) == ("5", "3", "2")
    assert header["Best completed model"] in TINY and "prompt match" in header["Best-model rule"]
    assert list(sections)[:3] == list(SEED_SECTIONS)  # the seed's sections first, in its order
    assert tuple(sections) == SECTIONS
    assert tuple(report["table"][:2]) == SEED_TABLE  # type: ignore[index]
    notes = sections["Operational Notes"]
    assert [n for n in notes if n.startswith(SEED_NOTES)] and len([n for n in notes if n.startswith(SEED_NOTES)]) == 3
    # made here, not on Ray: no placements to show (a Ray sweep's are tested in tests/test_ray_scale.py)
    assert "- Placements: not recorded (these runs did not run on Ray)." in notes
    assert "### Per GPU (Ray)" not in sections["Billing Timeline"]


@pytest.mark.slow  # shares the module's one sweep of five models
def test_completed_rows_have_numeric_prompt_match_and_the_failed_row_a_verdict(
    swept: Swept,
) -> None:
    result = swept.result
    rows = parse_report(result.report_markdown.read_text())["rows"]
    assert isinstance(rows, list) and [r[0] for r in rows] == MODELS
    for model, status, latency, match, verdict in rows[:3]:
        assert status == "completed" and re.fullmatch(r"\d+\.\d{2}s", latency)
        assert re.fullmatch(r"\d+\.\d/10", match), (model, match)  # scored by the CLIP twin
        assert verdict.startswith("Rendered a valid MP4 (2 of 2 clips finished);")
        scored = json.loads((result.rows[TINY.index(model)].run_dir / "prompt_match.json").read_text())
        assert scored["status"] == "scored" and [c["index"] for c in scored["clips"]] == [0, 1]
        assert f"{scored['run_score']:.1f}/10" == match
    model, status, latency, match, verdict = rows[3]
    assert (status, match) == ("failed", "n/a") and re.fullmatch(r"\d+\.\d{2}s", latency)
    assert verdict.startswith("Checkpoint layout mismatch") and "ModelUnavailableError" in verdict


@pytest.mark.slow  # shares the module's one sweep of five models
def test_every_failure_class_present_has_a_recommendation_naming_its_evidence(
    swept: Swept,
) -> None:
    result = swept.result
    sections = parse_report(result.report_markdown.read_text())["sections"]
    assert isinstance(sections, dict)
    recommendations = sections["Recommendations"]
    kinds = {summarize_run(row.run_dir).kind for row in result.rows} - {None}
    assert kinds == {"layout", "other"}
    for kind in kinds:
        found = [r for r in recommendations if f"[{kind}" in r]
        assert found and all("Evidence: " in r for r in found)
    layout = next(r for r in recommendations if "[layout" in r)
    assert "vgkit prefetch" in layout and f"{PLANTED} [layout at stage plan]: ModelUnavailableError" in layout
    record = json.loads((result.report_markdown.parent / "report.json").read_text())
    assert record["recommendations"][0]["rule"] == "layout" and record["best_rule"].startswith(
        ("highest prompt match", "prompt match")
    )


@pytest.mark.slow  # shares the module's one sweep of five models
def test_the_html_page_has_the_same_header_players_and_split_timings(swept: Swept) -> None:
    result = swept.result
    html = result.report_html.read_text()
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert all(f"<li>{key}: <b>" in html for key in SEED_HEADER_KEYS)
    headings = [h.split(" (")[0] for h in re.findall(r"<h2>([^<]+)</h2>", html)]
    assert tuple(headings) == SECTIONS  # the same sections as the Markdown, the seed's first
    assert html.count("<video") == 6  # two shots x three completed models, playable previews
    assert "<th>shot 0</th>" in html and "<th>shot 1</th>" in html
    assert "clip 0 denoise" in html and "clip 0 VAE decode" in html  # the timing chart splits them
    assert "<h2>Recommendations</h2>" in html and "Evidence: wan22 [layout" in html


@pytest.mark.slow  # shares the module's one sweep of five models
def test_a_resumed_sweep_keeps_its_run_id_and_first_run_latency(swept: Swept) -> None:
    result, spec = swept.result, swept.spec
    before = parse_report(result.report_markdown.read_text())
    first_latency = {row[0]: row[2] for row in before["rows"]}  # type: ignore[union-attr]
    again = sweep(spec, models=TINY[:1], out=result.report_markdown.parent.parent, progress=lambda _: None,
                  prompt_match_model="clip-tiny")  # fmt: skip
    after = parse_report(again.report_markdown.read_text())
    assert after["header"]["Run ID"] == before["header"]["Run ID"]  # type: ignore[index]
    ((model, status, latency, _, _),) = after["rows"]  # type: ignore[misc]
    assert (model, status) == (TINY[0], "completed")
    match = re.fullmatch(r"(\d+\.\d{2}s) \(resumed session (\d+\.\d{2})s\)", latency)
    assert match and match.group(1) == first_latency[TINY[0]]  # the first run's time, not the resume's
    run = summarize_run(again.rows[0].run_dir)
    assert run.reused_clips == 2 and all(t.reused for t in run.clip_timings)
    assert run.resumed_s is not None and run.latency_source.startswith("the first session's")


def _failed(tmp: Path, name: str, kind: str, error_class: str, message: str, **extra: object) -> Path:
    """A run folder holding only a failure record, as vgkit.evaluate.sweep writes it (kind, class, message)."""
    run = tmp / name
    run.mkdir()
    failure = {"schema": "vgkit.failure/2", "model": name, "kind": kind, "error_class": error_class,
               "message": message, "stage": "generate", **extra}  # fmt: skip
    (run / "failure.json").write_text(json.dumps(failure))
    return run


def test_one_recommendation_per_failure_kind_each_with_its_evidence(tmp_path: Path) -> None:
    planted = {
        "out-of-memory": ("GenerationError", "clip 000: out of GPU memory while denoising: CUDA out of memory"),
        "kwargs": ("GenerationError", "clip 000: TypeError: __call__() got an unexpected keyword argument 'fps'"),
        "shape": ("GenerationError", "clip 000: RuntimeError: The size of tensor a (16) must match the size of b"),
        "layout": ("ModelUnavailableError", "model 'x': no model_index.json"),
        "timeout": ("GuardrailError", "clip 000: clip deadline 60 s passed during denoise"),
        "infeasible": ("InfeasiblePlanError", "projected 790 s per clip > 600 s on the a100"),
        "interrupted": ("RemoteConnectionError", "ssh: connect to host gpu1 port 22: connection lost"),
        "other": ("VgkitError", "something nobody foresaw"),
    }
    runs = [
        summarize_run(_failed(tmp_path, kind, kind, error_class, message, elapsed_s=3.5))
        for kind, (error_class, message) in planted.items()
    ]
    assert [r.kind for r in runs] == list(planted) and set(planted) == set(KINDS)
    recommendations = recommend(runs)
    assert [rec.rule for rec in recommendations] == list(KINDS)  # printed in KINDS order
    by_rule = {rec.rule: rec for rec in recommendations}
    for run in runs:
        (evidence,) = by_rule[run.kind or ""].evidence
        assert evidence.startswith(f"{run.model} [{run.kind}")
        assert planted[run.kind or ""][1].split(": ")[-1][:20] in evidence  # the recorded message
    assert "rejected `fps`" in by_rule["kwargs"].evidence[0]
    oom = summarize_run(
        _failed(tmp_path, "hunyuan-i2v", "out-of-memory", "GenerationError", "clip 000: CUDA out of memory")
    )
    (evidence,) = recommend([oom])[0].evidence
    assert "try preset 4090 (group offload, VAE tiling, 0.62x size)" in evidence  # the model's leanest preset
    assert "after 3.5 s" in by_rule["timeout"].evidence[0]
    assert "process group" in by_rule["interrupted"].text and "low-memory preset" in by_rule["out-of-memory"].text


@pytest.mark.slow  # shares the module's one sweep of five models
def test_low_prompt_match_on_a_multi_beat_shot_recommends_keyframe_first(swept: Swept, tmp_path: Path) -> None:
    result = swept.result
    run = summarize_run(result.rows[0].run_dir)
    prompts = [c["prompt"] for c in run.prompt_clips]
    assert [beats(p) for p in prompts] == [2, 1]  # "leaves the harbour, then turns north"
    run.prompt_clips = [{**c, "score": 1.5} for c in run.prompt_clips]  # a weak score on both shots
    (rec,) = recommend([run])
    assert rec.rule == "keyframe-first" and "source_image" in rec.text
    assert rec.evidence == [f"{run.model} clip 0: prompt match 1.5/10 (< 4) on a 2-beat shot"]  # not the 1-beat one
    run.prompt_clips = [{**c, "score": 8.0} for c in run.prompt_clips]
    assert recommend([run]) == []


def test_the_kind_is_the_failure_records_and_one_outside_the_vocabulary_is_other() -> None:
    assert [failure_kind({"kind": kind}) for kind in KINDS] == list(KINDS)  # vgkit.records.failures' kinds
    assert failure_kind({"kind": "kwargs-mismatch"}) == failure_kind({"kind": "layout-mismatch"}) == "other"
    assert failure_kind({"error_class": "InfeasiblePlanError"}) == failure_kind(None) == "other"  # no kind recorded


def test_gpu_overlap_and_idle_time_come_from_the_placements() -> None:
    """An overlap cannot come from a real Ray sweep (one job per GPU holds), so these placements
    are written here: two attempts overlap 2 s on GPU 0; GPU 1 idles until its run starts."""
    from vgkit.evaluate.report.placements import Placement, gpu_timelines, overlaps, placement_summary

    def on(gpu: str, run: str, start: float, end: float) -> Placement:
        return Placement(run, "wan22-tiny", 1, "10.0.0.5", gpu, 100, start, end, "completed", 0)

    placements = [on("0", "a", 100.0, 110.0), on("0", "b", 108.0, 120.0), on("1", "c", 105.0, 115.0)]
    [found] = overlaps(placements)
    assert (found.first.run, found.second.run, found.seconds) == ("a", "b", 2.0)
    assert placement_summary(placements)[1] == "GPU overlap (from placements): a and b on 10.0.0.5 GPU 0 for 2.00s."
    gpu0, gpu1 = gpu_timelines(placements)
    assert (gpu0.billed_s, gpu0.busy_s) == (20.0, 20.0)  # counted once where the two overlap
    assert [(s.label, s.start_s, s.duration_s) for s in gpu1.segments] == [
        ("idle", 0.0, 5.0),
        ("c (attempt 1, completed)", 5.0, 10.0),
        ("idle", 15.0, 5.0),
    ]
    assert overlaps([on("0", "a", 100.0, 110.0), on("0", "b", 110.0, 120.0)]) == []  # back to back
