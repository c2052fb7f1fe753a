"""Merged listings: what readdir shows, and that it agrees with lookup for every name."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from layers import WHITEOUT_CHR, Device, Fifo, LayerFactory, Opaque, Symlink

from unionfs import layerfmt
from unionfs.union.lookup import lookup, resolve_path
from unionfs.union.readdir import is_empty, list_dir, names
from unionfs.union.stack import Resolved, Stack


def listing(stack: Stack, path: bytes = b"") -> dict[bytes, Resolved]:
    directory = resolve_path(stack, path)
    assert directory is not None
    return dict(list_dir(stack, directory))


def test_listing_of_one_layer_shows_every_entry(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "", "d/": {}, "s": Symlink("a"), "f": Fifo()})
    assert sorted(listing(stack)) == [b"a", b"d", b"f", b"s"]


def test_listing_never_shows_dot_or_dot_dot(layers: LayerFactory) -> None:
    stack = layers.stack({"a": ""}, {"b": ""})
    shown = listing(stack)
    assert b"." not in shown and b".." not in shown


def test_directories_merge_in_listing(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"a": "", "both": "up"}}, {"d/": {"b": "", "both": "down"}})
    shown = listing(stack, b"d")
    assert sorted(shown) == [b"a", b"b", b"both"]
    assert shown[b"a"].layers == (0,)
    assert shown[b"b"].layers == (1,)
    assert shown[b"both"].layers == (0,)


def test_listing_shows_each_name_once(layers: LayerFactory) -> None:
    stack = layers.stack({"a": "", "d/": {}}, {"a": "", "d/": {}}, {"a": "", "d/": {}})
    assert sorted(names(stack, stack.root())) == [b"a", b"d"]


def test_listing_puts_upper_names_first(layers: LayerFactory) -> None:
    stack = layers.stack({"top": ""}, {"bottom": ""})
    assert names(stack, stack.root()) == [b"top", b"bottom"]


def test_listing_never_shows_markers(layers: LayerFactory) -> None:
    stack = layers.stack(
        {
            "a": WHITEOUT_CHR,
            ".wh.b": "",
            "o/": Opaque({"x": ""}, form="marker"),
            ".wh..wh.aufs": "",
            ".wh.": "",
        },
        {"a": "", "b": "", "c": ""},
    )
    assert sorted(listing(stack)) == [b"c", b"o"]
    assert list(listing(stack, b"o")) == [b"x"]
    assert not any(layerfmt.is_marker_name(n) for n in listing(stack))


def test_whiteout_in_intermediate_layer_hides_only_below_in_listing(
    layers: LayerFactory,
) -> None:
    stack = layers.stack({"a": "top"}, {"a": WHITEOUT_CHR, ".wh.b": ""}, {"a": "", "b": ""})
    shown = listing(stack)
    assert list(shown) == [b"a"]
    assert shown[b"a"].layers == (0,)


def test_file_hides_lower_directory_in_listing(layers: LayerFactory) -> None:
    stack = layers.stack({"d": "file"}, {"d/": {"x": ""}})
    shown = listing(stack)
    assert not shown[b"d"].is_dir


def test_directory_over_lower_file_lists_only_its_own_entries(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"x": ""}}, {"d": "file"}, {"d/": {"y": ""}})
    assert list(listing(stack, b"d")) == [b"x"]


def test_opaque_directory_lists_only_its_own_entries(layers: LayerFactory) -> None:
    for form in ("trusted", "user", "marker"):
        stack = layers.stack({"d/": Opaque({"a": ""}, form=form)}, {"d/": {"b": ""}})
        assert list(listing(stack, b"d")) == [b"a"], form


def test_listing_of_directory_whose_lower_part_is_whited_out(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"x": WHITEOUT_CHR, "y": ""}}, {"d/": {"x": "", "z": ""}})
    assert sorted(listing(stack, b"d")) == [b"y", b"z"]


def test_is_empty_ignores_whiteouts(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {"a": WHITEOUT_CHR, ".wh.b": ""}}, {"d/": {"a": "", "b": ""}})
    d = resolve_path(stack, b"d")
    assert d is not None
    assert is_empty(stack, d)


def test_is_empty_ignores_opaque_marker(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": Opaque({}, form="marker")}, {"d/": {"a": ""}})
    d = resolve_path(stack, b"d")
    assert d is not None and is_empty(stack, d)


def test_is_empty_is_false_when_a_lower_layer_has_an_entry(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {}}, {"d/": {"a": ""}})
    d = resolve_path(stack, b"d")
    assert d is not None and not is_empty(stack, d)


def test_is_empty_of_an_empty_directory(layers: LayerFactory) -> None:
    stack = layers.stack({"d/": {}})
    d = resolve_path(stack, b"d")
    assert d is not None and is_empty(stack, d)


# -- list_dir agrees with lookup, on random stacks -----------------------------------------
NAMES = ["a", "b", "c"]
PROBES = [n.encode() for n in NAMES] + [b".wh.a", b".wh..wh..opq", b".", b"x"]

leaves = st.sampled_from(["text", WHITEOUT_CHR, Symlink("a"), Fifo(), Device(1, 3)])


def _dir_spec(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    entries = st.dictionaries(st.sampled_from(NAMES), children, max_size=3)
    whiteout_files = st.lists(st.sampled_from(NAMES), max_size=2, unique=True)

    def assemble(args: tuple[dict[str, object], list[str], str | None]) -> object:
        own, whiteouts, opaque = args
        spec: dict[str, object] = dict(own)
        spec.update({".wh." + n: "" for n in whiteouts})
        return spec if opaque is None else Opaque(spec, form=opaque)

    forms = st.sampled_from([None, None, "trusted", "user", "marker"])
    return st.tuples(entries, whiteout_files, forms).map(assemble)


tree = st.recursive(leaves, _dir_spec, max_leaves=8)
layer_spec = st.dictionaries(st.sampled_from(NAMES), tree, max_size=3)


def check_agreement(stack: Stack, directory: Resolved) -> int:
    """Compare list_dir of *directory* with lookup of every probe name; return dirs seen."""
    shown = dict(list_dir(stack, directory))
    assert len(shown) == len(list_dir(stack, directory))
    assert not any(layerfmt.is_marker_name(n) for n in shown)
    for name in set(PROBES) | set(shown):
        assert lookup(stack, directory, name) == shown.get(name), name
    seen = 1
    for res in shown.values():
        if res.is_dir:
            seen += check_agreement(stack, res)
    return seen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(layer_spec, min_size=1, max_size=3), layer_spec | st.none())
def test_list_dir_agrees_with_lookup_for_every_name(
    specs: list[dict[str, object]], upper: dict[str, object] | None
) -> None:
    with LayerFactory.temporary() as factory:
        stack = factory.stack(*specs, upper=upper)
        check_agreement(stack, stack.root())


def test_list_dir_agrees_with_lookup_on_a_hand_made_stack(layers: LayerFactory) -> None:
    stack = layers.stack(
        {"a": WHITEOUT_CHR, "d/": Opaque({"x": ""}, form="user"), "e/": {".wh.y": ""}},
        {"a/": {"z": ""}, "d/": {"w": ""}, "e/": {"y": "", "v": ""}, "f": ""},
        {"e": "file", "f/": {}},
    )
    assert check_agreement(stack, stack.root()) == 3
