"""The quick start's main job, end to end through the generate notebook (papermill), on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from vgkit.finish.encode import count_frames


@pytest.mark.slow
def test_demo_runs_the_notebook_and_bundles_thirty_seconds(tmp_path: Path) -> None:
    run_dir = tmp_path / "demo-run"
    done = subprocess.run(
        [sys.executable, "-m", "vgkit", "demo", "--out", str(run_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last == f"bundle: {tmp_path / 'demo-run.tar.gz'}"
    bundle = Path(last.removeprefix("bundle: "))
    extracted = tmp_path / "x"
    with tarfile.open(bundle) as tar:
        tar.extractall(extracted, filter="data")
    root = extracted / "demo-run"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["clip_count"] == 6
    assert manifest["actual"]["final_frames"] == manifest["planned"]["final_frames"] == 721
    assert count_frames(root / "final" / "final_stitched.mp4") == 721
    assert manifest["actual"]["final_seconds"] >= 30
    for i in range(6):
        assert (root / "clips" / f"clip_{i:03d}.mp4").is_file()
        assert (root / "frames" / f"last_frame_{i:03d}.png").is_file()
        assert (root / "logs" / f"log_{i:03d}.json").is_file()
    executed = run_dir / "notebook" / "generate.ipynb"
    assert executed.is_file()
    assert "papermill" in json.loads(executed.read_text())["metadata"]
