"""The import layering of ``unionfs/__init__.py``, checked over the source of every module.

``cli`` -> ``fuse`` -> ``union`` -> (``layerfmt``, ``safepath``, ``errors``): nothing imports
upward. Imports are read with ``ast`` (also those inside functions and ``TYPE_CHECKING``
blocks), so a deferred import cannot hide a violation.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

import unionfs

PACKAGE = Path(unionfs.__file__).parent
BASE_MODULES = ("unionfs.safepath", "unionfs.layerfmt", "unionfs.errors", "unionfs.mountopts",
                "unionfs.idmap", "unionfs.imageformat", "unionfs.livemounts",
                "unionfs.layercheck")  # fmt: skip
# A base module may import these (mountopts parses the owner-mapping options with idmap).
BASE_ALLOWED = {"unionfs.errors": (), "unionfs.idmap": ("unionfs.mountopts",),
                "unionfs.livemounts": ("unionfs.layercheck",)}  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path) -> Iterator[str]:
    """Every module *name* imports, absolute; ``from P import x`` yields ``P.x`` when that
    is a module of ours, else ``P``."""
    is_package = path.name == "__init__.py"
    ours = modules()
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


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(rule: str, source_filter: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for name, path in modules().items():
        if not within(name, source_filter):
            continue
        for target in imports(name, path):
            if any(within(target, bad) for bad in forbidden):
                found.append(f"{name} imports {target} ({rule})")
    return found


def test_every_module_is_seen() -> None:
    names = modules()
    for expected in (
        "unionfs",
        "unionfs.safepath",
        "unionfs.union.lookup",
        "unionfs.fuse.ops",
        "unionfs.cli.mount",
    ):
        assert expected in names
    assert "unionfs.fuse.ops" in {n for n in names if within(n, "unionfs.fuse")}


def test_import_reader_resolves_relative_and_deferred_imports(tmp_path: Path) -> None:
    fake = tmp_path / "x.py"
    fake.write_text(
        "from . import entry\n"
        "from ..union import stack\n"
        "from unionfs import __version__\n"
        "def f():\n"
        "    import trio\n"
    )
    found = set(imports("unionfs.fuse.x", fake))
    assert found == {"unionfs.fuse.entry", "unionfs.union.stack", "unionfs", "trio"}


def test_union_imports_no_fuse_trio_lmdb_or_cli() -> None:
    forbidden = ("pyfuse3", "trio", "lmdb", "unionfs.fuse", "unionfs.cli")
    assert violations("union is pure", "unionfs.union", forbidden) == []


def test_fuse_does_not_import_cli() -> None:
    assert violations("fuse is below cli", "unionfs.fuse", ("unionfs.cli",)) == []


def test_only_fuse_imports_pyfuse3() -> None:
    found = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if not within(name, "unionfs.fuse")
        for target in imports(name, path)
        if within(target, "pyfuse3")
    ]
    assert found == []


@pytest.mark.parametrize("base", BASE_MODULES)
def test_base_modules_import_only_unionfs_errors(base: str) -> None:
    path = modules()[base]
    ours = [t for t in imports(base, path) if within(t, "unionfs")]
    allowed = {t for t, only in BASE_ALLOWED.items() if not only or base in only}
    assert [t for t in ours if t not in allowed] == []


def test_nothing_imports_the_cli_but_the_cli_and_the_entry_point() -> None:
    allowed = ("unionfs.cli", "unionfs.__main__")
    found = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if not any(within(name, a) for a in allowed)
        for target in imports(name, path)
        if within(target, "unionfs.cli")
    ]
    assert found == []
