"""Hard links that survive copy-up (``index=on``, ``unionfs.union.hardlinks``).

Copying up one name of a lower hard link puts the copy in the link index and links that
name alone into the upper, as the kernel does: the other names stay lower, and a lookup
shows them as the copy (same inode, data, mode, link count) without writing anything;
each is linked up when it is copied up in turn.
"""

from __future__ import annotations

import os
from pathlib import Path

from layers import Hardlink, LayerFactory, read_tree

from unionfs.union import attrs, copyup, link, remove
from unionfs.union import rename as rename_rules
from unionfs.union.hardlinks import shown_nlink
from unionfs.union.lookup import resolve_path
from unionfs.union.readdir import list_dir
from unionfs.union.stack import Features, Resolved, Stack

XATTR = "trusted.overlay.redirect"
META = "trusted.overlay.metacopy"
INDEXED = Features("on", metacopy=True, index=True)


def res(stack: Stack, path: str) -> Resolved:
    found = resolve_path(stack, os.fsencode(path))
    assert found is not None, path
    return found


def upper_dir(layers: LayerFactory, stack: Stack) -> Path:
    found = layers.dirs(stack).upper
    assert found is not None
    return found


def index_dir(layers: LayerFactory, stack: Stack) -> Path:
    work = layers.dirs(stack).work
    assert work is not None
    return work / "unionfs-index"


def on_disk(*roots: Path) -> list[tuple[str, int, int, int]]:
    """Every path below *roots* with its inode, link count and ctime: what a write changes."""
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [".", *dirnames, *filenames]:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                found.append((path, st.st_ino, st.st_nlink, st.st_ctime_ns))
    return sorted(found)


def test_copy_up_of_one_name_links_only_that_name_up(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "data", "b": Hardlink("a"), "d/": {}}, upper={}, features=INDEXED)
    up = copyup.copy_up(stack, res(stack, "a"))
    assert len(os.listdir(index_dir(layers, stack))) == 1
    assert read_tree(upper_dir(layers, stack)) == {"a": "data"}
    assert os.lstat(upper_dir(layers, stack) / "a").st_nlink == 2  # + the index's link
    assert up.top == 0 and up.index_copy is None


def test_lookup_of_another_name_shows_the_copy_and_writes_nothing(layers: LayerFactory) -> None:
    """After ``chmod 600 a; stat b`` the upper holds ``a`` alone (kernel overlayfs with
    index=on too), and ``b`` shows what ``a`` shows."""
    stack = layers.stack({"a": "data", "b": Hardlink("a")}, upper={}, features=INDEXED)
    a = attrs.set_attributes(stack, res(stack, "a"), attrs.Changes(mode=0o600))
    before = on_disk(upper_dir(layers, stack), index_dir(layers, stack))
    b = res(stack, "b")
    listed = dict(list_dir(stack, stack.root()))
    assert on_disk(upper_dir(layers, stack), index_dir(layers, stack)) == before
    assert read_tree(upper_dir(layers, stack)) == {"a": "data"}
    for shown in (b, listed[b"b"]):
        assert shown.top == 1 and shown.index_copy is not None
        assert (shown.st.st_dev, shown.st.st_ino) == (a.st.st_dev, a.st.st_ino)
        assert shown.st.st_mode & 0o777 == 0o600
        assert shown_nlink(stack, shown) == shown_nlink(stack, a) == 2
    layer, path = stack.data_of(b)
    fd = layer.open(path, os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b"data"
    finally:
        os.close(fd)


def test_a_name_in_another_directory_stays_lower_until_it_is_copied_up(
    layers: LayerFactory,
) -> None:
    stack = layers.stack({"x/a": "data", "y/b": Hardlink("x/a")}, upper={}, features=INDEXED)
    up = copyup.copy_up(stack, res(stack, "x/a"))
    assert res(stack, "y/b").index_copy is not None
    assert read_tree(upper_dir(layers, stack)) == {"x/": {"a": "data"}}  # no y/
    linked = copyup.copy_up(stack, res(stack, "y/b"))
    assert linked.top == 0 and linked.index_copy is None
    assert read_tree(upper_dir(layers, stack)) == {"x/": {"a": "data"}, "y/": {"b": "data"}}
    assert (linked.st.st_dev, linked.st.st_ino) == (up.st.st_dev, up.st.st_ino)
    assert os.lstat(upper_dir(layers, stack) / "y" / "b").st_nlink == 3
    assert shown_nlink(stack, linked) == 2


def test_a_name_not_linked_up_reads_what_was_written_through_another(
    layers: LayerFactory,
) -> None:
    stack = layers.stack({"a": "data", "b": Hardlink("a")}, upper={}, features=INDEXED)
    copyup.copy_up(stack, res(stack, "a"))
    (upper_dir(layers, stack) / "a").write_bytes(b"changed")
    layer, path = stack.data_of(res(stack, "b"))
    fd = layer.open(path, os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b"changed"
    finally:
        os.close(fd)


def test_link_and_unlink_change_the_shown_count(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "data", "b": Hardlink("a")}, upper={}, features=INDEXED)
    link.link(stack, res(stack, "a"), res(stack, ""), b"c")
    assert shown_nlink(stack, res(stack, "c")) == 3
    remove.unlink(stack, res(stack, ""), b"a")
    remove.unlink(stack, res(stack, ""), b"b")
    assert shown_nlink(stack, res(stack, "c")) == 1
    assert sorted(name for name, _ in list_dir(stack, res(stack, ""))) == [b"c"]


def test_unlink_of_an_untouched_name_counts_on_the_others(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "data", "b": Hardlink("a")}, upper={}, features=INDEXED)
    remove.unlink(stack, res(stack, ""), b"b")
    assert shown_nlink(stack, res(stack, "a")) == 1


def test_names_showing_a_copy_keep_counting_when_the_copy_has_one_link_left(
    layers: LayerFactory,
) -> None:
    """Three names, one removed: the copy's only link is then the index's own, while the
    two names left (not linked up) still show a count of two, and removing one of them
    still counts."""
    stack = layers.stack({"a": "data", "b": Hardlink("a"), "c": Hardlink("a")}, upper={},
                         features=INDEXED)  # fmt: skip
    remove.unlink(stack, res(stack, ""), b"c")
    assert shown_nlink(stack, res(stack, "a")) == shown_nlink(stack, res(stack, "b")) == 2
    remove.unlink(stack, res(stack, ""), b"b")
    assert shown_nlink(stack, res(stack, "a")) == 1


def test_rename_between_a_linked_up_name_and_one_not_yet_does_nothing(
    layers: LayerFactory,
) -> None:
    stack = layers.stack({"a": "data", "b": Hardlink("a")}, upper={}, features=INDEXED)
    copyup.copy_up(stack, res(stack, "a"))
    rename_rules.rename(stack, stack.root(), b"a", stack.root(), b"b")
    assert res(stack, "a").top == 0 and res(stack, "b").index_copy is not None
    assert read_tree(upper_dir(layers, stack)) == {"a": "data"}


def test_without_index_a_copy_up_breaks_the_link(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "data", "b": Hardlink("a")}, upper={})
    copyup.copy_up(stack, res(stack, "a"))
    assert res(stack, "b").top == 1
    assert stack.links is None


def test_copy_up_of_a_linked_lower_metacopy_file_takes_the_data_below_it(
    layers: LayerFactory,
) -> None:
    """With index=on a lower file with two names is copied into the index; when that lower
    file is itself metacopy (an upper turned lower) its data is in the layer below, not in
    its own sparse body (unionmount-testsuite rename-hard-link, --ov=2 with metacopy)."""
    stack = layers.stack({"a": "", "b": Hardlink("a")}, {"a": ":xxx:"}, upper={},
                         features=INDEXED)  # fmt: skip
    middle = layers.dirs(stack).lowers[0]
    os.truncate(middle / "a", 5)  # the metacopy body: a hole the size of the data
    os.setxattr(middle / "a", META, b"")
    os.setxattr(middle / "a", XATTR, b"/a")
    up = copyup.copy_up(stack, res(stack, "b"), meta=True)
    assert up.top == 0 and not up.metacopy
    assert (upper_dir(layers, stack) / "b").read_bytes() == b":xxx:"
