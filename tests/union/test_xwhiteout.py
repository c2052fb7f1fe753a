"""Xwhiteouts (an empty regular file marked ``overlay.whiteout``) and ``userxattr``'s one
namespace, on plain directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unionfs import layerfmt
from unionfs.union.lookup import resolve_path
from unionfs.union.readdir import names
from unionfs.union.stack import Features, Stack


def _lowers(tmp_path: Path, mark: str) -> list[str]:
    top, bottom = tmp_path / "top", tmp_path / "bottom"
    (top / "d").mkdir(parents=True)
    (bottom / "d").mkdir(parents=True)
    for name in ("gone", "kept", "full"):
        (bottom / "d" / name).write_bytes(b"below")
    (top / "d" / "gone").write_bytes(b"")
    os.setxattr(top / "d" / "gone", f"{mark}.overlay.whiteout", b"")
    (top / "d" / "full").write_bytes(b"data")
    os.setxattr(top / "d" / "full", f"{mark}.overlay.whiteout", b"")
    os.setxattr(top / "d", f"{mark}.overlay.opaque", b"x")
    return [str(top), str(bottom)]


@pytest.mark.parametrize("mark", ["trusted", "user"])
def test_an_xwhiteout_hides_the_name_and_its_directory_still_merges(
    tmp_path: Path, mark: str
) -> None:
    stack = Stack.from_dirs(_lowers(tmp_path, mark))
    try:
        d = resolve_path(stack, b"d")
        assert d is not None
        assert sorted(names(stack, d)) == [b"full", b"kept"]
        assert resolve_path(stack, b"d/gone") is None
        full = resolve_path(stack, b"d/full")
        assert full is not None and full.st.st_size == 4  # not empty: a file
    finally:
        stack.close()


def test_with_userxattr_a_trusted_xwhiteout_is_a_file(tmp_path: Path) -> None:
    stack = Stack.from_dirs(_lowers(tmp_path, "trusted"), features=Features(userxattr=True))
    try:
        assert resolve_path(stack, b"d/gone") is not None
        assert stack.private == layerfmt.USERXATTR_PREFIXES
    finally:
        stack.close()


def test_userxattr_escapes_and_hides_user_overlay_only() -> None:
    user = layerfmt.USERXATTR_PREFIXES
    assert layerfmt.escape_xattr(b"trusted.overlay.x", user) == b"trusted.overlay.x"
    assert layerfmt.escape_xattr(b"user.overlay.x", user) == b"user.overlay.overlay.x"
    assert layerfmt.shown_xattr(b"trusted.overlay.opaque", user) == b"trusted.overlay.opaque"
    assert layerfmt.shown_xattr(b"user.overlay.opaque", user) is None
    assert not layerfmt.is_private_xattr(b"trusted.overlay.redirect", user)
    assert layerfmt.is_private_xattr(b"trusted.overlay.redirect")
