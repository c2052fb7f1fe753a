"""A reader racing a writer that creates, deletes and creates one name again only ever
sees the files written there (issue 16.2, the race without a held descriptor).

When node ids were the upper's inode numbers, ext4 gave a deleted file's number to the
next file while the kernel still held the old inode, and a reader could get the old
file's size with the new one's data (9 in 2,730 rounds in 10 s; kernel overlayfs: none).
The upper is a loop-mounted ext4 (tmpfs does not reuse numbers the same way). Slow tier
only: a race needs time to show (test_reused_inodes_vs_kernel shows the cause at once).
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest
from mountutil import fresh_dir, tree
from writeutil import ext4, writable

SECONDS = 30.0  # of racing: the old bug showed in some 10-s runs, never in 4-s ones


def record(i: int) -> bytes:
    """File *i*'s whole content: its number, then filler to a length of its own."""
    head = b"%d:" % i
    return head + b"x" * (100 + (i % 50) * 97 - len(head))


def race(mnt: Path, seconds: float) -> tuple[int, list[str]]:
    """Rounds the writer made, and what the reader found wrong."""
    name = mnt / "racy"
    findings: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set() and len(findings) < 20:
            # The kernel holds what the name was (an O_PATH descriptor is enough) while
            # the name is read again: the writer may have deleted and made it meanwhile.
            try:
                was = os.open(name, os.O_PATH)
            except FileNotFoundError:
                continue
            try:
                fd = os.open(name, os.O_RDONLY)
            except FileNotFoundError:
                os.close(was)
                continue
            try:
                size = os.fstat(fd).st_size
                data = os.pread(fd, 1 << 16, 0)
            except OSError as exc:
                findings.append(f"read: {errno.errorcode.get(exc.errno or 0)}")
                continue
            finally:
                os.close(fd)
                os.close(was)
            if not data:
                continue  # opened between the create and the write
            # A write racing the read may show part of the record, never anything else.
            head = data.split(b":", 1)[0]
            whole = record(int(head)) if head.isdigit() else b""
            if not whole.startswith(data) or size > len(whole):
                findings.append(f"read {len(data)} bytes (size {size}): {data[:20]!r}")

    reader = threading.Thread(target=read)
    reader.start()
    rounds = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and len(findings) < 20:
            made = record(rounds)
            name.write_bytes(made)
            # What the writer just made, the name shows: no other file's size or data.
            size, data = os.stat(name).st_size, name.read_bytes()
            if (size, data) != (len(made), made):
                findings.append(f"wrote {len(made)} bytes, found {len(data)} (size {size})")
            os.unlink(name)
            rounds += 1
    finally:
        stop.set()
        reader.join()
    return rounds, findings


@pytest.mark.slow
@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "unionfs"])
def test_a_reader_racing_create_and_unlink_of_one_name_sees_whole_files(
    tmp_path: Path, kernel: bool
) -> None:
    disk = fresh_dir(tmp_path, "ext4")
    with ext4(disk, "64M"), writable(disk, [tree({"other": b"x"})], kernel) as m:
        rounds, findings = race(m.mnt, SECONDS)
    assert rounds > 0 and findings == []
