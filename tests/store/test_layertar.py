"""write_layer and extract_layer on real trees: round trips, markers, reproducibility,
compression, and what other tar readers make of our layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from layers import WHITEOUT_CHR, Device, Dir, Fifo, File, Hardlink, Opaque, Symlink, build
from treecmp import diff_trees, snapshot

from store.tarcraft import E, craft, gz, zst
from unionfs.errors import UserError
from unionfs.layerfmt import KERNEL_STYLE, ROOTLESS_STYLE, MarkerStyle
from unionfs.store.layertar import LayerBlob, extract_layer, open_layer, write_layer

MTIME = 1_600_000_000
NON_UTF8 = b"caf\xe9"
LONG = "l" * 120


def rich_tree(root: Path) -> Path:
    """Every kind of entry a layer holds, with odd modes, owners, xattrs and names."""
    build(root, {
        "etc/": Dir({"passwd": File("root:x:0:0\n", mode=0o644)}, mode=0o755),
        "bin/su": File(b"\x7fELF" + bytes(300), mode=0o4755),
        "bin/tool": File("#!/bin/sh\n", mode=0o2750, xattrs={"user.note": "tool",
                                                             "trusted.t": b"\xff\x00v"}),
        "bin/tool2": Hardlink("bin/tool"),
        "bin/tool3": Hardlink("bin/tool"),
        "locked/": Dir({"inside": "x"}, mode=0o500),
        "tmp/": Dir({}, mode=0o1777),
        "big": File(os.urandom(1_200_001)),
        "empty": "",
        "abs": Symlink("/etc/passwd"),
        "dangling": Symlink("../nowhere"),
        "dev/null": Device(1, 3),
        "dev/loop0": Device(7, 0, block=True),
        "dev/fifo": Fifo(),
        f"deep/{LONG}/{LONG}/name-{LONG}": "long",
        "x/esc": File("e", xattrs={"trusted.overlay.overlay.user": "kept",
                                   "trusted.overlay.origin": "private"}),
    })  # fmt: skip
    (root / os.fsdecode(NON_UTF8)).write_bytes(b"latin-1 name")
    os.chown(root / "etc" / "passwd", 1234, 5678)
    os.chown(root / "abs", 42, 43, follow_symlinks=False)
    os.chown(root / "tmp", 0, 7)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in [*dirnames, *filenames]:
            os.utime(os.path.join(dirpath, name), ns=(MTIME * 10**9,) * 2, follow_symlinks=False)
    return root


def without_private(xattrs: object) -> tuple[tuple[str, bytes], ...]:
    assert isinstance(xattrs, tuple)
    return tuple(x for x in xattrs if x[0] != "trusted.overlay.origin")


def mtimes(root: Path) -> dict[str, int]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, root)] = os.lstat(path).st_mtime_ns
    return found


def write(upper: Path, tmp: Path, compression: str = "gzip") -> tuple[LayerBlob, bytes]:
    out = io.BytesIO()
    blob = write_layer(str(upper), out, compression=compression)
    return blob, out.getvalue()


def extract(blob: bytes, dest: Path, style: MarkerStyle = KERNEL_STYLE) -> tuple[str, list[str]]:
    dest.mkdir()
    warnings: list[str] = []
    with open_layer(io.BytesIO(blob)) as stream:
        return extract_layer(stream, str(dest), style, warn=warnings.append), warnings


def members(blob: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)), mode="r:") as tar:
        return tar.getmembers()


# -- round trips ----------------------------------------------------------------------------
def test_round_trip_keeps_the_tree(tmp_path: Path) -> None:
    upper = rich_tree(tmp_path / "upper")
    blob, data = write(upper, tmp_path)
    diff_id, warnings = extract(data, tmp_path / "out")
    assert warnings == []
    assert diff_id == blob.diff_id
    before, after = snapshot(upper), snapshot(tmp_path / "out")
    # The private overlay xattr stays behind; the escaped one comes back escaped.
    before[b"x/esc"]["xattrs"] = without_private(before[b"x/esc"]["xattrs"])
    assert diff_trees(before, after) == []
    assert mtimes(tmp_path / "out") == mtimes(upper)
    out_tool = os.stat(tmp_path / "out" / "bin" / "tool")
    assert out_tool.st_nlink == 3
    assert out_tool.st_ino == os.stat(tmp_path / "out" / "bin" / "tool3").st_ino


def test_layer_entries_are_what_the_oci_spec_asks(tmp_path: Path) -> None:
    upper = rich_tree(tmp_path / "upper")
    blob, data = write(upper, tmp_path)
    assert blob.media_type == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert blob.size == len(data)
    by_name = {m.name: m for m in members(data)}
    assert "x/esc" in by_name
    assert by_name["x/esc"].pax_headers == {"SCHILY.xattr.trusted.overlay.user": "kept"}
    assert by_name["bin/tool2"].islnk() and by_name["bin/tool2"].linkname == "bin/tool"
    assert by_name["bin/su"].mode == 0o4755
    assert by_name["etc/passwd"].uid == 1234 and by_name["etc/passwd"].uname == ""
    assert by_name["dev/loop0"].isblk() and by_name["dev/loop0"].devmajor == 7
    assert all(m.mtime == MTIME for m in by_name.values())
    assert not any("atime" in m.pax_headers or "ctime" in m.pax_headers for m in by_name.values())
    assert not any(name.startswith(("/", "./")) for name in by_name)
    assert len(by_name) == len(members(data))  # no duplicates


def test_every_marker_form_becomes_oci_markers(tmp_path: Path) -> None:
    upper = build(tmp_path / "upper", {
        "w_dev": WHITEOUT_CHR,
        ".wh.w_file": "",
        "d/": Dir({"gone": WHITEOUT_CHR, ".wh.gone": ""}),  # both forms at once: one entry
        "o_trusted/": Opaque({"new": "n"}, form="trusted"),
        "o_user/": Opaque({}, form="user"),
        "o_marker/": Opaque({"m": "m"}, form="marker"),
    })  # fmt: skip
    _, data = write(upper, tmp_path)
    names = [m.name for m in members(data)]
    assert names == [
        ".wh.w_dev", ".wh.w_file",
        "d", "d/.wh.gone",
        "o_marker", "o_marker/.wh..wh..opq", "o_marker/m",
        "o_trusted", "o_trusted/.wh..wh..opq", "o_trusted/new",
        "o_user", "o_user/.wh..wh..opq",
    ]  # fmt: skip
    assert all(m.pax_headers == {} for m in members(data))  # opaque xattrs are not exported


@pytest.mark.parametrize("style", [KERNEL_STYLE, ROOTLESS_STYLE], ids=["kernel", "rootless"])
def test_markers_come_out_in_the_style_asked(tmp_path: Path, style: MarkerStyle) -> None:
    upper = build(tmp_path / "upper", {
        "w_dev": WHITEOUT_CHR,
        ".wh.w_file": "",
        "o_trusted/": Opaque({"new": "n"}, form="trusted"),
        "o_marker/": Opaque({}, form="marker"),
    })  # fmt: skip
    _, data = write(upper, tmp_path)
    out = tmp_path / "out"
    extract(data, out, style)
    entries = {p: d for p, d in snapshot(out).items() if p}
    if style.device_whiteouts:
        assert entries[b"w_dev"]["type"] == entries[b"w_file"]["type"] == "chr"
        assert entries[b"w_dev"]["rdev"] == (0, 0)
    else:
        assert entries[b".wh.w_dev"]["type"] == entries[b".wh.w_file"]["type"] == "file"
        assert b"w_dev" not in entries
    for name in ("o_trusted", "o_marker"):
        assert os.getxattr(out / name, style.opaque_xattr) == b"y"
        assert (out / name / ".wh..wh..opq").exists() == style.opaque_file
    other = b"user.overlay.opaque" if style is KERNEL_STYLE else b"trusted.overlay.opaque"
    assert other not in [os.fsencode(n) for n in os.listxattr(out / "o_trusted")]


def test_whiteout_and_entry_of_one_name_in_one_layer(tmp_path: Path) -> None:
    """OCI: a whiteout hides only lower layers; this layer's own entry stays, and a
    directory made again must hide what lower layers held there."""
    blob = craft([
        E(".wh.d", data=b""), E("d/new", data=b"n"),   # whiteout, then the directory again
        E("e/", "dir"), E("e/x", data=b"x"), E(".wh.e", data=b""),  # entry, then whiteout
        E(".wh.f", data=b""), E("f", data=b"file"),    # a file made again
        E("g/.wh..wh..opq", data=b""), E("g/", "dir", mode=0o700),  # marker before its dir
        E(".wh..wh.plnk/123", data=b"aufs"),           # AUFS metadata: skipped
        E("w", "chr", dev=(0, 0)),                     # a raw overlay whiteout in the tar
    ])  # fmt: skip
    out = tmp_path / "out"
    extract(blob, out)
    assert sorted(os.listdir(out)) == ["d", "e", "f", "g", "w"]
    for name in ("d", "e", "g"):
        assert os.getxattr(out / name, "trusted.overlay.opaque") == b"y"
    assert os.listdir(out / "d") == ["new"] and os.listdir(out / "e") == ["x"]
    assert (out / "f").read_bytes() == b"file"
    assert stat.S_IMODE(os.stat(out / "g").st_mode) == 0o700
    assert stat.S_ISCHR(os.lstat(out / "w").st_mode)


def test_root_entry_sets_the_root_attributes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    extract(craft([E("./", "dir", mode=0o750, mtime=1234), E("./a", data=b"a")]), out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert out.stat().st_mtime == 1234
    assert (out / "a").read_bytes() == b"a"


def test_xattr_named_like_an_overlay_marker_stays_user_data(tmp_path: Path) -> None:
    blob = craft([E("d/", "dir", xattrs={"trusted.overlay.opaque": b"y"})])
    out = tmp_path / "out"
    extract(blob, out)
    assert os.listxattr(out / "d") == ["trusted.overlay.overlay.opaque"]


# -- reproducibility ------------------------------------------------------------------------
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_same_tree_gives_same_digests(tmp_path: Path, compression: str) -> None:
    upper = rich_tree(tmp_path / "upper")
    build(upper, {"o/": Opaque({"n": "n"}), "w": WHITEOUT_CHR, ".wh.v": ""})
    os.utime(upper / "o", ns=(MTIME * 10**9,) * 2)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(upper), str(copy)], check=True)
    first, data1 = write(upper, tmp_path, compression)
    again, data2 = write(upper, tmp_path, compression)
    copied, data3 = write(copy, tmp_path, compression)
    assert first == again == copied
    assert data1 == data2 == data3


def test_gzip_header_has_no_name_and_no_time(tmp_path: Path) -> None:
    upper = build(tmp_path / "upper", {"a": "a"})
    _, data = write(upper, tmp_path)
    assert data[:4] == b"\x1f\x8b\x08\x00"  # deflate, no FNAME/FCOMMENT/FEXTRA flags
    assert data[4:8] == bytes(4)  # mtime 0


# -- compression and detection --------------------------------------------------------------
def test_zstd_layer_has_the_same_diff_id(tmp_path: Path) -> None:
    upper = rich_tree(tmp_path / "upper")
    gz_blob, _ = write(upper, tmp_path, "gzip")
    zst_blob, data = write(upper, tmp_path, "zstd")
    assert zst_blob.media_type == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert zst_blob.diff_id == gz_blob.diff_id and zst_blob.digest != gz_blob.digest
    diff_id, _ = extract(data, tmp_path / "out")
    assert diff_id == gz_blob.diff_id
    assert diff_trees(snapshot(upper / "bin"), snapshot(tmp_path / "out" / "bin")) == []


@pytest.mark.parametrize("wrap", ["plain", "gzip", "zstd", "zstd-frames"])
def test_open_layer_reads_every_form(tmp_path: Path, wrap: str) -> None:
    tar = craft([E("a", data=b"hello"), E("b/", "dir")])
    blob = {
        "plain": tar,
        "gzip": gz(tar),
        "zstd": zst(tar),
        "zstd-frames": zst(tar[:700]) + zst(tar[700:]),
    }[wrap]
    path = tmp_path / "blob"
    path.write_bytes(blob)
    with open_layer(str(path)) as stream:
        assert stream.read() == tar
    read_fd, write_fd = os.pipe()  # a pipe: no seeking back after the magic bytes
    (tmp_path / "o").mkdir()
    with open(read_fd, "rb") as pipe:
        with open(write_fd, "wb") as w:
            w.write(blob)
        with open_layer(pipe) as stream:
            diff_id = extract_layer(stream, str(tmp_path / "o"), KERNEL_STYLE, warn=print)
    assert (tmp_path / "o" / "a").read_bytes() == b"hello"
    assert diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()


def test_diff_id_covers_trailing_padding(tmp_path: Path) -> None:
    tar = craft([E("a", data=b"x")]) + bytes(4096)
    diff_id, _ = extract(tar, tmp_path / "out")
    assert diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()


def test_open_layer_of_a_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot open layer"):
        open_layer(str(tmp_path / "nothere"))


def test_progress_adds_up_to_the_tar_size(tmp_path: Path) -> None:
    upper = rich_tree(tmp_path / "upper")
    written: list[int] = []
    out = io.BytesIO()
    write_layer(str(upper), out, progress=written.append)
    tar_size = len(gzip.decompress(out.getvalue()))
    assert sum(written) == tar_size
    (tmp_path / "o").mkdir()
    read: list[int] = []
    with open_layer(io.BytesIO(out.getvalue())) as stream:
        extract_layer(stream, str(tmp_path / "o"), KERNEL_STYLE, warn=print, progress=read.append)
    assert sum(read) == tar_size


def test_unknown_compression_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown compression"):
        write_layer(str(tmp_path), io.BytesIO(), compression="lz4")


# -- other readers and writers --------------------------------------------------------------
def test_gnu_tar_extracts_our_layer_to_the_same_tree(tmp_path: Path) -> None:
    upper = rich_tree(tmp_path / "upper")
    _, data = write(upper, tmp_path)
    (tmp_path / "layer.tgz").write_bytes(data)
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(
        ["tar", "-xzpf", str(tmp_path / "layer.tgz"), "-C", str(out), "--numeric-owner",
         "--xattrs", "--xattrs-include=*", "--same-owner"],
        check=True,
    )  # fmt: skip
    before, after = snapshot(upper), snapshot(out)
    before[b"x/esc"]["xattrs"] = without_private(before[b"x/esc"]["xattrs"])
    # GNU tar stores what the tar says: the escaped xattr is shown unescaped there.
    assert after[b"x/esc"]["xattrs"] == (("trusted.overlay.user", b"kept"),)
    after[b"x/esc"]["xattrs"] = before[b"x/esc"]["xattrs"]
    assert diff_trees(before, after) == []


def test_we_extract_what_gnu_tar_writes(tmp_path: Path) -> None:
    src = rich_tree(tmp_path / "src")
    shutil.rmtree(src / "x")  # GNU tar would export the private overlay xattr
    for fmt in ("gnu", "posix"):
        archive = tmp_path / f"{fmt}.tar"
        subprocess.run(
            ["tar", "-cf", str(archive), f"--format={fmt}", "--xattrs", "--xattrs-include=*",
             "-C", str(src), "."],
            check=True,
        )  # fmt: skip
        out = tmp_path / f"out-{fmt}"
        extract(archive.read_bytes(), out)
        assert diff_trees(snapshot(src), snapshot(out)) == [], fmt
        assert mtimes(out) == mtimes(src)


def test_write_layer_of_a_missing_upper_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read"):
        write_layer(str(tmp_path / "nothere"), io.BytesIO())


def test_sockets_are_left_out(tmp_path: Path) -> None:
    import socket

    upper = build(tmp_path / "upper", {"a": "a"})
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(upper / "sock"))
        _, data = write(upper, tmp_path)
    assert [m.name for m in members(data)] == ["a"]
