"""Typed run records (vgkit.records.schema): one reader per record, older schemas read or refused in one
line, and no module outside vgkit/records/schema.py reading a clip log by string key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.test_stitch import make_run
from vgkit.errors import ArtifactError
from vgkit.records.artifacts import CLIP_LOG_SCHEMA
from vgkit.records.schema import parse_log, read_log, read_logs

VGKIT = Path(__file__).resolve().parent.parent / "vgkit"

# A clip log read by string key: log["x"], logs[0]["x"], log.get("x"), first_log[...], a log file
# parsed by hand (layout.log(i).read_text(), a glob of log_*.json).
_KEYED = re.compile(
    r"""\b(log|logs|first_log|ok_logs|existing|reused)(\[\d+\])?(\[["']|\.get\(["'])"""
    r"""|\.log\([^)]*\)\.read_text|glob\(["']log_"""
)


def test_the_pattern_finds_string_key_reads_of_a_clip_log() -> None:
    for read in ('log["effective"]', "logs[0]['model']", 'log.get("status")', "layout.log(0).read_text()",
                 'layout.logs.glob("log_[0-9].json")', 'first_log["index"]'):  # fmt: skip
        assert _KEYED.search(read), read
    for typed in ("log.effective.num_frames", "logs[0].model", 'gpu.get("samples")', "read_logs(run_dir)"):
        assert not _KEYED.search(typed), typed


def test_no_module_outside_records_reads_a_clip_log_by_string_key() -> None:
    found = [
        f"{path.relative_to(VGKIT.parent)}:{n}: {line.strip()}"
        for path in sorted(VGKIT.rglob("*.py"))
        if path != VGKIT / "records" / "schema.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _KEYED.search(line)
    ]
    assert found == []


def test_a_written_log_reads_back_typed(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    logs = read_logs(layout.root)
    assert [log.index for log in logs] == [0, 1, 2] and all(log.status == "ok" for log in logs)
    assert [log.chained for log in logs] == [False, True, True]
    assert logs[1].artifacts["clip"].path == "clips/clip_001.mp4" and logs[1].effective.num_frames is not None
    assert logs[0].to_json() == json.loads(layout.log(0).read_text())


def test_a_schema_2_log_is_read_with_its_failure_as_the_failure_record(tmp_path: Path) -> None:
    old = {"schema": "vgkit.clip-log/2", "index": 1, "status": "aborted", "failure_class": "clip_deadline",
           "failure": "the clip deadline of 600 s passed", "phase": "denoise", "killed_by": "watchdog"}  # fmt: skip
    log = parse_log(old, source="logs/log_001.json")
    assert log.failure is not None
    assert (log.schema_, log.failure.kind, log.failure.phase, log.failure.clip_index) == (
        CLIP_LOG_SCHEMA, "timeout", "denoise", 1
    )  # fmt: skip
    assert log.failure.message == "the clip deadline of 600 s passed"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"schema": "vgkit.clip-log/1", "index": 0, "status": "ok"},
         r"^logs/log_000\.json: clip-log schema 'vgkit\.clip-log/1' is not one vgkit reads \(vgkit\.clip-log/3 or "
         r"vgkit\.clip-log/2\); fix: re-run the run"),
        ({"schema": CLIP_LOG_SCHEMA, "index": "first", "status": "ok"},
         r"^logs/log_000\.json: field index: input should be a valid integer.*\(got 'first'\); fix:"),
        ({"schema": CLIP_LOG_SCHEMA, "index": 0, "status": "done"}, r"field status: input should be 'ok', 'failed'"),
        ([1, 2], r"^logs/log_000\.json: not a JSON object; fix:"),
    ],
)  # fmt: skip
def test_other_logs_are_refused_in_one_line_naming_the_version_or_field(data: object, message: str) -> None:
    with pytest.raises(ArtifactError, match=message) as caught:
        parse_log(data, source="logs/log_000.json")
    assert "\n" not in str(caught.value)


def test_a_torn_log_is_unreadable_and_lenient_reading_skips_it(tmp_path: Path) -> None:
    layout = make_run(tmp_path / "run")
    layout.log(2).write_text(layout.log(2).read_text()[:30])
    with pytest.raises(ArtifactError, match=r"logs/log_002\.json is unreadable \(JSONDecodeError; truncated\?\)"):
        read_log(layout.log(2), root=layout.root)
    assert [log.index for log in read_logs(layout.root, lenient=True)] == [0, 1]
    with pytest.raises(ArtifactError):
        read_logs(layout.root)
