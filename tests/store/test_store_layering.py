"""The store's place in the layering: beside the runtime, below the CLI, above union."""

from __future__ import annotations

from test_layering import violations


def test_store_imports_no_cli_fuse_trio_or_pyfuse3() -> None:
    forbidden = ("unionfs.cli", "unionfs.fuse", "pyfuse3", "trio")
    assert violations("store is below the cli, beside fuse", "unionfs.store", forbidden) == []


def test_runtime_and_union_do_not_import_the_store() -> None:
    for package in ("unionfs.runtime", "unionfs.union", "unionfs.index"):
        assert violations("the store is above them", package, ("unionfs.store",)) == []
