"""The package's import graph has no cycle (lazy imports inside functions count too):
each module's job sits below the modules that use it, so it can be read, tested and
replaced on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import psdwatch.daemon
import psdwatch.pipeline


def _modules() -> dict[str, Path]:
    out = {}
    for package in (psdwatch.pipeline, psdwatch.daemon):
        root = Path(package.__file__).parent
        for path in root.rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package.__name__, *parts])] = path
    return out


def _edges(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(0, node.level - 1)):
                base = base.rsplit(".", 1)[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            for alias in node.names:  # `from . import x` names a module where one exists
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {t for t in found if t in known and t != name}


def _with_packages(name: str, targets: set[str], known: dict[str, Path]) -> set[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first: a package's public face
    that imports back into the importer is a cycle at import time too. The importer's
    own packages are left out (they are already being imported when it runs)."""
    own = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
    out = set(targets)
    for target in targets:
        parts = target.split(".")
        out |= {".".join(parts[:k]) for k in range(2, len(parts))} - own
    return {t for t in out if t in known and t != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_installed_package():
    known = _modules()
    assert "psdwatch.pipeline.runtime.int8" in known
    graph = {name: _with_packages(name, _edges(name, path, known), known) for name, path in known.items()}
    assert "psdwatch.pipeline.runtime.onnx" in graph["psdwatch.pipeline.runtime.int8"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)
