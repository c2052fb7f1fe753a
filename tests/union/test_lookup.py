"""Lookup of one name in a merged directory: the overlay rules, on plain directories."""

from __future__ import annotations

import errno
import os

import pytest
from layers import WHITEOUT_CHR, Device, Dir, Fifo, LayerFactory, Opaque, Symlink

from unionfs.union.lookup import lookup, resolve_path
from unionfs.union.stack import Resolved, Stack


def content(stack: Stack, res: Resolved) -> bytes:
    fd = stack.layers[res.top].open(res.path, os.O_RDONLY)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def find(stack: Stack, path: bytes) -> Resolved | None:
    return resolve_path(stack, path)


# -- top down ------------------------------------------------------------------------------
def test_lookup_finds_file_of_the_only_layer(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "text"})
    res = lookup(stack, stack.root(), b"a")
    assert res is not None
    assert (res.path, res.layers) == (b"a", (0,))
    assert content(stack, res) == b"text"


def test_lookup_of_missing_name_is_none(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "text"}, {"b": "text"})
    assert lookup(stack, stack.root(), b"c") is None


def test_upper_file_hides_lower_file(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "lower"}, upper={"a": "upper"})
    res = find(stack, b"a")
    assert res is not None and res.layers == (0,)
    assert content(stack, res) == b"upper"


def test_leftmost_lower_is_on_top(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "first"}, {"a": "second"}, {"a": "third"})
    res = find(stack, b"a")
    assert res is not None and res.layers == (0,)
    assert content(stack, res) == b"first"


def test_lookup_falls_through_to_the_first_layer_that_has_the_name(
    layers: LayerFactory,
) -> None:
    stack = layers.stack({"x": ""}, {}, {"a": "deep"}, {"a": "deeper"})
    res = find(stack, b"a")
    assert res is not None and res.layers == (2,)
    assert content(stack, res) == b"deep"


def test_resolved_stat_is_the_lstat_of_the_top_entry(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "12345"}, {"a": "1"})
    res = find(stack, b"a")
    assert res is not None
    assert res.st.st_size == 5
    assert res.st.st_ino == os.lstat(layers.dirs(stack).lowers[0] / "a").st_ino


# -- whiteouts -----------------------------------------------------------------------------
def test_whiteout_hides_lower_file(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "lower"}, upper={"a": WHITEOUT_CHR})
    assert find(stack, b"a") is None


def test_whiteout_file_hides_lower_file(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "lower"}, upper={".wh.a": ""})
    assert find(stack, b"a") is None


@pytest.mark.parametrize("whiteout", [{"d": WHITEOUT_CHR}, {".wh.d": ""}])
def test_whiteout_hides_lower_directory_and_everything_in_it(
    layers: LayerFactory, whiteout: dict[str, object]
) -> None:
    stack = layers.stack(whiteout, {"d/": {"x": "", "e/": {"y": ""}}})
    assert find(stack, b"d") is None
    assert find(stack, b"d/x") is None
    assert find(stack, b"d/e/y") is None


@pytest.mark.parametrize("whiteout", [{"a": WHITEOUT_CHR}, {".wh.a": ""}])
def test_whiteout_in_intermediate_layer_hides_only_below(
    layers: LayerFactory, whiteout: dict[str, object]
) -> None:
    stack = layers.stack({}, whiteout, {"a": "bottom"})
    assert find(stack, b"a") is None
    stack = layers.stack({"a": "top"}, whiteout, {"a": "bottom"})
    res = find(stack, b"a")
    assert res is not None and res.layers == (0,)
    assert content(stack, res) == b"top"


def test_whiteout_in_intermediate_layer_stops_a_directory_merge(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"top": ""}}, {"d": WHITEOUT_CHR}, {"d/": {"bottom": ""}})
    res = find(stack, b"d")
    assert res is not None and res.layers == (0,)
    assert find(stack, b"d/top") is not None
    assert find(stack, b"d/bottom") is None


def test_whiteout_in_merged_subdirectory_hides_lower_entry(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"x": WHITEOUT_CHR, ".wh.y": ""}}, {"d/": {"x": "", "y": ""}})
    assert find(stack, b"d") is not None
    assert find(stack, b"d/x") is None
    assert find(stack, b"d/y") is None


def test_real_entry_beats_whiteout_file_of_the_same_layer(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "here", ".wh.a": ""}, {"a": "lower"})
    res = find(stack, b"a")
    assert res is not None and res.layers == (0,)


def test_whiteout_alone_shows_nothing(layers: LayerFactory) -> None:
    stack = layers.stack({"a": WHITEOUT_CHR, ".wh.b": ""})
    assert find(stack, b"a") is None
    assert find(stack, b"b") is None


def test_character_device_other_than_0_0_is_no_whiteout(layers: LayerFactory) -> None:
    stack = layers.stack({"a": Device(1, 3)}, {"a": "lower"})
    res = find(stack, b"a")
    assert res is not None and res.layers == (0,)
    assert os.major(res.st.st_rdev) == 1


@pytest.mark.parametrize("name", [b".wh.a", b".wh..wh..opq", b".wh.", b".wh..wh.aufs"])
def test_marker_names_are_never_found(layers: LayerFactory, name: bytes) -> None:
    stack = layers.stack({os.fsdecode(name): "", "d/": Opaque({}, form="marker")}, {"a": ""})
    assert lookup(stack, stack.root(), name) is None
    assert find(stack, b"d/.wh..wh..opq") is None


# -- types hide each other -----------------------------------------------------------------
def test_file_hides_lower_directory(layers: LayerFactory) -> None:
    stack = layers.stack({"d": "a file"}, {"d/": {"x": ""}})
    res = find(stack, b"d")
    assert res is not None and not res.is_dir and res.layers == (0,)
    assert find(stack, b"d/x") is None


@pytest.mark.parametrize("upper", [Symlink("elsewhere"), Fifo(), Device(1, 3)])
def test_any_non_directory_hides_lower_directory(layers: LayerFactory, upper: object) -> None:
    stack = layers.stack({"d": upper}, {"d/": {"x": ""}})
    res = find(stack, b"d")
    assert res is not None and not res.is_dir and res.layers == (0,)


def test_directory_hides_lower_file(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"x": ""}}, {"d": "a file"})
    res = find(stack, b"d")
    assert res is not None and res.is_dir
    assert res.layers == (0,)


def test_directory_over_lower_file_stops_merge_with_directories_below_it(
    layers: LayerFactory,
) -> None:
    stack = layers.stack({"d/": {"x": ""}}, {"d": "a file"}, {"d/": {"y": ""}})
    res = find(stack, b"d")
    assert res is not None and res.layers == (0,)
    assert find(stack, b"d/y") is None


# -- directories merge, opaque stops -------------------------------------------------------
def test_directories_merge_across_layers(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"a": "1"}}, {"d/": {"b": "2"}}, {"d/": {"c": "3"}})
    res = find(stack, b"d")
    assert res is not None and res.is_dir and res.is_merged
    assert res.layers == (0, 1, 2)
    for name, layer in ((b"a", 0), (b"b", 1), (b"c", 2)):
        child = lookup(stack, res, name)
        assert child is not None and child.layers == (layer,)
        assert child.path == b"d/" + name


def test_merge_skips_layers_without_the_directory(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {}}, {}, {"d/": {"b": ""}})
    res = find(stack, b"d")
    assert res is not None and res.layers == (0, 2)
    assert find(stack, b"d/b") is not None


def test_nested_directories_merge(layers: LayerFactory) -> None:
    stack = layers.stack({"d/e/": {"a": ""}}, {"d/e/": {"b": ""}})
    res = find(stack, b"d/e")
    assert res is not None and res.layers == (0, 1)
    assert find(stack, b"d/e/b") is not None


def test_lookup_searches_only_the_parents_layers(layers: LayerFactory) -> None:
    # d of layer 2 is cut off by the file in layer 1, so d/x of layer 2 is not found.
    stack = layers.stack({"d/": {}}, {"d": ""}, {"d/": {"x": ""}})
    parent = find(stack, b"d")
    assert parent is not None and parent.layers == (0,)
    assert lookup(stack, parent, b"x") is None


@pytest.mark.parametrize("form", ["trusted", "user", "marker"])
def test_opaque_directory_stops_the_merge(layers: LayerFactory, form: str) -> None:
    stack = layers.stack({"d/": Opaque({"a": ""}, form=form)}, {"d/": {"b": ""}})
    res = find(stack, b"d")
    assert res is not None and res.layers == (0,) and not res.is_merged
    assert find(stack, b"d/a") is not None
    assert find(stack, b"d/b") is None


@pytest.mark.parametrize("form", ["trusted", "user", "marker"])
def test_opaque_intermediate_directory_merges_above_but_not_below(
    layers: LayerFactory, form: str
) -> None:
    stack = layers.stack(
        {"d/": {"a": ""}},
        {"d/": Opaque({"b": ""}, form=form)},
        {"d/": {"c": ""}},
    )
    res = find(stack, b"d")
    assert res is not None and res.layers == (0, 1)
    assert find(stack, b"d/a") is not None
    assert find(stack, b"d/b") is not None
    assert find(stack, b"d/c") is None


def test_opaque_xattr_other_than_y_does_not_stop_the_merge(layers: LayerFactory) -> None:
    upper = {"d/": Dir({}, xattrs={"trusted.overlay.opaque": "n"})}
    stack = layers.stack(upper, {"d/": {"b": ""}})
    res = find(stack, b"d")
    assert res is not None and res.layers == (0, 1)


def test_opaque_on_the_root_is_ignored(layers: LayerFactory) -> None:
    top = layers.layer({"a": ""})
    os.setxattr(top, b"trusted.overlay.opaque", b"y")
    stack = layers.stack(top, {"b": ""})
    assert stack.root().layers == (0, 1)
    assert find(stack, b"b") is not None


# -- names ---------------------------------------------------------------------------------
def test_name_longer_than_255_bytes_is_enametoolong(layers: LayerFactory) -> None:
    stack = layers.stack({"a": ""})
    with pytest.raises(OSError) as info:
        lookup(stack, stack.root(), b"x" * 256)
    assert info.value.errno == errno.ENAMETOOLONG


def test_name_of_255_bytes_is_found(layers: LayerFactory) -> None:
    name = "x" * 255
    stack = layers.stack({name: "long"}, {})
    res = lookup(stack, stack.root(), os.fsencode(name))
    assert res is not None and res.layers == (0,)
    assert lookup(stack, stack.root(), b"y" * 255) is None


def test_non_utf8_names_are_found_as_bytes(layers: LayerFactory) -> None:
    stack = layers.stack({b"caf\xe9": "latin-1"})
    assert lookup(stack, stack.root(), b"caf\xe9") is not None


@pytest.mark.parametrize("name", [b".", b""])
def test_dot_and_empty_names_are_no_entry(layers: LayerFactory, name: bytes) -> None:
    stack = layers.stack({"d/": {"a": ""}})
    d = find(stack, b"d")
    assert d is not None
    assert lookup(stack, stack.root(), name) is None
    assert lookup(stack, d, name) is None


def test_dot_dot_is_no_entry_and_never_leaves_the_layer(layers: LayerFactory) -> None:
    # ".." is the FUSE edge's business (it knows the parent inode); as a name in a layer it
    # would be the directory above the layer root.
    stack = layers.stack({"d/": {"a": ""}})
    assert lookup(stack, stack.root(), b"..") is None


def test_dot_dot_is_no_entry_in_a_merged_root(layers: LayerFactory) -> None:
    stack = layers.stack({"a": ""}, {"b": ""})
    assert lookup(stack, stack.root(), b"..") is None


# -- resolve_path --------------------------------------------------------------------------
def test_resolve_path_of_empty_path_is_the_merged_root(layers: LayerFactory) -> None:
    stack = layers.stack({"a": ""}, {"b": ""})
    root = find(stack, b"")
    assert root == stack.root()
    assert root is not None and root.path == b"" and root.layers == (0, 1)


def test_resolve_path_walks_merged_directories(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"e/": {}}}, {"d/e/f/": {"g": "deep"}})
    res = find(stack, b"d/e/f/g")
    assert res is not None and res.path == b"d/e/f/g" and res.layers == (1,)


def test_resolve_path_ignores_empty_components(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"a": ""}})
    assert find(stack, b"/d//a/") == find(stack, b"d/a")
    assert find(stack, b"d/a") is not None


def test_resolve_path_through_a_file_is_none(layers: LayerFactory) -> None:
    stack = layers.stack({"f": "", "d/": {}})
    assert find(stack, b"f/x") is None
    assert find(stack, b"d/missing/x") is None


def test_resolve_path_with_dot_dot_never_leaves_the_stack(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"a": ""}})
    assert find(stack, b"..") is None
    assert find(stack, b"d/../..") is None
