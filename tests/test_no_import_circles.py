"""No two modules of ``unionfs`` import each other, directly or round a longer circle,
counting imports inside functions too (a deferred import hides a circle, it does not
remove it). A circle means two rooms that cannot be read, or tested, one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import unionfs

PACKAGE = Path(unionfs.__file__).parent


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (a package's own ``__init__`` does
    not count as imported by its modules: importing ``pkg.mod`` runs it anyway)."""
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    edges: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for target in targets:
                if target in paths and target != name and not name.startswith(target + "."):
                    edges[name].add(target)
    return edges


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_module_of_unionfs_is_in_an_import_circle() -> None:
    assert circles(graph(PACKAGE)) == []


def test_a_deferred_import_closing_a_circle_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "unionfs" / "p"
    pkg.mkdir(parents=True)
    (tmp_path / "unionfs" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from unionfs.p import b\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "c.py").write_text("from unionfs.p.a import x\n")
    assert circles(graph(tmp_path / "unionfs")) == [["unionfs.p.a", "unionfs.p.b"]]
