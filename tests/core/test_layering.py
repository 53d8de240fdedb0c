"""The core's import graph: no cycle (function-level imports included), the plugin manager imports only the hook
specs, and the core imports no adapter or benchmark. Read from the source with `ast`, nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import sphere_plugins

CORE = Path(sphere_plugins.__file__).parent
OUTSIDE = ("sphere_stylegan2", "sphere_diffusers", "sphere_timm", "benchmarks")


def _module_names() -> dict[str, Path]:
    names = {}
    for path in CORE.rglob("*.py"):
        parts = path.relative_to(CORE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


MODULES = _module_names()


def _imports(path: Path) -> set[str]:
    """Every module `path` imports anywhere in its body (a name imported from a package counts as the
    submodule when one has that name, else as the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found


GRAPH = {name: {m for m in _imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        stack.append(name)
        for imported in sorted(graph[name]):
            if state.get(imported) == "open":
                return stack[stack.index(imported):] + [imported]
            if imported not in state and (found := visit(imported)):
                return found
        state[name] = "done"
        stack.pop()
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_imports_inside_functions_count(tmp_path):
    source = tmp_path / "late.py"
    source.write_text("import os\n\ndef f():\n    from sphere_plugins import saving, hookimpl\n")
    assert _imports(source) == {"os", "sphere_plugins.saving", "sphere_plugins"}
    assert len(GRAPH) > 30 and "sphere_plugins.hookspecs" in GRAPH["sphere_plugins.plugins"]


def test_the_core_has_no_import_cycle():
    cycle = _cycle(GRAPH)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_plugin_manager_imports_only_the_hook_specs():
    assert GRAPH["sphere_plugins.plugins"] == {"sphere_plugins.hookspecs"}


def test_the_core_imports_no_adapter_and_no_benchmark():
    offending = {name: sorted(m for m in _imports(path) if m.split(".")[0] in OUTSIDE)
                 for name, path in MODULES.items()}
    assert {name: found for name, found in offending.items() if found} == {}
