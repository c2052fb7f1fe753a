"""changes(): what ``docker diff``/``podman diff`` print for an upper over its lowers
(``store.upperdiff``, through the ``union`` rules)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from layers import WHITEOUT_CHR, File, Opaque, Symlink, build

from unionfs.store.layertar import changes

T = 1_600_000_000


def same_times(*roots: Path) -> None:
    """Give every entry one mtime, as a copy-up keeps the lower's."""
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames]:
                os.utime(os.path.join(dirpath, name), (T, T), follow_symlinks=False)
        os.utime(root, (T, T))


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return build(tmp_path / "lower", {
        "etc/": {"passwd": "root", "old": "old", "sub/": {"deep": "d"}},
        "usr/": {"bin/": {"sh": "sh"}, "lib/": {"a": "a", "b": "b"}},
        "var/": {},
    })  # fmt: skip


def diff(tmp_path: Path, upper_spec: dict[str, object], *lowers: Path) -> list[tuple[str, str]]:
    upper = build(tmp_path / "upper", upper_spec)
    same_times(upper, *lowers)
    return changes(str(upper), [str(lower) for lower in lowers])


def test_new_file_in_existing_dir_is_a_and_its_parent_c(tmp_path: Path, base: Path) -> None:
    assert diff(tmp_path, {"etc/": {"new": "n"}}, base) == [("C", "/etc"), ("A", "/etc/new")]


def test_changed_file_alone_is_c(tmp_path: Path, base: Path) -> None:
    """A copied-up directory whose mode and mtime did not change is no change itself, and
    containers/storage adds parents only for A and D."""
    assert diff(tmp_path, {"etc/": {"passwd": "changed"}}, base) == [("C", "/etc/passwd")]


def test_directory_with_a_new_mtime_is_c(tmp_path: Path, base: Path) -> None:
    upper = build(tmp_path / "upper", {"var/": {}})
    same_times(upper, base)
    os.utime(upper / "var", (T + 5, T + 5))
    assert changes(str(upper), [str(base)]) == [("C", "/var")]


def test_new_tree_is_a_all_the_way_down(tmp_path: Path, base: Path) -> None:
    assert diff(tmp_path, {"opt/app/bin": "x"}, base) == [
        ("A", "/opt"), ("A", "/opt/app"), ("A", "/opt/app/bin"),
    ]  # fmt: skip


@pytest.mark.parametrize("form", ["device", "file"])
def test_whiteout_is_d_and_only_the_top_path(tmp_path: Path, base: Path, form: str) -> None:
    spec: dict[str, object] = (
        {"etc/old": WHITEOUT_CHR, "usr/lib": WHITEOUT_CHR}
        if form == "device"
        else {"etc/.wh.old": "", "usr/.wh.lib": ""}
    )
    assert diff(tmp_path, spec, base) == [
        ("C", "/etc"), ("D", "/etc/old"), ("C", "/usr"), ("D", "/usr/lib"),
    ]  # fmt: skip


def test_opaque_directory_over_a_lower_one_is_d_then_its_children(
    tmp_path: Path, base: Path
) -> None:
    """podman (containers/storage overlayDeletedFile): a removed-and-made-again directory
    is D; what it holds now is A, or C where a lower layer has that path."""
    spec = {"usr/lib/": Opaque({"a": "new a", "c": "c"}, form="trusted")}
    assert diff(tmp_path, spec, base) == [
        ("C", "/usr"), ("D", "/usr/lib"), ("C", "/usr/lib/a"), ("A", "/usr/lib/c"),
    ]  # fmt: skip


@pytest.mark.parametrize("form", ["user", "marker"])
def test_every_opaque_form_is_read(tmp_path: Path, base: Path, form: str) -> None:
    spec = {"var/": Opaque({"x": "x"}, form=form)}  # type: ignore[arg-type]
    assert diff(tmp_path, spec, base) == [("D", "/var"), ("A", "/var/x")]


def test_opaque_directory_new_here_is_a(tmp_path: Path, base: Path) -> None:
    assert diff(tmp_path, {"new/": Opaque({"x": "x"})}, base) == [("A", "/new"), ("A", "/new/x")]


def test_path_hidden_by_a_lower_whiteout_is_a(tmp_path: Path, base: Path) -> None:
    middle = build(tmp_path / "middle", {"etc/old": WHITEOUT_CHR, "usr/.wh.lib": ""})
    spec = {"etc/": {"old": "again"}, "usr/": {"lib/": {"a": "a"}}}
    assert diff(tmp_path, spec, middle, base) == [
        ("C", "/etc"), ("A", "/etc/old"), ("C", "/usr"), ("A", "/usr/lib"), ("A", "/usr/lib/a"),
    ]  # fmt: skip


def test_path_below_a_lower_opaque_directory_is_a(tmp_path: Path, base: Path) -> None:
    middle = build(tmp_path / "middle", {"usr/lib/": Opaque({"b": "b"})})
    spec = {"usr/": {"lib/": {"a": "a", "b": "b2"}}}
    assert diff(tmp_path, spec, middle, base) == [
        ("C", "/usr"), ("C", "/usr/lib"), ("A", "/usr/lib/a"), ("C", "/usr/lib/b"),
    ]  # fmt: skip


def test_topmost_lower_wins(tmp_path: Path, base: Path) -> None:
    middle = build(tmp_path / "middle", {"etc/passwd/": {"x": "old"}})  # a dir over the file
    spec = {"etc/": {"passwd/": {"x": "new"}}}
    assert diff(tmp_path, spec, middle, base) == [("C", "/etc/passwd/x")]
    assert diff(tmp_path / "alone", spec, base) == [
        ("C", "/etc/passwd"), ("A", "/etc/passwd/x"),
    ]  # fmt: skip


def test_lower_symlinks_are_not_followed(tmp_path: Path, base: Path) -> None:
    """A lower symlink to a directory is a leaf: a directory made in its place is C and
    what it holds is new, whatever the link pointed at."""
    build(base, {"link": Symlink("etc"), "abs": Symlink("/etc")})
    spec = {"link/": {"passwd": "p"}, "abs/": {"passwd": "p"}}
    assert diff(tmp_path, spec, base) == [
        ("C", "/abs"), ("A", "/abs/passwd"), ("C", "/link"), ("A", "/link/passwd"),
    ]  # fmt: skip


def test_type_change_is_c(tmp_path: Path, base: Path) -> None:
    spec = {"etc/": {"old": Symlink("passwd")}, "var": File("now a file")}
    assert diff(tmp_path, spec, base) == [("C", "/etc/old"), ("C", "/var")]


def test_sorted_by_path_components(tmp_path: Path) -> None:
    assert diff(tmp_path, {"a/b": "", "a.b": "", "a-b": ""}) == [
        ("A", "/a"), ("A", "/a/b"), ("A", "/a-b"), ("A", "/a.b"),
    ]  # fmt: skip


def test_no_lowers_and_empty_upper(tmp_path: Path) -> None:
    assert diff(tmp_path, {}) == []


def test_private_markers_are_not_changes(tmp_path: Path, base: Path) -> None:
    """The opaque marker file and AUFS metadata are never shown."""
    spec = {"var/": Opaque({}, form="marker"), ".wh..wh.plnk/": {}}
    assert diff(tmp_path, spec, base) == [("D", "/var")]
