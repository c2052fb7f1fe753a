"""The layering of ``unionfs/__init__.py``, checked over the source of every module.

``unionfs.LAYERS`` says which parts of unionfs each part may import, ``unionfs.LIBRARIES``
which parts may import a library; this is the one test that reads them. Imports are read
with ``ast`` (also those inside functions and ``TYPE_CHECKING`` blocks), so a deferred
import cannot hide a violation. No modules may import each other in a circle either.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import unionfs
from unionfs import LAYERS, LIBRARIES

PACKAGE = Path(unionfs.__file__).parent

def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, ours: dict[str, Path] | None = None) -> Iterator[str]:
    """Every module *name* imports, absolute; ``from P import x`` yields ``P.x`` when that
    is a module of *ours* (default: unionfs's), else ``P``."""
    is_package = path.name == "__init__.py"
    ours = modules() if ours is None else ours
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                drop = node.level - 1 if is_package else node.level
                anchor = anchor[: len(anchor) - drop]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in ours else base


def part(module: str) -> str | None:
    """The row of ``LAYERS`` a module belongs to: ``unionfs.union.lookup`` -> ``union``,
    ``unionfs.errors`` -> ``errors``, ``unionfs`` -> ``unionfs``; None outside unionfs."""
    if module == "unionfs":
        return "unionfs"
    if not module.startswith("unionfs."):
        return None
    return module.split(".")[1]


def every_import() -> Iterator[tuple[str, str]]:
    for name, path in modules().items():
        for target in imports(name, path):
            yield name, target


def test_every_module_belongs_to_a_row_and_every_row_to_modules() -> None:
    parts = {part(name) for name in modules()}
    assert {"union", "fuse", "store", "containers", "cli", "errors"} <= parts
    assert parts - set(LAYERS) == set(), "a part of unionfs without a row in LAYERS"
    assert set(LAYERS) - parts == set(), "a row in LAYERS for a part that is gone"
    named = {p for allowed in (*LAYERS.values(), *LIBRARIES.values()) for p in allowed}
    assert named - set(LAYERS) == set()


def test_the_table_is_a_layering_with_no_circle() -> None:
    placed: list[str] = []
    left = dict(LAYERS)
    while left:
        ready = [p for p, allowed in left.items() if all(a in placed for a in allowed)]
        assert ready, f"the rows of these parts import each other: {sorted(left)}"
        placed += ready
        for p in ready:
            del left[p]


def test_the_docstring_names_every_part() -> None:
    doc = unionfs.__doc__ or ""
    assert [p for p in LAYERS if p != "unionfs" and f"``{p}``" not in doc] == []


def test_every_import_of_unionfs_is_one_its_row_allows() -> None:
    found = []
    for name, target in every_import():
        source, dest = part(name), part(target)
        assert source is not None
        if dest is not None and dest != source and dest not in LAYERS[source]:
            found.append(f"{name} imports {target} ({source} may import: {LAYERS[source]})")
    assert found == []


def test_libraries_are_imported_only_where_allowed() -> None:
    found = [
        f"{name} imports {target} (only {LIBRARIES[lib]} may)"
        for name, target in every_import()
        if (lib := target.split(".")[0]) in LIBRARIES and part(name) not in LIBRARIES[lib]
    ]
    assert found == []


def circles(ours: dict[str, Path]) -> list[set[str]]:
    """The strongly connected components of more than one module of *ours* (Tarjan),
    counting every import between them, module level or deferred."""
    graph = {n: sorted({t for t in imports(n, p, ours) if t in ours and t != n})
             for n, p in ours.items()}  # fmt: skip
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert [sorted(c) for c in circles(modules())] == []


def test_import_reader_resolves_relative_deferred_and_type_checking_imports(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "x.py"
    fake.write_text(
        "import typing\n"
        "from . import entry\n"
        "from ..union import stack\n"
        "from unionfs import __version__\n"
        "if typing.TYPE_CHECKING:\n"
        "    from unionfs.store import images\n"
        "def f():\n"
        "    import trio\n"
    )
    found = set(imports("unionfs.fuse.x", fake))
    assert found == {"typing", "unionfs.fuse.entry", "unionfs.union.stack", "unionfs",
                     "unionfs.store.images", "trio"}  # fmt: skip


def test_circle_finder_sees_a_circle_closed_by_a_deferred_import(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from unionfs import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from unionfs import a\n")
    (tmp_path / "c.py").write_text("from unionfs import a\n")
    assert circles({f"unionfs.{n}": tmp_path / f"{n}.py" for n in "abc"}) == [
        {"unionfs.a", "unionfs.b"}
    ]
