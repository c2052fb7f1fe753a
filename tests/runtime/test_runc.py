"""The same OCI bundle under ``runc run`` and ``unionfs run --bundle``: the same isolation is
visible from inside (host name, network devices, processes, IPC, capabilities, mounts).

runc (Debian's package) is the reference; without it these tests are skipped, since they
compare and do not test unionfs alone.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from patience import scaled

from runtime.containerutil import Runtime

SCRIPT = """
echo "== hostname"; hostname
echo "== net"; ls /sys/class/net
echo "== ps"; ps -o pid,comm
echo "== ipc"; cat /proc/sysvipc/msg /proc/sysvipc/shm /proc/sysvipc/sem
echo "== caps"; grep Cap /proc/self/status
echo "== id"; id
echo "== root"; touch /x 2>&1
echo "== mounts"; cut -d' ' -f5 /proc/self/mountinfo | sort
"""
# runc creates device nodes and mounts cgroups; unionfs binds devices, mounts no cgroupfs
NOT_COMPARED = (
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/sys/fs/cgroup",
)


@pytest.fixture
def bundle(tmp_path: Path, busybox_rootfs: Path) -> Path:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (apt-get install runc): nothing to compare with")
    path = tmp_path / "bundle"
    path.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(path)], check=True)
    config = json.loads((path / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", SCRIPT]
    config["root"]["path"] = str(busybox_rootfs)
    config["hostname"] = "same-box"
    config["linux"]["cgroupsPath"] = f"utest-runc-{uuid.uuid4().hex[:10]}"  # below ours
    (path / "config.json").write_text(json.dumps(config))
    return path


def sections(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for block in text.split("== ")[1:]:
        title, *lines = block.splitlines()
        found[title] = lines
    return found


def test_runc_and_unionfs_show_the_same_isolation(runtime: Runtime, bundle: Path) -> None:
    runc = subprocess.run(
        ["runc", "run", "-b", str(bundle), f"utest-{uuid.uuid4().hex[:10]}"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=scaled(60),
        check=False,
    )
    ours = runtime("run", "--rm", "--bundle", str(bundle))
    assert runc.returncode == 0, runc.stderr
    assert ours.returncode == 0, ours.stderr
    theirs_seen, ours_seen = sections(runc.stdout), sections(ours.stdout)
    for key in ("hostname", "net", "ipc", "caps", "id", "root"):
        assert ours_seen[key] == theirs_seen[key], key
    assert ours_seen["hostname"] == ["same-box"] and ours_seen["net"] == ["lo"]
    assert [row.split()[0] for row in ours_seen["ps"]][:2] == ["PID", "1"]
    assert len(ours_seen["ps"]) == len(theirs_seen["ps"])

    def compared(points: list[str]) -> set[str]:
        return {p for p in points if not p.startswith(NOT_COMPARED)}

    assert compared(ours_seen["mounts"]) == compared(theirs_seen["mounts"])
