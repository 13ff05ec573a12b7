"""The house: stage packages, no import cycle, a small lazy public facade."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import vgkit

VGKIT = Path(vgkit.__file__).parent
TOP_LEVEL_MODULES = {"__init__.py", "__main__.py", "cli.py", "errors.py", "settings.py", "py.typed"}


def _module_name(path: Path) -> str:
    parts = path.with_suffix("").relative_to(VGKIT.parent).parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.AST, known: set[str]) -> set[str]:
    """vgkit modules imported anywhere in ``tree`` (module scope and inside functions), except
    under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        stack.extend(ast.iter_child_nodes(node))
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in VGKIT.rglob("*.py")}
    return {name: _imports(ast.parse(path.read_text()), set(paths)) - {name, "vgkit"} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_through_function_level_imports() -> None:
    source = "import vgkit.a\ndef f():\n    from vgkit.c import x\n    from vgkit import b\n"
    source += "if TYPE_CHECKING:\n    import vgkit.d\n"
    known = {"vgkit.a", "vgkit.b", "vgkit.c", "vgkit.d"}
    assert _imports(ast.parse(source), known) == {"vgkit.a", "vgkit.b", "vgkit.c"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_vgkit_module_imports_itself_back_in_a_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 80  # every module was parsed
    assert find_cycle(graph) is None


def test_the_top_level_holds_the_facade_cli_errors_settings_and_stage_packages() -> None:
    files = {p.name for p in VGKIT.iterdir() if p.is_file()}
    assert files == TOP_LEVEL_MODULES
    packages = {p.name for p in VGKIT.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert {"spec", "hub", "models", "generate", "supervise", "records", "finish", "evaluate"} <= packages
    for package in packages:
        docstring = ast.get_docstring(ast.parse((VGKIT / package / "__init__.py").read_text()))
        assert docstring, f"vgkit/{package}/__init__.py says what the stage is"


def test_every_public_name_resolves_to_what_its_module_defines() -> None:
    names = [name for name in vgkit.__all__ if name != "__version__"]
    assert len(names) >= 20 and names == sorted(names)
    for name in names:
        value = getattr(vgkit, name)
        module = importlib.import_module(vgkit._EXPORTS[name])
        assert value is getattr(module, name)
        assert getattr(value, "__module__", "").startswith("vgkit."), name
    assert set(names) <= set(dir(vgkit))
    with pytest.raises(AttributeError, match="no attribute 'run_jobs'"):
        vgkit.run_jobs  # noqa: B018


def test_the_facade_the_type_checker_sees_is_the_one_that_runs() -> None:
    """The ``if TYPE_CHECKING:`` imports in vgkit/__init__.py name exactly the lazy exports, from the same modules."""
    tree = ast.parse((VGKIT / "__init__.py").read_text())
    block = next(node for node in tree.body if _is_type_checking_block(node))
    seen = {
        alias.name: node.module for node in ast.walk(block) if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert seen == vgkit._EXPORTS


def test_import_vgkit_imports_no_heavy_library_and_ships_its_types() -> None:
    probe = "import json, sys, vgkit; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout))
    assert "vgkit" in loaded
    assert not loaded & {"torch", "diffusers", "transformers", "pydantic", "numpy", "huggingface_hub"}
    assert (VGKIT / "py.typed").is_file()
