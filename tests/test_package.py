"""The package surface: import cost, version, the stdlib-only path the quick start relies on."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

BLOCK_HEAVY = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'diffusers', 'transformers', 'numpy', 'pydantic', 'yaml', 'PIL'}:
            raise ImportError('blocked ' + name)
        return None
sys.meta_path.insert(0, Block())
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_import_vgkit_does_not_import_torch() -> None:
    done = _python("import sys, vgkit, vgkit.cli, vgkit.models; print('torch' in sys.modules, vgkit.__version__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "False"


def test_model_choice_runs_without_third_party_packages() -> None:
    done = _python(BLOCK_HEAVY + "from vgkit.cli import main; raise SystemExit(main(['choose', '--model', 'auto']))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "wan22-tiny"
    assert done.stderr.startswith("vgkit: model wan22-tiny on cpu")


def test_version_matches_distribution_metadata() -> None:
    from importlib.metadata import version

    import vgkit

    assert vgkit.__version__ == version("vgkit")
