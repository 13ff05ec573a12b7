"""Project files that must agree: pins, the README's two commands, CI entry point."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_environment_yml_has_the_same_exact_pins_as_requirements() -> None:
    requirements = _pins((REPO / "requirements.txt").read_text().splitlines())
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == requirements
    for needed in ("torch", "diffusers", "transformers", "huggingface-hub", "imageio-ffmpeg", "papermill", "nbval"):
        assert needed in requirements


def test_readme_quick_start_is_exactly_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", section, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert [c.split("#")[0].strip() for c in commands] == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci


def test_setup_is_idempotent_and_reports_the_gpu() -> None:
    import subprocess

    done = subprocess.run(["bash", "setup.sh"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    again = subprocess.run(["bash", "setup.sh"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.stdout.splitlines()[0].startswith("setup: environment up to date")
    assert re.search(r"setup: (GPU found: .+|no GPU found: .+)", again.stdout)


def test_demo_script_announces_then_refuses_real_model_without_weights() -> None:
    import subprocess

    done = subprocess.run(
        ["bash", "scripts/demo.sh", "--model", "wan22"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.startswith("vgkit: error: model 'wan22': weights for Wan-AI/Wan2.2-TI2V-5B-Diffusers")
    assert "vgkit prefetch --model wan22" in done.stderr
