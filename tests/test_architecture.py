"""The import graph of the four packages, read statically (ast): arrows point one way.

``cryoet_ng`` (core) <- ``precompute``; ``cryoet_ng`` <- ``ngstate`` <- ``server``; the
composition root ``cryoet_ng_cli`` sits above all four and nothing imports it. Every import
counts, also those inside functions and under ``TYPE_CHECKING``: a lazy import is still a
dependency. Importing ``a.b`` is an edge to ``a.b`` only (Python runs ``a/__init__`` first,
but that is not a dependency of ``a.b`` on what ``a`` imports).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("cryoet_ng", "precompute", "ngstate", "server", "cryoet_ng_cli")
# package -> top-level names it must never import
FORBIDDEN = {
    "cryoet_ng": {"precompute", "ngstate", "server", "cryoet_ng_cli"},
    "precompute": {"ngstate", "server", "cryoet_ng_cli"},
    "ngstate": {"precompute", "server", "cryoet_ng_cli", "flask", "werkzeug", "tensorstore"},
    "server": {"precompute", "cryoet_ng_cli"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``name`` imports: known modules resolved exactly, others by top name."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in edges:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    edges = graph()
    assert "cryoet_ng.layout" in edges["precompute.jobs"]
    assert "ngstate.inputs" in edges["server.state_service"]
    assert "precompute.commands" not in edges["cryoet_ng_cli"]  # imported by name, lazily
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package: str) -> None:
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in graph().items()
        if name.split(".")[0] == package
        for target in targets
        if target.split(".")[0] in FORBIDDEN[package]
    )
    assert wrong == []
