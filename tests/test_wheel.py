"""``pip install .`` (non-editable) works: vgkit built from a copy of the repo into a fresh venv runs
``vgkit check`` and a tiny job from a folder outside the repo, reading its data from site-packages.

The fresh venv gets torch, diffusers and the rest from the shared venv's site-packages (a directory
of links to them, named in a ``.pth`` file) instead of installing them again: only vgkit is built
and installed (``pip install --no-deps --no-build-isolation``, real pip and setuptools). The shared
venv's own vgkit (an editable install of a checkout) is left out of those links, and the commands
run with no ``PYTHONPATH``, so nothing can import vgkit from a checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO, spec_dict, write_spec

pytestmark = pytest.mark.slow  # installs vgkit (~7 s), then `vgkit check` and a one-clip tiny job: ~1 min

_SKIP_SHARED = ("vgkit", "__editable__", "__editable___vgkit")


def _fresh_venv(root: Path) -> tuple[Path, Path]:
    """A venv at ``root / "venv"`` whose dependencies resolve to the shared venv's; (python, site-packages)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
    python = root / "venv" / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    deps = root / "shared-deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(_SKIP_SHARED) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    (site / "shared-deps.pth").write_text(f"{deps}\n")
    return python, site


def _source_copy(dest: Path) -> Path:
    """What ``pip install .`` reads: pyproject.toml, the README it names, the package."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "vgkit", dest / "vgkit", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def test_a_non_editable_install_checks_and_runs_a_job_outside_the_repo(tmp_path: Path) -> None:
    python, site = _fresh_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", "."],
        cwd=_source_copy(tmp_path / "src"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    outside = tmp_path / "elsewhere"
    outside.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=outside, env=env, capture_output=True, text=True, timeout=600)

    where = run(str(python), "-c", "import vgkit, vgkit.models.baselines as b; print(vgkit.__file__, b.__file__)")
    assert where.returncode == 0, where.stderr
    package, baselines = (Path(line) for line in where.stdout.split())
    assert package == site / "vgkit" / "__init__.py"  # the installed copy, not a checkout
    assert (baselines.parent / "wan22.yaml").is_file()  # the baselines shipped as package data

    vgkit = str(tmp_path / "venv" / "bin" / "vgkit")  # the console script the install wrote
    check = run(vgkit, "check", str(REPO / "params" / "demo.yaml"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "wan22-tiny" in check.stdout + check.stderr

    spec = write_spec(outside / "spec.yaml", spec_dict(name="wheel", shots=spec_dict()["shots"][:1]))
    job = run(vgkit, "run", str(spec), "--model", "wan22-tiny", "--out", "run")
    assert job.returncode == 0, job.stdout[-2000:] + job.stderr[-2000:]
    assert (outside / "run" / "final" / "final_stitched.mp4").is_file()
    assert (outside / "run" / "manifest.json").is_file()
