"""The layer fixture helper itself: a spec builds the tree it describes, and reads back."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from layers import (
    WHITEOUT_CHR,
    Device,
    Dir,
    Fifo,
    File,
    Hardlink,
    LayerFactory,
    Opaque,
    Symlink,
    build,
    read_tree,
)


def test_build_makes_every_kind_of_entry(tmp_path: Path) -> None:
    root = build(
        tmp_path / "l",
        {
            "a": "text",
            "b": b"\xff\x00",
            "x": File("#!", mode=0o755, xattrs={"user.k": "v"}),
            "d/": {"e": ""},
            "w": WHITEOUT_CHR,
            ".wh.gone": "",
            "s": Symlink("/etc"),
            "f": Fifo(),
            "c": Device(1, 3),
            "h": Hardlink("a"),
            "deep/er/file": "made with its parents",
        },
    )
    assert (root / "a").read_text() == "text"
    assert stat.S_IMODE(os.lstat(root / "x").st_mode) == 0o755
    assert os.getxattr(root / "x", "user.k") == b"v"
    w = os.lstat(root / "w")
    assert stat.S_ISCHR(w.st_mode) and w.st_rdev == 0
    assert os.readlink(root / "s") == "/etc"
    assert stat.S_ISFIFO(os.lstat(root / "f").st_mode)
    assert os.lstat(root / "h").st_ino == os.lstat(root / "a").st_ino
    assert (root / "deep/er/file").read_text() == "made with its parents"


@pytest.mark.parametrize("form", ["trusted", "user", "marker"])
def test_opaque_reads_back_in_the_form_it_was_built(tmp_path: Path, form: str) -> None:
    spec = {"o/": Opaque({"a": ""}, form=form)}
    assert read_tree(build(tmp_path / "l", spec)) == spec


def test_read_tree_is_the_normal_form_of_a_spec(tmp_path: Path) -> None:
    spec = {
        "a": "text",
        "b": b"\xff",
        "d": {"e": "", "n": Dir({"m": "1"})},
        "w": WHITEOUT_CHR,
        ".wh.x": "",
        "s": Symlink("t"),
        "f": Fifo(),
        "c": Device(1, 3),
        "h": Hardlink("a"),
    }
    assert read_tree(build(tmp_path / "l", spec)) == {
        ".wh.x": "",
        "a": "text",
        "b": b"\xff",
        "c": Device(1, 3),
        "d/": {"e": "", "n/": {"m": "1"}},
        "f": Fifo(),
        "h": "text",
        "s": Symlink("t"),
        "w": WHITEOUT_CHR,
    }


def test_factory_numbers_layers_and_records_stack_dirs(layers: LayerFactory) -> None:
    first, second = layers.layer({"a": ""}), layers.layer()
    assert first != second and first.parent == second.parent
    stack = layers.stack(first, {"b": ""}, upper={"c": ""})
    dirs = layers.dirs(stack)
    assert dirs.lowers[0] == first
    assert dirs.upper is not None and read_tree(dirs.upper) == {"c": ""}
    assert dirs.work is not None and dirs.work.is_dir()
    assert [layer.root for layer in stack.layers] == [str(dirs.upper), *map(str, dirs.lowers)]
