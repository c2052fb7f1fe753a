"""Hostile and broken layer archives: each refused with one line, nothing written outside.

Every case extracts into ``box/dest`` next to an empty ``box/victim`` and checks that the
box still holds only those two, the victim still empty, after the UserError.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from store.tarcraft import E, corrupt_checksum, craft, gz, header_offsets, zst
from unionfs.errors import UserError
from unionfs.layerfmt import KERNEL_STYLE
from unionfs.store.layertar import extract_layer, open_layer


class Box:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dest = root / "box" / "dest"
        self.victim = root / "box" / "victim"
        self.dest.mkdir(parents=True)
        self.victim.mkdir()
        self.warnings: list[str] = []

    def extract(self, blob: bytes) -> str:
        with open_layer(io.BytesIO(blob)) as stream:
            return extract_layer(stream, str(self.dest), KERNEL_STYLE, warn=self.warnings.append)

    def refuse(self, blob: bytes, *words: str) -> str:
        with pytest.raises(UserError) as info:
            self.extract(blob)
        message = str(info.value)
        assert "\n" not in message and message
        for word in words:
            assert word in message, message
        self.assert_contained()
        return message

    def assert_contained(self) -> None:
        assert sorted(os.listdir(self.root / "box")) == ["dest", "victim"]
        assert os.listdir(self.victim) == []
        assert sorted(os.listdir(self.root)) == ["box"]


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


# -- names that leave the layer -----------------------------------------------------------
@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "a/b/../../../evil", ".."])
def test_dotdot_name_is_refused(box: Box, name: str) -> None:
    box.refuse(craft([E("a/", "dir"), E(name, data=b"x")]), "'..'")


@pytest.mark.parametrize("name", ["/evil", "//evil", "/box/victim/evil"])
def test_absolute_name_is_refused(box: Box, name: str) -> None:
    box.refuse(craft([E(name, data=b"x")]), "absolute")


@pytest.mark.parametrize("target", ["..", "../victim", "/", "/tmp", "."])
def test_entry_through_a_symlink_is_refused(box: Box, target: str) -> None:
    blob = craft([E("s", "symlink", link=target), E("s/evil", data=b"x")])
    box.refuse(blob, "s/evil", "through s", "symlink")


def test_directory_entry_through_a_symlink_is_refused(box: Box) -> None:
    blob = craft([E("d/", "dir"), E("d/s", "symlink", link="../.."), E("d/s/x/", "dir")])
    box.refuse(blob, "through d/s")


def test_symlink_replacing_a_directory_then_entry_is_refused(box: Box) -> None:
    blob = craft([E("d/", "dir"), E("d", "symlink", link=".."), E("d/evil", data=b"x")])
    box.refuse(blob, "conflicting")


def test_entry_below_a_file_is_refused(box: Box) -> None:
    box.refuse(craft([E("f", data=b"x"), E("f/g", data=b"y")]), "f/g", "below f")


# -- hard links -----------------------------------------------------------------------------
@pytest.mark.parametrize("link", ["../victim/x", "../../etc/passwd", "a/../../x"])
def test_hard_link_out_of_the_layer_is_refused(box: Box, link: str) -> None:
    box.refuse(craft([E("a/", "dir"), E("h", "link", link=link)]), "'..'")


def test_absolute_hard_link_is_refused(box: Box) -> None:
    box.refuse(craft([E("h", "link", link="/etc/passwd")]), "absolute")


def test_hard_link_to_a_missing_path_is_refused(box: Box) -> None:
    box.refuse(craft([E("h", "link", link="nothere")]), "h: hard link to nothere")


def test_hard_link_to_a_later_entry_is_refused(box: Box) -> None:
    blob = craft([E("h", "link", link="f"), E("f", data=b"x")])
    box.refuse(blob, "not in this layer")


def test_hard_link_to_a_directory_is_refused(box: Box) -> None:
    box.refuse(craft([E("d/", "dir"), E("h", "link", link="d")]), "a directory")


def test_hard_link_to_itself_is_refused(box: Box) -> None:
    box.refuse(craft([E("f", data=b"x"), E("f", "link", link="f")]), "itself")


def test_hard_link_through_a_symlink_is_refused(box: Box) -> None:
    blob = craft([E("s", "symlink", link="/etc"), E("h", "link", link="s/passwd")])
    box.refuse(blob, "not in this layer")


# -- duplicates -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ([E("x", data=b"1"), E("x/", "dir")], ("a file and then a directory",)),
        ([E("x/", "dir"), E("x", data=b"1")], ("a directory and then a regular file",)),
        ([E("x/", "dir"), E("x", "symlink", link="y")], ("a directory and then a symlink",)),
        ([E("x/y", data=b"1"), E("x", data=b"2")], ("a parent directory and then",)),
        ([E("x", "symlink", link="y"), E("x/", "dir")], ("a symlink and then a directory",)),
    ],
    ids=["file-dir", "dir-file", "dir-symlink", "implicit-file", "symlink-dir"],
)
def test_conflicting_duplicates_are_refused(box: Box, entries: list[E], words: tuple[str]) -> None:
    message = box.refuse(craft(entries), "conflicting entries", *words)
    assert message.startswith("x")


def test_later_file_replaces_earlier_file(box: Box) -> None:
    box.extract(craft([E("x", data=b"first"), E("x", data=b"second", mode=0o600)]))
    assert (box.dest / "x").read_bytes() == b"second"
    assert (box.dest / "x").stat().st_mode & 0o777 == 0o600


def test_later_directory_entry_sets_the_attributes(box: Box) -> None:
    box.extract(
        craft([E("d/", "dir", mode=0o700), E("d/f", data=b"x"), E("d/", "dir", mode=0o750)])
    )
    assert (box.dest / "d").stat().st_mode & 0o777 == 0o750
    assert (box.dest / "d" / "f").read_bytes() == b"x"


# -- broken streams -----------------------------------------------------------------------
def _big_tar() -> bytes:
    return craft([E("a", data=os.urandom(100_000)), E("b", data=b"x" * 5000)])


def test_truncated_gzip_is_refused(box: Box) -> None:
    blob = gz(_big_tar())
    box.refuse(blob[: len(blob) // 2], "gzip")


def test_corrupt_gzip_is_refused(box: Box) -> None:
    """A damaged deflate stream (not a short one): the inflater's own error, as one line."""
    blob = bytearray(gz(_big_tar()))
    blob[60:90] = bytes(30)
    box.refuse(bytes(blob), "gzip")


def test_truncated_zstd_is_refused(box: Box) -> None:
    blob = zst(_big_tar())
    box.refuse(blob[: len(blob) // 2], "truncated")


def test_tar_truncated_inside_data_is_refused(box: Box) -> None:
    box.refuse(_big_tar()[:60_000], "truncated", "data of a")


def test_tar_truncated_at_an_entry_boundary_is_refused(box: Box) -> None:
    data = _big_tar()
    second = header_offsets(data)[1]
    box.refuse(data[:second], "truncated", "end-of-archive")


def test_gzip_of_a_truncated_tar_is_refused(box: Box) -> None:
    box.refuse(gz(_big_tar()[:60_000]), "truncated")


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (b"", ("empty",)),
        (b"hello, this is not a tar file\n" * 40, ("not a layer",)),
        (b"BZh91AY&SY" + bytes(600), ("bzip2",)),
        (os.urandom(4096), ("not a layer",)),
    ],
    ids=["empty", "text", "bzip2", "random"],
)
def test_non_tar_is_refused(box: Box, blob: bytes, words: tuple[str]) -> None:
    if blob[:2] == b"\x1f\x8b" or blob[:4] == b"\x28\xb5\x2f\xfd":
        blob = b"x" + blob  # random bytes that happen to start with a magic
    box.refuse(blob, *words)


def test_garbage_gzip_is_refused(box: Box) -> None:
    box.refuse(gz(b"hello, this is not a tar file\n" * 40), "not a tar archive")


def test_bad_checksum_in_a_later_header_is_refused(box: Box) -> None:
    data = _big_tar()
    box.refuse(corrupt_checksum(data, header_offsets(data)[1]), "checksum")


def test_sparse_entry_is_refused(box: Box) -> None:
    box.refuse(craft([E("s", "sparse")], fmt=tarfile.GNU_FORMAT), "sparse")


def test_bad_pax_record_is_refused(box: Box) -> None:
    box.refuse(craft([E("f", data=b"x", pax={"size": "banana"})]), "pax")


# -- marker names that are not markers ------------------------------------------------------
@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ([E(".wh.x/", "dir")], ("regular file",)),
        ([E(".wh.x", "symlink", link="y")], ("regular file",)),
        ([E(".wh.", data=b"")], ("names no entry",)),
        ([E("a/.wh..", data=b"")], ("names no entry",)),
        ([E(".wh.d/f", data=b"")], ("'.wh.' directory",)),
        ([E(".wh..wh..opq/", "dir")], ("opaque marker",)),
    ],
    ids=["wh-dir", "wh-symlink", "wh-empty", "wh-dot", "wh-parent", "opq-dir"],
)
def test_misused_marker_names_are_refused(box: Box, entries: list[E], words: tuple[str]) -> None:
    box.refuse(craft(entries), *words)


# -- what cannot be made here ---------------------------------------------------------------
def test_device_node_that_cannot_be_made_is_skipped_with_a_warning(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_mknod = os.mknod

    def refuse_devices(path: object, mode: int = 0o600, device: int = 0, **kw: object) -> None:
        if device != 0:
            raise PermissionError(1, "Operation not permitted")
        real_mknod(path, mode, device, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mknod", refuse_devices)
    blob = craft([
        E("dev/null", "chr", dev=(1, 3)),
        E("dev/null2", "link", link="dev/null"),
        E("dev/loop0", "blk", dev=(7, 0)),
        E("dev/ok", data=b"kept"),
    ])  # fmt: skip
    box.extract(blob)
    assert sorted(os.listdir(box.dest / "dev")) == ["ok"]
    assert len(box.warnings) == 3
    assert all("skipped" in w and "\n" not in w for w in box.warnings)
    assert "dev/null" in box.warnings[0]
    box.assert_contained()


def test_destination_must_be_empty(box: Box) -> None:
    (box.dest / "old").write_bytes(b"x")
    with pytest.raises(UserError, match="not empty"):
        box.extract(craft([E("a", data=b"x")]))


def test_oversized_pax_header_is_refused(box: Box) -> None:
    box.refuse(craft([E("f", data=b"x", pax={"comment": "c" * (2 << 20)})]), "1 MiB")


def test_nul_in_a_symlink_target_is_refused(box: Box) -> None:
    box.refuse(craft([E("s", "symlink", pax={"linkpath": "a\0b"})]), "s:")


def test_owner_out_of_range_is_refused(box: Box) -> None:
    box.refuse(craft([E("f", data=b"x", pax={"uid": str(1 << 40)})]), "f:")


def test_overlong_path_is_refused(box: Box) -> None:
    box.refuse(craft([E("a/" * 9000 + "f", data=b"x")]), "longer than 16384 bytes")
