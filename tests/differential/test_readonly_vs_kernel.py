"""A read-only unionfs mount shows exactly what kernel overlayfs shows for the same stack.

Each example is a random stack of 1-4 lower layers, written twice: with the kernel's
markers for ``mount -t overlay`` and with randomly chosen marker forms for unionfs. Both are
mounted without an upper layer, then every visible entry and a set of probe paths are
compared. The one deliberate difference: kernel readdir lists the whiteouts of a directory
it does not merge, unionfs never lists a marker (see ``treecmp.drop_unstatable``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from layer_strategies import hiding_stacks, layer_paths, probe_paths, stacks
from mountutil import (
    Device,
    Dir,
    Fifo,
    File,
    Symlink,
    Whiteout,
    build_stack,
    fresh_dir,
    kernel_overlay,
    remove_tree,
    unionfs_mount,
)
from treecmp import Snapshot, diff_trees, drop_unstatable, marker_leaks, probe, show_path, snapshot

COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def compare_with_kernel(tmp_path: Path, layers: list[Dir], indexed: bool = True) -> None:
    """Mount *layers* (top first) both ways and assert that the views agree.

    *indexed*: unionfs serves the lowers from its LMDB index (the default) or directly.
    """
    base = fresh_dir(tmp_path, "ex")  # fresh for every example, not only every test
    try:
        kdir, udir = base / "k", base / "u"
        kdir.mkdir()
        udir.mkdir()
        k_lowers = build_stack(kdir, layers, kernel=True)
        u_lowers = build_stack(udir, layers, kernel=False)
        if len(k_lowers) < 2:  # the kernel wants two lowers without an upper
            (kdir / "empty").mkdir()
            k_lowers.append(kdir / "empty")
        # both mount points at the same depth, so relative symlinks resolve alike
        kmnt, umnt = kdir / "mnt", udir / "mnt"
        kmnt.mkdir()
        umnt.mkdir()
        paths = probe_paths(layers)
        extra = () if indexed else ("indexdir=off",)
        with kernel_overlay(k_lowers, kmnt), unionfs_mount(u_lowers, umnt, extra_opts=extra):
            kernel_view = drop_unstatable(snapshot(kmnt))
            union_view = snapshot(umnt)
            kernel_probes = {p: probe(kmnt, p) for p in paths}
            union_probes = {p: probe(umnt, p) for p in paths}
        _record_coverage(layers, kernel_view, kernel_probes)
        problems = diff_trees(kernel_view, union_view)
        problems += [f"marker shown: {leak}" for leak in marker_leaks(union_view)]
        for path in paths:
            if kernel_probes[path] != union_probes[path]:
                problems.append(
                    f"probe {show_path(path)}: kernel={kernel_probes[path]} "
                    f"unionfs={union_probes[path]}"
                )
        assert not problems, "unionfs differs from kernel overlayfs:\n" + "\n".join(problems)
    finally:
        remove_tree(base)


def _record_coverage(
    layers: list[Dir], view: Snapshot, probes: dict[bytes, dict[str, object]]
) -> None:
    """Hypothesis events (--hypothesis-show-statistics): is the overlay logic exercised?"""
    event(f"layers: {len(layers)}")
    shown = len(view) - 1
    event(f"visible entries: {'0' if not shown else '1-9' if shown < 10 else '10+'}")
    per_layer = [set(layer_paths(layer, whiteouts=False)) for layer in layers]
    in_layers = set().union(*per_layer)
    hidden = [p for p in in_layers if probes[p]["lstat"] == "ENOENT"]
    event(f"layer paths hidden by the overlay: {'some' if hidden else 'none'}")
    shadowed = any(a & b for i, a in enumerate(per_layer) for b in per_layer[i + 1 :])
    event(f"a path in several layers: {'yes' if shadowed else 'no'}")


# Hand-picked stacks that every run checks first.
NONDIR_HIDES_DIR = [
    Dir({b"d": Dir({b"x": File(b"top")})}),
    Dir({b"d": File(b"middle file")}),
    Dir({b"d": Dir({b"below": File(b"hidden by the file")})}),
]
EVERY_MARKER_FORM = [
    Dir(
        {
            b"chr": Whiteout("chr"),
            b"wh": Whiteout("wh"),
            b"ot": Dir({b"t": File(b"1")}, opaque="trusted"),
            b"ou": Dir({b"u": File(b"2")}, opaque="user"),
            b"ow": Dir({b"w": File(b"3")}, opaque="wh"),
        }
    ),
    Dir(
        {
            name: Dir({b"low": File(b"hidden"), b"keep?": Symlink(b"/etc")})
            for name in (b"chr", b"wh", b"ot", b"ou", b"ow")
        }
    ),
]
ODD_ENTRIES = [
    Dir(
        {
            b"-rf": File(b"dash", mode=0o4755, uid=1000, gid=65534, xattrs={"user.a": b""}),
            b"line\nbreak": Fifo(0o600),
            b"\xff\xfe": Device(char=False, major=8, minor=1),
            b"esc": Symlink(b"../../etc/passwd"),
            b"L" * 255: Dir({b"h1": File(b"linked", link=1), b"h2": File(b"", link=1)}),
        },
        mode=0o700,
        xattrs={"user.root": b"top root"},
    ),
]


@settings(max_examples=60, **COMMON)  # the slow tier draws 2000 new ones every run
@given(layers=stacks(), indexed=st.booleans())
@example(layers=NONDIR_HIDES_DIR, indexed=True)
@example(layers=EVERY_MARKER_FORM, indexed=True)
@example(layers=EVERY_MARKER_FORM, indexed=False)
@example(layers=ODD_ENTRIES, indexed=True)
def test_readonly_view_matches_kernel(tmp_path: Path, layers: list[Dir], indexed: bool) -> None:
    compare_with_kernel(tmp_path, layers, indexed)


@settings(max_examples=30, **COMMON)
@given(layers=hiding_stacks(max_layers=4, max_depth=4), indexed=st.booleans())
def test_layers_that_hide_lower_layers_match_kernel(
    tmp_path: Path, layers: list[Dir], indexed: bool
) -> None:
    compare_with_kernel(tmp_path, layers, indexed)


@pytest.mark.slow
@settings(max_examples=2000, **COMMON)
@given(layers=st.one_of(stacks(max_depth=4), hiding_stacks(max_depth=4)), indexed=st.booleans())
def test_many_stacks_match_kernel(tmp_path: Path, layers: list[Dir], indexed: bool) -> None:
    compare_with_kernel(tmp_path, layers, indexed)
