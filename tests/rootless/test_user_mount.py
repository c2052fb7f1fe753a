"""An ordinary user mounts a stack (libfuse through fusermount3) and changes it; then the
write-path differential against kernel overlayfs, both mounted by the user inside a user
namespace (``userxattr``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rootlessutil import RootlessUser


def _build_layers(base: Path) -> None:
    """Every marker form, as root: whiteouts .wh.x (file) and y (device 0/0); opaque
    directories by user.overlay.opaque, trusted.overlay.opaque and .wh..wh..opq."""
    l0, l1 = base / "l0", base / "l1"
    for layer in (l0, l1):
        for d in ("o_user", "o_trusted", "o_wh"):
            (layer / d).mkdir(parents=True)
    (l1 / "d" / "sub").mkdir(parents=True)
    for path in ("a", "c", "x", "y", "d/f", "d/sub/x", "o_user/h1", "o_trusted/h2", "o_wh/h3"):
        (l1 / path).write_bytes(b"lower " + path.encode())
    for path in ("o_user/own1", "o_trusted/own2", "o_wh/own3", ".wh.x", "o_wh/.wh..wh..opq"):
        (l0 / path).write_bytes(b"")
    os.mknod(l0 / "y", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    os.setxattr(l0 / "o_user", "user.overlay.opaque", b"y")
    os.setxattr(l0 / "o_trusted", "trusted.overlay.opaque", b"y")


def test_user_mount_reads_every_marker_form_and_writes_rootless_ones(
    rootless_user: RootlessUser,
) -> None:
    user = rootless_user
    base = user.base / "usermount"
    base.mkdir()
    _build_layers(base)
    user.chown(base)

    got = user.python_json("usermount", str(base))

    fstype, _source, options = got["mountinfo"][:3]  # type: ignore[index]
    assert fstype == "fuse.unionfs"
    assert f"user_id={user.uid}" in options  # a user's mount, not root's
    assert got["before"] == ["a", "c", "d", "o_trusted", "o_user", "o_wh"]
    # trusted.* xattrs are invisible to an unprivileged process (the kernel's rule, and
    # kernel overlayfs with userxattr does not look for them either): a layer made by root
    # is opaque for a user only with .wh..wh..opq or user.overlay.opaque.
    assert got["opaque"] == {"o_user": ["own1"], "o_trusted": ["h2", "own2"], "o_wh": ["own3"]}
    assert got["after"] == ["c", "d", "o_trusted", "o_user", "o_wh"]
    # A copy-up works in a work directory the user's daemon can enter: the kernel's mode
    # 000 locks out a process without CAP_DAC_OVERRIDE, so it is 700 there (no ACL either).
    assert got["copied"] == "lower c+"
    assert got["work"] == ["drwx------", []]
    assert got["inside"] == ["new"]
    assert got["owner"] == user.uid
    markers = got["markers"]
    assert isinstance(markers, dict)
    # The whiteout of a: a device 0/0 where the kernel lets a user make one (it does since
    # Linux 5.8), else .wh.a; the new d is opaque by user.overlay.opaque plus its marker file.
    assert markers.get("a", [None])[0] == "chr 0/0" or ".wh.a" in markers
    assert markers["d"][1] == ["user.overlay.opaque"]
    assert markers["c"][0] == "file"
    assert markers["d/.wh..wh..opq"][0] == "file"
    assert not any(x.startswith("trusted.") for _, xs, _ in markers.values() for x in xs)
    assert all(owner == user.uid for _, _, owner in markers.values())
    assert got["still_mounted"] is False


def test_write_differential_against_kernel_overlay_in_a_user_namespace(
    rootless_user: RootlessUser,
) -> None:
    user = rootless_user
    base = user.base / "differential"
    base.mkdir()
    user.chown(base)

    got = user.python_json("differential", str(base), userns=True)

    assert got["uid_map"] == ["0", str(user.uid), "1"]  # really the user, as root inside
    assert len(got["ops"]) >= 20  # type: ignore[arg-type]
