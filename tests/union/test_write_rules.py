"""The pure write rules of ``unionfs.union`` on temporary directories, without FUSE.

Copy-up, create, remove, rename and xattr removal, checked by what they leave in the upper
layer and the work directory. Stacks are built from literal dicts (``tests/layers.py``);
``LayerFactory.stack`` makes them with ``Stack.from_dirs(lowers, upper, work)``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from layers import WHITEOUT_CHR, File, LayerFactory, Opaque, Symlink, read_tree

from unionfs.union import attrs, copybuild, copyup, create, link, remove
from unionfs.union import rename as rename_rules
from unionfs.union.lookup import lookup, resolve_path
from unionfs.union.readdir import names
from unionfs.union.stack import Resolved, Stack

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
ROOT = create.Owner(0, 0)
MTIME_NS = 1_111_111_111_222_333_444


def res(stack: Stack, path: str) -> Resolved:
    found = resolve_path(stack, os.fsencode(path))
    assert found is not None, path
    return found


def upper(layers: LayerFactory, stack: Stack) -> Path:
    found = layers.dirs(stack).upper
    assert found is not None
    return found


def work(layers: LayerFactory, stack: Stack) -> Path:
    found = layers.dirs(stack).work
    assert found is not None
    return found / "work"


def lower_state(layers: LayerFactory, stack: Stack) -> list[tuple[str, int, int, int]]:
    """Path, size, mtime and ctime of everything in the lower layers."""
    out = []
    for root in layers.dirs(stack).lowers:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in ["", *dirnames, *filenames]:
                st = os.lstat(os.path.join(dirpath, name))
                out.append((os.path.join(dirpath, name), st.st_size, st.st_mtime_ns,
                            st.st_ctime_ns))  # fmt: skip
    return out


# -- copy-up ------------------------------------------------------------------------------


def test_copy_up_copies_data_mode_owner_times_and_xattrs(layers: LayerFactory) -> None:
    stack = layers.stack(
        {"d/f": File("data" * 1000, mode=0o4751, xattrs={"user.k": "v", "trusted.t": "t"})},
        upper={},
    )
    lower = layers.dirs(stack).lowers[0]
    os.chown(lower / "d" / "f", 1000, 65534)
    os.chmod(lower / "d" / "f", 0o4751)  # chown cleared the set-uid bit
    os.utime(lower / "d" / "f", ns=(MTIME_NS, MTIME_NS))
    copied = copyup.copy_up(stack, res(stack, "d/f"))
    assert copied.top == 0
    st = os.lstat(upper(layers, stack) / "d" / "f")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4751, 1000, 65534)
    assert st.st_mtime_ns == MTIME_NS
    assert (upper(layers, stack) / "d" / "f").read_bytes() == b"data" * 1000
    path = upper(layers, stack) / "d" / "f"
    assert os.getxattr(path, "user.k") == b"v"
    assert os.getxattr(path, "trusted.t") == b"t"


def test_copy_up_copies_parents_first_with_their_attributes(layers: LayerFactory) -> None:
    stack = layers.stack({"a/b/c": "deep"}, upper={})
    lower = layers.dirs(stack).lowers[0]
    os.chmod(lower / "a" / "b", 0o710)
    os.chown(lower / "a", 1000, 1000)
    copyup.copy_up(stack, res(stack, "a/b/c"))
    top = upper(layers, stack)
    assert read_tree(top) == {"a/": {"b/": {"c": "deep"}}}
    assert stat.S_IMODE(os.lstat(top / "a" / "b").st_mode) == 0o710
    assert os.lstat(top / "a").st_uid == 1000


def test_copy_up_keeps_the_upper_parents_times_even_at_the_root(layers: LayerFactory) -> None:
    """As the kernel's copy-up: a copy-up is no change of its parent directory, so the
    parent's mtime and atime are put back (``tar`` would otherwise see ``.`` change)."""
    stack = layers.stack({"a/b": "x", "c": "y"}, upper={"a/": {}})
    top = upper(layers, stack)
    for d in (top, top / "a"):
        os.utime(d, ns=(MTIME_NS, MTIME_NS))
    copyup.copy_up(stack, res(stack, "a/b"))
    copyup.copy_up(stack, res(stack, "c"))
    for d in (top, top / "a"):
        assert (os.lstat(d).st_atime_ns, os.lstat(d).st_mtime_ns) == (MTIME_NS, MTIME_NS)


def test_copy_up_is_idempotent(layers: LayerFactory) -> None:
    stack = layers.stack({"f": "one"}, upper={})
    first = copyup.copy_up(stack, res(stack, "f"))
    again = copyup.copy_up(stack, res(stack, "f"))
    assert (first.st.st_ino, first.st.st_dev) == (again.st.st_ino, again.st.st_dev)
    # a second request that resolved before the first copy-up finds the work done
    stale = Resolved(b"f", (1,), os.lstat(layers.dirs(stack).lowers[0] / "f"))
    third = copyup.copy_up(stack, stale)
    assert third.st.st_ino == first.st.st_ino
    assert read_tree(upper(layers, stack)) == {"f": "one"}
    assert os.listdir(work(layers, stack)) == []


def test_copy_up_builds_in_the_work_directory(
    layers: LayerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = layers.stack({"d/f": "payload"}, upper={})
    seen: list[tuple[list[str], bool]] = []
    original = copyup.copy_metadata

    def spy(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)  # type: ignore[arg-type]
        in_upper = os.path.lexists(upper(layers, stack) / "d" / "f")
        seen.append((os.listdir(work(layers, stack)), in_upper))

    monkeypatch.setattr(copyup, "copy_metadata", spy)
    copyup.copy_up(stack, res(stack, "d/f"))
    # d is built first, then f: each in work/ under a temporary name, not yet in the upper
    assert len(seen) == 2
    for in_work, in_upper in seen:
        assert len(in_work) == 1 and not in_upper
    assert os.listdir(work(layers, stack)) == []
    assert read_tree(upper(layers, stack)) == {"d/": {"f": "payload"}}


def test_failed_copy_up_leaves_nothing_behind(
    layers: LayerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = layers.stack({"d/f": "x" * 100_000}, upper={})

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(copybuild, "copy_data", full)
    with pytest.raises(OSError) as caught:
        copyup.copy_up(stack, res(stack, "d/f"))
    assert caught.value.errno == errno.ENOSPC
    assert read_tree(upper(layers, stack)) in ({}, {"d/": {}})
    assert os.listdir(work(layers, stack)) == []


def test_copy_up_of_a_symlink_copies_the_link_not_its_target(layers: LayerFactory) -> None:
    stack = layers.stack({"s": Symlink("/etc/passwd")}, upper={})
    copyup.copy_up(stack, res(stack, "s"))
    assert read_tree(upper(layers, stack)) == {"s": Symlink("/etc/passwd")}


def test_copy_up_never_changes_the_lower_layer(layers: LayerFactory) -> None:
    stack = layers.stack({"d/f": File("x", xattrs={"user.a": "1"}), "e/": {}}, upper={})
    before = lower_state(layers, stack)
    copyup.copy_up(stack, res(stack, "d/f"))
    copyup.copy_up(stack, res(stack, "e"))
    attrs.set_attributes(stack, res(stack, "d/f"), attrs.Changes(mode=0o600, size=0))
    assert lower_state(layers, stack) == before


# -- remove -------------------------------------------------------------------------------


def test_unlink_of_an_upper_only_file_leaves_nothing(layers: LayerFactory) -> None:
    stack = layers.stack({"other": ""}, upper={"f": "up"})
    assert not remove.lower_positive(stack, stack.root(), b"f")
    remove.unlink(stack, stack.root(), b"f")
    assert read_tree(upper(layers, stack)) == {}


def test_unlink_of_a_lower_file_leaves_a_whiteout(layers: LayerFactory) -> None:
    stack = layers.stack({"f": "low"}, upper={})
    assert remove.lower_positive(stack, stack.root(), b"f")
    remove.unlink(stack, stack.root(), b"f")
    assert read_tree(upper(layers, stack)) == {"f": WHITEOUT_CHR}
    assert lookup(stack, stack.root(), b"f") is None


def test_unlink_of_a_copied_up_file_replaces_it_by_a_whiteout(layers: LayerFactory) -> None:
    stack = layers.stack({"d/f": "low"}, upper={"d/": {"f": "up"}})
    remove.unlink(stack, res(stack, "d"), b"f")
    assert read_tree(upper(layers, stack)) == {"d/": {"f": WHITEOUT_CHR}}


def test_no_whiteout_inside_an_opaque_directory(layers: LayerFactory) -> None:
    stack = layers.stack({"d/f": "low"}, upper={"d/": Opaque({"f": "up"})})
    assert not remove.lower_positive(stack, res(stack, "d"), b"f")
    remove.unlink(stack, res(stack, "d"), b"f")
    assert read_tree(upper(layers, stack)) == {"d/": Opaque({})}


def test_unlink_of_a_directory_is_eisdir_and_rmdir_of_a_file_enotdir(
    layers: LayerFactory,
) -> None:
    stack = layers.stack({"d/": {}, "f": ""}, upper={})
    with pytest.raises(IsADirectoryError):
        remove.unlink(stack, stack.root(), b"d")
    with pytest.raises(NotADirectoryError):
        remove.rmdir(stack, stack.root(), b"f")
    with pytest.raises(FileNotFoundError):
        remove.unlink(stack, stack.root(), b"missing")
    assert read_tree(upper(layers, stack)) == {}


def test_rmdir_of_a_merged_dir_holding_only_whiteouts(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"a": "", "b": ""}}, upper={"d/": {"a": WHITEOUT_CHR}})
    with pytest.raises(OSError) as caught:
        remove.rmdir(stack, stack.root(), b"d")
    assert caught.value.errno == errno.ENOTEMPTY
    remove.unlink(stack, res(stack, "d"), b"b")
    remove.rmdir(stack, stack.root(), b"d")
    assert read_tree(upper(layers, stack)) == {"d": WHITEOUT_CHR}
    assert os.listdir(work(layers, stack)) == []


def test_rmdir_of_an_upper_only_dir_leaves_nothing(layers: LayerFactory) -> None:
    stack = layers.stack({"x": ""}, upper={"d/": {}})
    remove.rmdir(stack, stack.root(), b"d")
    assert read_tree(upper(layers, stack)) == {}


# -- create -------------------------------------------------------------------------------


def test_mkdir_over_a_whiteout_makes_an_opaque_dir(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"hidden": ""}}, upper={"d": WHITEOUT_CHR})
    made = create.mkdir(stack, stack.root(), b"d", 0o750, ROOT)
    assert made.layers == (0,)
    assert read_tree(upper(layers, stack)) == {"d/": Opaque({})}
    assert names(stack, res(stack, "d")) == []
    assert lookup(stack, res(stack, "d"), b"hidden") is None
    assert stat.S_IMODE(os.lstat(upper(layers, stack) / "d").st_mode) == 0o750
    assert os.listdir(work(layers, stack)) == []


def test_mkdir_after_rmdir_of_a_lower_dir_hides_its_contents(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {}, "e/": {"x": ""}}, upper={})
    remove.rmdir(stack, stack.root(), b"d")
    create.mkdir(stack, stack.root(), b"d", 0o755, ROOT)
    assert read_tree(upper(layers, stack)) == {"d/": Opaque({})}


def test_mkdir_where_nothing_is_below_is_not_opaque(layers: LayerFactory) -> None:
    stack = layers.stack({"x": ""}, upper={})
    create.mkdir(stack, stack.root(), b"new", 0o755, ROOT)
    assert read_tree(upper(layers, stack)) == {"new/": {}}


def test_file_created_over_a_whiteout_replaces_it(layers: LayerFactory) -> None:
    stack = layers.stack({"f": "old"}, upper={"f": WHITEOUT_CHR})
    create.create_file(stack, stack.root(), b"f", 0o640, create.Owner(1000, 1000))
    assert read_tree(upper(layers, stack)) == {"f": ""}
    st = os.lstat(upper(layers, stack) / "f")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 1000, 1000)


@pytest.mark.parametrize("over", [False, True], ids=["new name", "over a whiteout"])
def test_create_open_hands_back_the_descriptor_it_made_the_file_with(
    layers: LayerFactory, over: bool
) -> None:
    stack = layers.stack({"f" if over else "g": "old"}, upper={"f": WHITEOUT_CHR} if over else {})
    made, fd = create.create_open(stack, stack.root(), b"f", 0o444, ROOT, None, os.O_RDWR)
    try:
        os.write(fd, b"new")  # as open(2) with O_CREAT: writable, whatever the mode says
        assert os.fstat(fd).st_ino == made.st.st_ino
    finally:
        os.close(fd)
    assert read_tree(upper(layers, stack)) == {"f": "new"}
    assert stat.S_IMODE(os.lstat(upper(layers, stack) / "f").st_mode) == 0o444


def test_create_of_an_existing_name_is_eexist_and_copies_nothing(layers: LayerFactory) -> None:
    stack = layers.stack({"d/f": ""}, upper={})
    with pytest.raises(FileExistsError):
        create.create_file(stack, res(stack, "d"), b"f", 0o644, ROOT)
    assert read_tree(upper(layers, stack)) == {}


def test_create_of_a_name_over_255_bytes_is_enametoolong(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {}}, upper={})
    with pytest.raises(OSError) as caught:
        create.create_file(stack, res(stack, "d"), b"n" * 256, 0o644, ROOT)
    assert caught.value.errno == errno.ENAMETOOLONG
    create.create_file(stack, res(stack, "d"), b"n" * 255, 0o644, ROOT)


def test_link_copies_the_source_up_and_links_it(layers: LayerFactory) -> None:
    stack = layers.stack({"f": "data"}, upper={})
    source, entry = link.link(stack, res(stack, "f"), stack.root(), b"g")
    assert source.top == 0 and entry.top == 0
    top = upper(layers, stack)
    assert os.lstat(top / "f").st_ino == os.lstat(top / "g").st_ino
    assert os.lstat(top / "f").st_nlink == 2


# -- rename -------------------------------------------------------------------------------


def rename(stack: Stack, old: str, new: str, flags: int = 0) -> None:
    old_parent, _, old_name = old.rpartition("/")
    new_parent, _, new_name = new.rpartition("/")
    rename_rules.rename(
        stack, res(stack, old_parent), os.fsencode(old_name),
        res(stack, new_parent), os.fsencode(new_name), flags,
    )  # fmt: skip


def test_rename_of_a_lower_dir_is_exdev(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"f": ""}}, upper={})
    with pytest.raises(OSError) as caught:
        rename(stack, "d", "e")
    assert caught.value.errno == errno.EXDEV
    assert read_tree(upper(layers, stack)) == {}


def test_a_refused_rename_copies_no_parent_up(layers: LayerFactory) -> None:
    """ovl_rename's EXDEV, and the VFS's EISDIR, come before any copy-up."""
    stack = layers.stack({"p/": {"d/": {"f": ""}, "q/": {}, "g": ""}}, upper={})
    for old, new, code in (("p/d", "p/new", errno.EXDEV), ("p/g", "p/q", errno.EISDIR)):
        with pytest.raises(OSError) as caught:
            rename(stack, old, new)
        assert caught.value.errno == code
    assert read_tree(upper(layers, stack)) == {}


def test_rename_of_a_merged_dir_is_exdev(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"f": ""}}, upper={"d/": {"g": ""}})
    with pytest.raises(OSError) as caught:
        rename(stack, "d", "e")
    assert caught.value.errno == errno.EXDEV


def test_rename_of_a_lower_dir_onto_a_nonempty_dir_is_exdev_first(layers: LayerFactory) -> None:
    """Kernel ovl_rename refuses to move a lower dir (EXDEV) before it looks at the target."""
    stack = layers.stack({"d/": {"f": ""}, "e/": {"g": ""}}, upper={})
    with pytest.raises(OSError) as caught:
        rename(stack, "d", "e")
    assert caught.value.errno == errno.EXDEV


def test_rename_of_an_upper_only_dir_works(layers: LayerFactory) -> None:
    stack = layers.stack({"x": ""}, upper={"d/": {"f": "1"}})
    rename(stack, "d", "e")
    # Moved within a merged parent (the root has a lower part): opaque, as ovl_rename does.
    assert read_tree(upper(layers, stack)) == {"e/": Opaque({"f": "1"}, form="trusted")}


def test_rename_of_an_upper_dir_over_a_lower_name_makes_it_opaque(layers: LayerFactory) -> None:
    stack = layers.stack({"e": WHITEOUT_CHR}, {"e/": {"below": ""}}, upper={"d/": {"f": "1"}})
    rename(stack, "d", "e")
    assert lookup(stack, res(stack, "e"), b"below") is None
    assert names(stack, res(stack, "e")) == [b"f"]


def test_rename_of_a_lower_file_leaves_a_whiteout(layers: LayerFactory) -> None:
    stack = layers.stack({"f": "data"}, upper={})
    rename(stack, "f", "g")
    assert read_tree(upper(layers, stack)) == {"f": WHITEOUT_CHR, "g": "data"}


def test_rename_noreplace_refuses_an_existing_target(layers: LayerFactory) -> None:
    stack = layers.stack({"f": "1", "g": "2"}, upper={})
    with pytest.raises(FileExistsError):
        rename(stack, "f", "g", RENAME_NOREPLACE)
    rename(stack, "f", "h", RENAME_NOREPLACE)
    assert read_tree(upper(layers, stack)) == {"f": WHITEOUT_CHR, "h": "1"}


def test_rename_exchange_swaps_two_entries(layers: LayerFactory) -> None:
    stack = layers.stack({"f": "lower f"}, upper={"d/": {"g": "upper g"}})
    rename(stack, "f", "d/g", RENAME_EXCHANGE)
    assert read_tree(upper(layers, stack)) == {"f": "upper g", "d/": {"g": "lower f"}}


def test_rename_exchange_needs_both_names(layers: LayerFactory) -> None:
    stack = layers.stack({"f": ""}, upper={})
    with pytest.raises(FileNotFoundError):
        rename(stack, "f", "missing", RENAME_EXCHANGE)
    with pytest.raises(OSError) as caught:
        rename(stack, "f", "g", RENAME_EXCHANGE | RENAME_NOREPLACE)
    assert caught.value.errno == errno.EINVAL
    assert read_tree(upper(layers, stack)) == {}


def test_rename_exchange_with_a_lower_dir_is_exdev(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {}}, upper={"f": ""})
    with pytest.raises(OSError) as caught:
        rename(stack, "f", "d", RENAME_EXCHANGE)
    assert caught.value.errno == errno.EXDEV


def test_rename_file_over_dir_and_dir_over_file(layers: LayerFactory) -> None:
    stack = layers.stack({"x": ""}, upper={"f": "", "d/": {}, "full/": {"a": ""}, "e/": {}})
    with pytest.raises(IsADirectoryError):
        rename(stack, "f", "d")
    with pytest.raises(NotADirectoryError):
        rename(stack, "d", "f")
    with pytest.raises(OSError) as caught:
        rename(stack, "d", "full")
    assert caught.value.errno == errno.ENOTEMPTY
    rename(stack, "d", "e")
    assert sorted(read_tree(upper(layers, stack))) == ["e/", "f", "full/"]


def test_rename_between_two_names_of_a_lower_hard_link(layers: LayerFactory) -> None:
    """Without index=on the kernel gives each name of a lower hard link its own inode, so
    rename(h1, h2) is a real rename: h1 goes away."""
    stack = layers.stack({"h1": "linked", "h2": File("")}, upper={})
    lower = layers.dirs(stack).lowers[0]
    os.unlink(lower / "h2")
    os.link(lower / "h1", lower / "h2")
    rename(stack, "h1", "h2")
    assert lookup(stack, stack.root(), b"h1") is None
    assert read_tree(upper(layers, stack))["h2"] == "linked"


# -- attributes and xattrs ---------------------------------------------------------------


def test_remove_of_a_missing_xattr_is_enodata_without_copy_up(layers: LayerFactory) -> None:
    stack = layers.stack({"d/f": File("", xattrs={"user.there": "1"})}, upper={})
    with pytest.raises(OSError) as caught:
        attrs.remove_xattr(stack, res(stack, "d/f"), b"user.missing")
    assert caught.value.errno == errno.ENODATA
    assert read_tree(upper(layers, stack)) == {}
    attrs.remove_xattr(stack, res(stack, "d/f"), b"user.there")
    assert os.listxattr(upper(layers, stack) / "d" / "f") == ["trusted.overlay.unionfs.ino"]
    assert os.getxattr(layers.dirs(stack).lowers[0] / "d" / "f", "user.there") == b"1"


def test_set_xattr_copies_up_and_keeps_the_other_xattrs(layers: LayerFactory) -> None:
    stack = layers.stack({"f": File("x", xattrs={"user.a": "1"})}, upper={})
    attrs.set_xattr(stack, res(stack, "f"), b"user.b", b"2")
    path = upper(layers, stack) / "f"
    assert sorted(os.listxattr(path)) == ["trusted.overlay.unionfs.ino", "user.a", "user.b"]


def test_truncate_to_zero_copies_no_data(layers: LayerFactory) -> None:
    stack = layers.stack({"f": File("x" * 10000, mode=0o600)}, upper={})
    changed = attrs.set_attributes(stack, res(stack, "f"), attrs.Changes(size=0))
    assert changed.st.st_size == 0
    assert stat.S_IMODE(os.lstat(upper(layers, stack) / "f").st_mode) == 0o600
    assert read_tree(upper(layers, stack)) == {"f": ""}


def test_chmod_and_utime_copy_up_and_change_only_the_upper(layers: LayerFactory) -> None:
    stack = layers.stack({"d/f": "x"}, upper={})
    changes = attrs.Changes(mode=0o700, atime_ns=5, mtime_ns=MTIME_NS)
    changed = attrs.set_attributes(stack, res(stack, "d/f"), changes)
    assert stat.S_IMODE(changed.st.st_mode) == 0o700
    assert changed.st.st_mtime_ns == MTIME_NS
    low = os.lstat(layers.dirs(stack).lowers[0] / "d" / "f")
    assert stat.S_IMODE(low.st_mode) == 0o644 and low.st_mtime_ns != MTIME_NS


def test_utime_of_the_root_works(layers: LayerFactory) -> None:
    stack = layers.stack({"x": ""}, upper={})
    changed = attrs.set_attributes(stack, stack.root(), attrs.Changes(atime_ns=1, mtime_ns=2))
    assert changed.st.st_mtime_ns == 2
