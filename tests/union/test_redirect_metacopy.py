"""The redirect and metacopy rules of ``unionfs.union`` on temporary directories.

Directory renames record ``overlay.redirect`` (relative in the same directory, absolute
elsewhere) and copy nothing below the directory; lookups and listings follow the record;
attribute changes of a lower file copy up only its metadata (``overlay.metacopy``) and
data comes up on the first write; ``flatten`` spells both out for an OCI layer.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from layers import WHITEOUT_CHR, LayerFactory, read_tree

from unionfs.union import attrs, copyup, link, remove
from unionfs.union import rename as rename_rules
from unionfs.union.flatten import flatten
from unionfs.union.lookup import resolve_path
from unionfs.union.readdir import names
from unionfs.union.stack import Features, Resolved, Stack

XATTR = "trusted.overlay.redirect"
META = "trusted.overlay.metacopy"


def featured(layers: LayerFactory, *lowers: object, upper: object) -> Stack:
    stack = layers.stack(*lowers, upper=upper)  # type: ignore[arg-type]
    stack.features = Features("on", metacopy=True)
    return stack


def res(stack: Stack, path: str) -> Resolved:
    found = resolve_path(stack, os.fsencode(path))
    assert found is not None, path
    return found


def rename(stack: Stack, old: str, new: str, flags: int = 0) -> None:
    old_parent, _, old_name = old.rpartition("/")
    new_parent, _, new_name = new.rpartition("/")
    rename_rules.rename(
        stack, res(stack, old_parent), os.fsencode(old_name),
        res(stack, new_parent), os.fsencode(new_name), flags,
    )  # fmt: skip


def upper_dir(layers: LayerFactory, stack: Stack) -> Path:
    found = layers.dirs(stack).upper
    assert found is not None
    return found


def listing(stack: Stack, path: str) -> list[bytes]:
    return sorted(names(stack, res(stack, path)))


def test_rename_in_the_same_dir_records_the_old_name(layers: LayerFactory) -> None:
    stack = featured(layers, {"d/": {"f": "1", "s/": {"g": "2"}}}, upper={})
    rename(stack, "d", "e")
    up = upper_dir(layers, stack)
    assert os.getxattr(up / "e", XATTR) == b"d"
    assert list(os.listdir(up / "e")) == []  # nothing below it was copied
    assert resolve_path(stack, b"d") is None
    assert listing(stack, "e") == [b"f", b"s"]
    assert listing(stack, "e/s") == [b"g"]
    assert res(stack, "e/s/g").path_in(1) == b"d/s/g"


def test_rename_to_another_dir_records_the_absolute_lower_path(layers: LayerFactory) -> None:
    stack = featured(layers, {"a/": {"b/": {"f": ""}}, "x/": {}}, upper={})
    rename(stack, "a/b", "x/c")
    up = upper_dir(layers, stack)
    assert os.getxattr(up / "x" / "c", XATTR) == b"/a/b"
    assert listing(stack, "x/c") == [b"f"]
    assert listing(stack, "a") == []


def test_repeated_renames_keep_the_lower_path(layers: LayerFactory) -> None:
    stack = featured(layers, {"a/": {"b/": {"f": ""}}, "x/": {}}, upper={})
    rename(stack, "a/b", "a/c")  # relative: "b"
    rename(stack, "a/c", "x/c")  # absolute, built from the relative one
    rename(stack, "x/c", "x/d")  # an absolute redirect stays
    rename(stack, "a", "z")  # the parent of the old place moves too
    up = upper_dir(layers, stack)
    assert os.getxattr(up / "x" / "d", XATTR) == b"/a/b"
    assert os.getxattr(up / "z", XATTR) == b"a"
    assert listing(stack, "x/d") == [b"f"]
    rename(stack, "x/d", "z/b")  # back home
    assert listing(stack, "z/b") == [b"f"]
    assert listing(stack, "z") == [b"b"]


def test_nested_rename_inside_a_renamed_dir(layers: LayerFactory) -> None:
    stack = featured(layers, {"a/": {"b/": {"c/": {"f": ""}}}}, upper={})
    rename(stack, "a", "z")
    rename(stack, "z/b/c", "z/c2")
    assert os.getxattr(upper_dir(layers, stack) / "z" / "c2", XATTR) == b"/a/b/c"
    assert listing(stack, "z/c2") == [b"f"]
    assert listing(stack, "z/b") == []


def test_remove_tree_of_a_renamed_dir(layers: LayerFactory) -> None:
    stack = featured(layers, {"d/": {"f": "", "s/": {"g": ""}}}, upper={})
    rename(stack, "d", "e")
    remove.unlink(stack, res(stack, "e/s"), b"g")
    remove.rmdir(stack, res(stack, "e"), b"s")
    remove.unlink(stack, res(stack, "e"), b"f")
    remove.rmdir(stack, res(stack, ""), b"e")
    assert listing(stack, "") == []


def test_without_redirect_dir_a_lower_dir_rename_is_exdev(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"f": ""}}, upper={})
    stack.features = Features("follow")
    with pytest.raises(OSError) as caught:
        rename(stack, "d", "e")
    assert caught.value.errno == errno.EXDEV


def test_invalid_redirects_are_ignored(layers: LayerFactory) -> None:
    stack = featured(layers, {"d/": {"f": ""}}, upper={"e/": {}})
    for bad in (b"../d", b"/d/../d", b"a/b", b""):
        os.setxattr(upper_dir(layers, stack) / "e", XATTR, bad)
        assert listing(stack, "e") == []
    os.setxattr(upper_dir(layers, stack) / "e", XATTR, b"/d")
    assert listing(stack, "e") == [b"f"]


def test_chmod_of_a_lower_file_copies_only_metadata(layers: LayerFactory) -> None:
    stack = featured(layers, {"f": "x" * 100_000}, upper={})
    found = attrs.set_attributes(stack, res(stack, "f"), attrs.Changes(mode=0o600))
    up = upper_dir(layers, stack) / "f"
    assert found.metacopy and found.layers == (0, 1)
    assert os.getxattr(up, META) == b""
    assert up.stat().st_size == 100_000 and up.stat().st_blocks == 0
    assert res(stack, "f").metacopy  # lookup finds the data below
    fd = stack.layers[found.data].open(found.data_path, os.O_RDONLY)
    try:
        assert os.pread(fd, 3, 0) == b"xxx"
    finally:
        os.close(fd)
    full = copyup.copy_up_data(stack, found)
    assert not full.metacopy
    assert up.read_bytes() == b"x" * 100_000
    assert META not in os.listxattr(up)
    assert oct(up.stat().st_mode & 0o777) == "0o600"


def test_truncate_of_a_metacopy_file_copies_its_data(layers: LayerFactory) -> None:
    stack = featured(layers, {"f": "abcdef"}, upper={})
    attrs.set_xattr(stack, res(stack, "f"), b"user.k", b"v")
    found = attrs.set_attributes(stack, res(stack, "f"), attrs.Changes(size=3))
    assert not found.metacopy
    assert (upper_dir(layers, stack) / "f").read_bytes() == b"abc"


def test_a_renamed_metacopy_file_records_where_its_data_is(layers: LayerFactory) -> None:
    stack = featured(layers, {"f": "abc", "d/": {}}, upper={})
    attrs.set_attributes(stack, res(stack, "f"), attrs.Changes(uid=7))
    rename(stack, "f", "g")
    up = upper_dir(layers, stack)
    assert os.getxattr(up / "g", XATTR) == b"f"
    assert res(stack, "g").metacopy and res(stack, "g").data_path == b"f"
    rename(stack, "g", "d/h")
    assert os.getxattr(up / "d" / "h", XATTR) == b"/f"
    assert res(stack, "d/h").data_path == b"f"
    fd = os.open(up / "d" / "h", os.O_RDONLY)
    try:  # no data moved: the file is one hole (its xattrs may take a block on ext4)
        with pytest.raises(OSError) as caught:
            os.lseek(fd, 0, os.SEEK_DATA)
        assert caught.value.errno == errno.ENXIO
    finally:
        os.close(fd)


def test_link_of_a_lower_file_is_metadata_only_with_an_absolute_redirect(
    layers: LayerFactory,
) -> None:
    stack = featured(layers, {"d/": {"f": "abc"}}, upper={})
    link.link(stack, res(stack, "d/f"), res(stack, ""), b"g")
    up = upper_dir(layers, stack)
    assert os.getxattr(up / "d" / "f", XATTR) == b"/d/f"
    assert res(stack, "g").metacopy and res(stack, "g").data_path == b"d/f"


def test_metacopy_without_data_below_is_eio(layers: LayerFactory) -> None:
    stack = featured(layers, {}, upper={"f": ""})
    os.setxattr(upper_dir(layers, stack) / "f", META, b"")
    with pytest.raises(OSError) as caught:
        resolve_path(stack, b"f")
    assert caught.value.errno == errno.EIO


def test_flatten_spells_out_renamed_dirs_and_metacopy_files(layers: LayerFactory) -> None:
    stack = featured(
        layers, {"d/": {"f": "1", "s/": {"g": "2"}}, "m": "data", "keep": ""}, upper={}
    )
    rename(stack, "d", "e")
    attrs.set_attributes(stack, res(stack, "m"), attrs.Changes(mode=0o600))
    attrs.set_attributes(stack, res(stack, "keep"), attrs.Changes(mode=0o600))
    rename(stack, "keep", "e/kept")
    lower = str(layers.dirs(stack).lowers[0])
    upper = str(upper_dir(layers, stack))
    changes = {c.path: c for c in flatten(stack)}
    assert set(changes) == {b"d", b"e", b"e/f", b"e/s", b"e/s/g", b"m", b"keep", b"e/kept"}
    assert changes[b"keep"].kind == "whiteout"
    assert changes[b"e/kept"].meta == (upper, b"e/kept")
    assert changes[b"e/kept"].data == (lower, b"keep")
    assert changes[b"d"].kind == "whiteout"
    assert changes[b"e"].kind == "dir" and changes[b"e"].opaque
    assert changes[b"e"].meta == (upper, b"e")
    assert changes[b"e/s/g"].data == (lower, b"d/s/g")
    assert changes[b"m"].meta == (upper, b"m") and changes[b"m"].data == (lower, b"m")
    assert read_tree(Path(lower))  # the lower layer is untouched by flatten


def test_metacopy_data_is_found_through_a_metacopy_file_in_a_lower_layer(
    layers: LayerFactory,
) -> None:
    """An upper turned lower layer can hold a metacopy file itself (renamed there, so its
    own redirect names the data): the data is the first file below without the mark, found
    along each redirect in turn (unionmount-testsuite hard-link, --ov=2 with metacopy)."""
    stack = featured(layers, {"a/": {"bar": "", "foo": WHITEOUT_CHR}}, {"a/": {"foo": ":xxx:"}},
                     upper={"a/": {"foo": ""}})  # fmt: skip
    middle = layers.dirs(stack).lowers[0]
    os.setxattr(middle / "a" / "bar", META, b"")
    os.setxattr(middle / "a" / "bar", XATTR, b"foo")
    up = upper_dir(layers, stack)
    os.setxattr(up / "a" / "foo", META, b"")
    os.setxattr(up / "a" / "foo", XATTR, b"/a/bar")
    found = res(stack, "a/foo")
    assert found.metacopy and found.data_path == b"a/foo" and found.layers[-1] == 2
