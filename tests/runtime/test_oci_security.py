"""What a container may do under ``unionfs-runtime``, side by side with runc on the same
bundle: the device policy (an image's node of a host loop device holding a secret) and
seccomp (a bundle's ``linux.seccomp``).

An OCI runtime does what config.json says: the policy of issue 17 is the caller's to ask
for (podman writes its default seccomp profile into the bundle; ``--security-opt
seccomp=unconfined`` and ``--privileged`` leave ``linux.seccomp`` out). What the runtime
adds itself is runc's: deny every device but the standard set whatever rules the bundle
gives, and creating (only) any node while the process holds CAP_MKNOD.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from runtime.ocitest import OURS, OciRuntime, make_bundle, wait_stopped

JSON = object


def side_by_side(tmp_path: Path, rootfs: Path, script: str, change: dict[str, JSON],
                 node: int | None = None) -> dict[str, str]:  # fmt: skip
    """*script* run by runc and by ours on the same bundle (``runc spec``'s, *change*
    applied: ``process.x``/``linux.x`` keys, a None value deletes; *node*: the rootfs
    holds ``/secretdev``, block device *node*, mode 0666); what each showed."""
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed (./dev.sh setup installs it)")
    seen = {}
    for name, program in (("runc", runc), ("unionfs", OURS)):
        bundle = make_bundle(tmp_path / name, rootfs, ["sh", "-c", script])
        if node is not None:
            os.mknod(bundle / "rootfs/secretdev", 0o666 | stat.S_IFBLK, node)
            os.chmod(bundle / "rootfs/secretdev", 0o666)
        config = json.loads((bundle / "config.json").read_text())
        for dotted, value in change.items():
            *parents, last = dotted.split(".")
            place = config
            for key in parents:
                place = place.setdefault(key, {})
            if value is None:
                place.pop(last, None)
            else:
                place[last] = value
        (bundle / "config.json").write_text(json.dumps(config))
        rt = OciRuntime(program, tmp_path / f"{name}-state")
        try:
            cid = rt.create(bundle)
            rt.ok("start", cid)
            wait_stopped(rt, cid)
            rt.ok("delete", cid)
        finally:
            assert rt.cleanup() == []
        # busybox names itself in its messages: "sh: can't create /secretdev: ..."
        seen[name] = (bundle / "out").read_text() + (bundle / "err").read_text()
    return seen


DEVICE_PROBE = """
head -c 24 /secretdev; echo " read=$?"
echo pwned > /secretdev; echo "write=$?"
echo x > /dev/null && head -c 1 /dev/zero | wc -c && echo "standard=ok"
mknod /tmp/n b {major} {minor}; echo "mknod=$?"
"""
ALL_CAPS_BUT = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")  # runc spec's
WITH_MKNOD = {key: [*ALL_CAPS_BUT, "CAP_MKNOD"] for key in ("bounding", "effective",
                                                             "permitted")}  # fmt: skip
DEVICE_CASES = {
    "runc-spec": {},  # linux.resources.devices: deny all
    "no-rules": {"linux.resources": None},
    # a deny list without "deny all" first: the base is still deny (runc's emulator)
    "no-deny-all": {"linux.resources": {"devices": [
        {"allow": False, "type": "c", "major": 1, "minor": 1, "access": "rwm"}]}},
    "cap-mknod": {"process.capabilities": WITH_MKNOD},
}  # fmt: skip


@pytest.mark.parametrize("case", list(DEVICE_CASES))
def test_an_image_device_node_reaches_no_host_device_as_under_runc(
    case: str, tmp_path: Path, busybox_rootfs: Path, loop_secret: tuple[str, bytes]
) -> None:
    rdev = os.stat(loop_secret[0]).st_rdev
    script = DEVICE_PROBE.format(major=os.major(rdev), minor=os.minor(rdev))
    seen = side_by_side(tmp_path, busybox_rootfs, script, DEVICE_CASES[case], rdev)
    for shown in seen.values():
        assert loop_secret[1].decode() not in shown
        assert "read=1" in shown and "write=1" in shown and "standard=ok" in shown, shown
        assert "Operation not permitted" in shown
    assert ("mknod=0" in seen["runc"]) == (case == "cap-mknod")
    assert seen["unionfs"] == seen["runc"]


def test_a_device_the_bundle_allows_is_opened_as_under_runc(
    tmp_path: Path, busybox_rootfs: Path, loop_secret: tuple[str, bytes]
) -> None:
    """The rules are the bundle's to widen: reading allowed, writing still denied."""
    rdev = os.stat(loop_secret[0]).st_rdev
    rules = [{"allow": False, "access": "rwm"}, {"allow": True, "type": "b", "access": "r",
             "major": os.major(rdev), "minor": os.minor(rdev)}]  # fmt: skip
    script = DEVICE_PROBE.format(major=os.major(rdev), minor=os.minor(rdev))
    seen = side_by_side(tmp_path, busybox_rootfs, script,
                        {"linux.resources": {"devices": rules}}, rdev)  # fmt: skip
    for shown in seen.values():
        assert loop_secret[1].decode() in shown and "read=0" in shown, shown
        assert "write=1" in shown
    assert seen["unionfs"] == seen["runc"]


SECCOMP_PROBE = """
grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status
mkdir /tmp/d; echo "mkdir=$?"
ls / > /dev/null; echo "ls=$?"
"""
# the shape podman writes: default ERRNO, an allow list, one call answered with its own errno
PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
}


@pytest.mark.parametrize("case", ["bundle-profile", "none"])
def test_a_bundles_seccomp_is_applied_as_by_runc(
    case: str, tmp_path: Path, busybox_rootfs: Path
) -> None:
    """``linux.seccomp`` compiled by unionfs answers as runc's libseccomp filter; without
    it there is no filter, in both (the caller's choice: podman's unconfined)."""
    change = {"linux.seccomp": PROFILE if case == "bundle-profile" else None}
    seen = side_by_side(tmp_path, busybox_rootfs, SECCOMP_PROBE, change)
    assert "NoNewPrivs:\t1" in seen["runc"] and "ls=0" in seen["runc"]
    if case == "bundle-profile":
        assert "Seccomp:\t2" in seen["runc"] and "mkdir=1" in seen["runc"]
        assert "Permission denied" in seen["runc"]  # errnoRet 13: EACCES
    else:
        assert "Seccomp:\t0" in seen["runc"] and "mkdir=0" in seen["runc"]
    assert seen["unionfs"] == seen["runc"]
