"""A full upper fails the write that does not fit, as kernel overlayfs does (issue 16.1).

The upper and workdir are on an 8 MiB tmpfs. Kernel overlayfs fails write() itself with
ENOSPC once the upper is full: ``dd`` stops after about 8 MiB, a program that writes until
ENOSPC stops, and ``echo hi > f`` on a full upper says so. With the write-back cache,
unionfs's write() lands in the kernel's page cache and reports success; the error comes
at close, if at all, after the data is gone. What was written and closed before the upper
filled up must stay intact in both.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mountutil import fresh_dir, tree
from writeutil import Mounted, tmpfs, writable

MiB = 1 << 20
UPPER_SIZE = 8  # MiB
LOOP_LIMIT = 64  # MiB: a writer that never meets ENOSPC stops here (the bug: it would not)
KEPT = os.urandom(MiB)  # written and closed before the upper fills


@contextlib.contextmanager
def small_upper(tmp_path: Path, kernel: bool) -> Iterator[Mounted]:
    holder = fresh_dir(tmp_path, "tmpfs")
    layers = [tree({"lower": b"lower data\n", "d": {"x": b"x"}})]
    with tmpfs(holder, f"{UPPER_SIZE}m"), writable(tmp_path, layers, kernel, holder) as m:
        yield m


def dd(m: Mounted) -> tuple[int, int, bool]:
    """``dd`` of 20 MiB: (exit status, bytes it says it wrote, whether it said ENOSPC)."""
    out = subprocess.run(
        ["dd", "if=/dev/zero", f"of={m.path('dd')}", "bs=1M", "count=20"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    copied = re.search(r"^(\d+) bytes", out.stderr, re.MULTILINE)
    return out.returncode, int(copied.group(1)) if copied else -1, "No space left" in out.stderr


def write_until_enospc(path: Path) -> tuple[str, int]:
    """Write 1 MiB at a time until a call fails: (which call failed and how, MiB taken)."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while written < LOOP_LIMIT:
            try:
                os.write(fd, b"\xab" * MiB)
            except OSError as exc:
                return f"write: {errno.errorcode[exc.errno or 0]}", written
            written += 1
    finally:
        try:
            os.close(fd)
        except OSError as exc:  # where the write-back cache reports it, if anywhere
            return f"close: {errno.errorcode[exc.errno or 0]}", written
    return "never", written


def echo_hi(m: Mounted) -> tuple[int, bool]:
    out = subprocess.run(
        ["bash", "-c", 'echo hi > "$1"', "bash", str(m.path("hi"))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return out.returncode, "No space left" in out.stderr


def behaviour(m: Mounted) -> dict[str, object]:
    """What a user sees of a filling upper: dd, a write loop, echo into a full upper."""
    status, copied, said = dd(m)
    found: dict[str, object] = {
        "dd fails": status != 0,
        "dd says ENOSPC": said,
        "dd wrote no more than fits": 0 <= copied <= UPPER_SIZE * MiB,
    }
    os.unlink(m.path("dd"))
    failed, taken = write_until_enospc(m.path("loop"))
    found["loop stops with"] = failed
    found["loop wrote no more than fits"] = taken <= UPPER_SIZE
    found["echo into a full upper"] = echo_hi(m)
    return found


def test_kernel_overlayfs_fails_the_write_that_does_not_fit(tmp_path: Path) -> None:
    """The oracle's behaviour, spelled out."""
    with small_upper(tmp_path, kernel=True) as m:
        assert behaviour(m) == {
            "dd fails": True,
            "dd says ENOSPC": True,
            "dd wrote no more than fits": True,
            "loop stops with": "write: ENOSPC",
            "loop wrote no more than fits": True,
            "echo into a full upper": (1, True),
        }


def test_a_full_upper_fails_the_write_as_on_the_kernel(tmp_path: Path) -> None:
    found = {}
    for kernel in (True, False):
        with small_upper(tmp_path, kernel) as m:
            found[kernel] = behaviour(m)
    assert found[False] == found[True]


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel", "unionfs"])
def test_what_was_closed_before_the_upper_filled_stays_intact(tmp_path: Path, kernel: bool) -> None:
    """Filling the upper (and failing) must not cost a byte of what was already closed,
    neither through the mount nor in the upper after unmount."""
    with small_upper(tmp_path, kernel) as m:
        m.path("kept").write_bytes(KEPT)
        with open(m.path("lower"), "ab") as f:  # a copy-up before the upper fills
            f.write(b"appended\n")
        dd(m)
        write_until_enospc(m.path("loop"))
        assert m.path("kept").read_bytes() == KEPT
        assert m.path("lower").read_bytes() == b"lower data\nappended\n"
        # (the upper's tmpfs goes away with the mount: read it now)
        assert (m.upper / "kept").read_bytes() == KEPT
        assert (m.upper / "lower").read_bytes() == b"lower data\nappended\n"
