"""The registry package sits beside the store: it imports nothing of unionfs but
``errors``, the image formats (``imageformat``, which the store parses with too) and the
reference grammar (``imagename``, which the store names images with), and
reaches the store only through the protocols in ``transfer``."""

from __future__ import annotations

from test_layering import imports, modules, within


def test_registry_imports_only_errors_and_image_formats_of_unionfs() -> None:
    found = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if within(name, "unionfs.registry")
        for target in imports(name, path)
        if within(target, "unionfs")
        and not within(target, "unionfs.registry")
        and target not in ("unionfs.errors", "unionfs.imageformat", "unionfs.imagename")
    ]
    assert found == []


def test_only_the_cli_imports_the_registry() -> None:
    found = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if not within(name, "unionfs.registry") and not within(name, "unionfs.cli")
        for target in imports(name, path)
        if within(target, "unionfs.registry")
    ]
    assert found == []
