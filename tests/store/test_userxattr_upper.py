"""Commit and diff of an upper written under ``userxattr`` (issue 19): the overlay's own
xattrs are then ``user.overlay.*`` alone, and ``trusted.overlay.*`` names are data. The
upper is written by kernel overlayfs with ``-o userxattr``; tarred, extracted and stacked
again (as the store stacks its layers, without userxattr), it must show what that mount
showed, and its ``docker diff`` lines must be the changes made through it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from layers import build
from mountutil import kernel_overlay, unionfs_mount
from treecmp import diff_trees, snapshot

from unionfs.layerfmt import KERNEL_STYLE
from unionfs.store.layertar import changes, extract_layer, open_layer, write_layer
from unionfs.store.spellout import has_records, spelled_out


def _write_through_userxattr_mount(tmp_path: Path) -> tuple[Path, Path, object]:
    lower = build(tmp_path / "lower", {"d/": {"f": "f", "g": "g"}, "gone/": {"x": "x"},
                                       "keep": "k"})  # fmt: skip
    upper, work, mnt = tmp_path / "upper", tmp_path / "work", tmp_path / "mnt"
    for d in (upper, work, mnt):
        d.mkdir()
    with kernel_overlay([lower], mnt, upper, work, opts="userxattr"):
        # trusted.overlay.* is plain data here, even under the names of markers and records.
        os.setxattr(mnt / "d", "trusted.overlay.opaque", b"y")
        (mnt / "r").mkdir()
        os.setxattr(mnt / "r", "trusted.overlay.redirect", b"/gone")
        (mnt / "n").write_bytes(b"n")
        os.setxattr(mnt / "n", "trusted.overlay.foo", b"bar")
        os.setxattr(mnt / "n", "user.overlay.k", b"v")  # stored escaped
        (mnt / "gone" / "x").unlink()
        (mnt / "gone").rmdir()
        (mnt / "gone").mkdir()  # opaque: user.overlay.opaque
        (mnt / "gone" / "new").write_bytes(b"new")
        seen = snapshot(mnt)
    return lower, upper, seen


def test_an_upper_written_under_userxattr_tars_and_diffs_as_it_showed(tmp_path: Path) -> None:
    lower, upper, seen = _write_through_userxattr_mount(tmp_path)
    assert os.getxattr(upper / "gone", "user.overlay.opaque") == b"y"  # the kernel's marker
    assert not has_records(str(upper), userxattr=True)
    blob = tmp_path / "layer.tar.gz"
    with spelled_out(str(upper), [str(lower)], userxattr=True) as out:
        assert out == str(upper)
        with open(blob, "wb") as f:
            write_layer(out, f, userxattr=True)
        found = changes(out, [str(lower)], userxattr=True)
    # d is no change (an xattr alone, mode and mtime as below), not an opaque directory.
    assert found == [("D", "/gone"), ("A", "/gone/new"), ("A", "/n"), ("A", "/r")]
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    with open_layer(str(blob)) as stream:
        extract_layer(stream, str(extracted), KERNEL_STYLE, warn=pytest.fail)
    again = tmp_path / "again"
    again.mkdir()
    with unionfs_mount([extracted, lower], again):  # a store layer, stacked as the store does
        restacked = snapshot(again)
    seen_ = {p: e for p, e in seen.items() if p}  # type: ignore[attr-defined]
    assert diff_trees(seen_, {p: e for p, e in restacked.items() if p}, ("mount", "layer")) == []
