"""Whichever way a mount ends, the upper holds everything that was written and closed
(issue 16.2, last paragraph): ``kill -TERM`` of the daemon, ``fusermount3 -u``, ``umount``.

Files are written through the mount without fsync (so with the write-back cache much of it
may still be the kernel's when they are closed), copied up, truncated, renamed and chmod'ed;
then the mount is ended and, once the daemon has exited, the upper is read directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mountutil import daemon_pid, is_mounted, tree
from patience import Deadline
from writeutil import Mounted, writable

MiB = 1 << 20
BIG = os.urandom(5 * MiB + 123)
DEADLINE = 120.0  # generous: the machine is shared

EXPECTED = {
    "small": b"small file\n",
    "big": BIG,
    "chunks": b"".join(bytes([i]) * 4096 for i in range(256)),
    "lower": b"lower data\n" + b"appended\n",
    "renamed": b"written, closed, renamed\n",
    "truncated": b"keep",
    "d/deep": b"in a lower directory\n",
}


def write_everything(m: Mounted) -> None:
    m.path("small").write_bytes(EXPECTED["small"])
    m.path("big").write_bytes(BIG)
    with open(m.path("chunks"), "wb") as f:
        for i in range(256):
            f.write(bytes([i]) * 4096)
    with open(m.path("lower"), "ab") as f:
        f.write(b"appended\n")
    m.path("before-rename").write_bytes(EXPECTED["renamed"])
    m.path("before-rename").rename(m.path("renamed"))
    m.path("truncated").write_bytes(b"keep this, not the rest")
    os.truncate(m.path("truncated"), 4)
    m.path("d/deep").write_bytes(EXPECTED["d/deep"])
    os.chmod(m.path("small"), 0o600)


def end(m: Mounted, how: str) -> None:
    """End the mount *how*; return once the daemon has exited (it stays our zombie)."""
    pid = daemon_pid(m.mnt)
    if how == "SIGTERM":
        os.kill(pid, signal.SIGTERM)
    else:
        command = ["fusermount3", "-u"] if how == "fusermount3 -u" else ["umount"]
        subprocess.run([*command, str(m.mnt)], check=True)
    deadline = Deadline(DEADLINE)
    while not exited(pid):
        assert not deadline.expired(), f"the daemon did not exit after {how}"
        time.sleep(0.01)
    assert not is_mounted(m.mnt)


def exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("how", ["SIGTERM", "fusermount3 -u", "umount"])
def test_the_upper_holds_what_was_written_and_closed_however_the_mount_ends(
    tmp_path: Path, how: str
) -> None:
    layers = [tree({"lower": b"lower data\n", "truncated": b"old", "d": {"x": b"x"}})]
    with writable(tmp_path, layers) as m:
        write_everything(m)
        end(m, how)
    found = {name: (m.upper / name).read_bytes() for name in EXPECTED}
    assert [name for name in EXPECTED if found[name] != EXPECTED[name]] == []
    assert not (m.upper / "before-rename").exists()
    assert (m.upper / "small").stat().st_mode & 0o777 == 0o600
