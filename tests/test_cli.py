"""The command line: help and version, one-line user errors with distinct exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec
from vgkit.cli import main

COMMANDS = ["run", "check", "stitch", "bundle", "diff", "models", "prefetch", "choose", "demo"]


def _vgkit(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vgkit", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_version() -> None:
    done = _vgkit("--version")
    assert done.returncode == 0
    assert done.stdout.strip().startswith("vgkit 0.")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: vgkit {command}" in capsys.readouterr().out


def test_bad_spec_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    data = spec_dict()
    data["shots"][0]["camera"] = "zoom"
    spec = write_spec(tmp_path / "bad.yaml", data)
    done = _vgkit("run", str(spec), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("vgkit: error: ") and "shots[0].camera = 'zoom'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_real_model_without_weights_is_exit_3_naming_prefetch(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", spec_dict())
    done = _vgkit("run", str(spec), "--model", "wan22", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 3
    assert "vgkit prefetch --model wan22" in done.stderr


def test_check_prints_plan_and_prompts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(REPO / "params" / "demo.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("vgkit: model wan22-tiny on cpu")
    assert "final: 721 frames = 30.04 s" in out
    assert out.count("prompt 00") == 6


@pytest.mark.parametrize("example", ["demo.yaml", "architects_stillness.yaml", "preview.yaml"])
@pytest.mark.parametrize(
    "model", ["wan22", "wan22-tiny", "cogvideox15", "cogvideox15-tiny", "hunyuan-i2v", "hunyuan-i2v-tiny"]
)
def test_check_plans_every_example_on_every_model(example: str, model: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(REPO / "params" / example), "--model", model]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"vgkit: model {model} ")
    assert re.search(r"final: \d+ frames = \d+\.\d+ s", out)


def test_stitch_of_missing_run_is_exit_5(tmp_path: Path) -> None:
    done = _vgkit("stitch", str(tmp_path / "nothing"))
    assert done.returncode == 5
    assert "no clip logs" in done.stderr


def test_output_piped_into_a_reader_that_stops_early_ends_without_a_traceback() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        f"{sys.executable} -m vgkit models | head -n 1", shell=True, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.startswith("model ")
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
