"""What a change reports it copied up (``Stack.copied``/``take_copies``): every entry that
came up, parents first, as it resolved before and as it resolves now, also when the change
fails after copying parents up. The FUSE layer follows these instead of walking paths."""

from __future__ import annotations

import errno
import os

import pytest
from layers import Hardlink, LayerFactory

from unionfs.safepath import LayerDir
from unionfs.union import attrs, copyup, create, remove
from unionfs.union import rename as rename_rules
from unionfs.union.lookup import resolve_path
from unionfs.union.stack import CopiedUp, Features, Resolved, Stack


def res(stack: Stack, path: str) -> Resolved:
    found = resolve_path(stack, os.fsencode(path))
    assert found is not None, path
    return found


def summary(copies: list[CopiedUp]) -> list[tuple[bytes, tuple[int, ...], tuple[int, ...]]]:
    return [(c.before.path, c.before.layers, c.after.layers) for c in copies]


def test_copy_up_reports_each_entry_it_copied_parents_first(layers: LayerFactory) -> None:
    stack = layers.stack({"a/b/f": "x"}, upper={})
    copyup.copy_up(stack, res(stack, "a/b/f"))
    assert summary(stack.take_copies()) == [
        (b"a", (1,), (0, 1)), (b"a/b", (1,), (0, 1)), (b"a/b/f", (1,), (0,)),
    ]  # fmt: skip
    assert stack.take_copies() == []
    copyup.copy_up(stack, res(stack, "a/b/f"))  # up already: nothing to report
    assert stack.take_copies() == []


def test_the_reported_after_is_what_a_lookup_finds_now(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"x": ""}}, {"d/": {"y": ""}}, upper={})
    before = res(stack, "d")
    create.mkdir(stack, before, b"new", 0o755, create.Owner(0, 0))
    (copy,) = stack.take_copies()
    assert copy.before == before
    assert copy.after.layers == res(stack, "d").layers == (0, 1, 2)


def test_a_change_that_fails_still_reports_the_parents_it_copied(layers: LayerFactory) -> None:
    stack = layers.stack({"d/e/": {"x": ""}}, upper={})

    def full(layer: LayerDir, path: bytes, mode: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError):
        create.create_entry(stack, res(stack, "d/e"), b"n", full, None, None)
    assert [c.after.path for c in stack.take_copies()] == [b"d", b"d/e"]


def test_removing_and_renaming_report_the_parents_they_copied(layers: LayerFactory) -> None:
    stack = layers.stack({"a/f": "", "b/": {}}, upper={})
    remove.unlink(stack, res(stack, "a"), b"f")
    assert [c.after.path for c in stack.take_copies()] == [b"a"]
    stack2 = layers.stack({"a/f": "", "b/": {}}, upper={})
    rename_rules.rename(stack2, res(stack2, "a"), b"f", res(stack2, "b"), b"g")
    assert sorted(c.after.path for c in stack2.take_copies()) == [b"a", b"a/f", b"b"]


def test_metacopy_data_coming_up_is_reported(layers: LayerFactory) -> None:
    stack = layers.stack({"f": "data"}, upper={}, features=Features("on", metacopy=True))
    meta = attrs.set_attributes(stack, res(stack, "f"), attrs.Changes(mode=0o600))
    assert meta.metacopy
    stack.take_copies()
    copyup.copy_up_data(stack, meta)
    assert summary(stack.take_copies()) == [(b"f", (0, 1), (0,))]


def test_linking_up_a_name_of_an_indexed_copy_is_reported(layers: LayerFactory) -> None:
    stack = layers.stack({"x/a": "d", "y/b": Hardlink("x/a")}, upper={},
                         features=Features("on", index=True))  # fmt: skip
    copyup.copy_up(stack, res(stack, "x/a"))
    stack.take_copies()
    shown = res(stack, "y/b")
    copyup.copy_up(stack, shown)
    copies = stack.take_copies()
    assert [c.before.path for c in copies] == [b"y", b"y/b"]
    assert copies[1].before == shown and copies[1].after.top == 0
