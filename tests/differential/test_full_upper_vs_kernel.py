"""A full upper fails the write that does not fit, as kernel overlayfs does (issue 16.1).

The upper and workdir are on a small tmpfs (8 MiB, or a little more than the reserve
below which unionfs writes without the write-back cache). Kernel overlayfs fails write() itself with
ENOSPC once the upper is full: ``dd`` stops after about 8 MiB, a program that writes until
ENOSPC stops, and ``echo hi > f`` on a full upper says so. With the write-back cache,
unionfs's write() lands in the kernel's page cache and reports success; the error comes
at close, if at all, after the data is gone. What was written and closed before the upper
filled up must stay intact in both.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from mountutil import fresh_dir, tree
from writeutil import Mounted, tmpfs, writable

from unionfs.fuse import room

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


# -- beyond the first full stop -----------------------------------------------------------
Scenario = Callable[[Mounted], dict[str, object]]
# An upper with room for the write-back cache (as root, unionfs lowers the bdi's limit to
# ROOT_DIRTY_LIMIT), and a little more.
ROOMY = (2 * room.floor_for(room.ROOT_DIRTY_LIMIT) >> 20) + 48  # MiB


def digest(path: Path) -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()[:16]


def run(tmp_path: Path, kernel: bool, size: int, scenario: Scenario) -> dict[str, object]:
    """*scenario* on a fresh mount over a *size* MiB upper; its outcome, with each file it
    names in ``files`` as the mount showed it and as the upper holds it after unmount."""
    holder = fresh_dir(tmp_path, "tmpfs")
    layers = [tree({"lower": b"lower data\n", "d": {"x": b"x"}})]
    with tmpfs(holder, f"{size}m"):
        with writable(tmp_path, layers, kernel, holder) as m:
            found = scenario(m)
            names = cast(list[str], found.pop("files"))
            shown = {name: digest(m.path(name)) for name in names}
        found["kept"] = {name: digest(m.upper / name) for name in names} == shown
        found["shown"] = shown
    return found


def write_all(fd: int, total: int, chunk: int = MiB) -> tuple[str, int]:
    """Write *total* bytes in *chunk* pieces: (how it ended, bytes write() took)."""
    took = 0
    while took < total:
        try:
            took += os.write(fd, b"\xcd" * min(chunk, total - took))
        except OSError as exc:
            return f"write: {errno.errorcode[exc.errno or 0]}", took
    return "done", took


def close(fd: int) -> str:
    try:
        os.close(fd)
    except OSError as exc:
        return f"close: {errno.errorcode[exc.errno or 0]}"
    return "closed"


def opened_with_room(m: Mounted) -> dict[str, object]:
    """A file opened while the upper had room, written past the free space after another
    writer (dd) filled the upper."""
    fd = os.open(m.path("held"), os.O_WRONLY | os.O_CREAT, 0o644)
    first = write_all(fd, MiB)
    out = subprocess.run(
        ["dd", "if=/dev/zero", f"of={m.path('dd')}", "bs=1M", f"count={2 * ROOMY}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    copied = re.search(r"^(\d+) bytes", out.stderr, re.MULTILINE)
    past = write_all(fd, 64 * MiB)
    return {
        "first": first,
        "dd": (out.returncode, "No space left" in out.stderr),
        "dd copied": int(copied.group(1)) if copied else -1,
        "past": past[0],
        "close": close(fd),
        "files": ["held", "dd"],
    }


def test_a_file_opened_with_room_stops_at_a_full_upper_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    found = {kernel: run(tmp_path, kernel, ROOMY, opened_with_room) for kernel in (True, False)}
    kern, ours = found[True], found[False]
    for f in (kern, ours):
        assert f["kept"], f  # the upper after unmount holds what the mount showed
        assert f["shown"]["dd"][0] == f["dd copied"]  # type: ignore[index]
    assert ours["first"] == kern["first"] == ("done", MiB)
    assert ours["dd"] == kern["dd"] == (1, True)
    assert ours["past"] == kern["past"] == "write: ENOSPC"
    assert ours["close"] == kern["close"] == "closed"
    # The cost of the cache: a writer that caches is stopped while the floor (what the
    # kernel may still hold dirty) is free; it never gets further than the kernel's.
    floor = room.floor_for(room.ROOT_DIRTY_LIMIT)
    assert kern["dd copied"] - floor <= ours["dd copied"] <= kern["dd copied"]  # type: ignore[operator]


def fill(m: Mounted) -> int:
    """dd until the upper is full: the bytes dd says it wrote."""
    out = subprocess.run(
        ["dd", "if=/dev/zero", f"of={m.path('fill')}", "bs=1M", "count=20"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    copied = re.search(r"^(\d+) bytes", out.stderr, re.MULTILINE)
    assert out.returncode != 0 and "No space left" in out.stderr, out.stderr
    return int(copied.group(1)) if copied else -1


def append(path: Path, size: int) -> tuple[str, int]:
    """open(O_APPEND) and write *size* bytes: how it ended, and what write() took."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except OSError as exc:
        return f"open: {errno.errorcode[exc.errno or 0]}", 0
    ended, took = write_all(fd, size)
    closed = close(fd)  # always: a descriptor left open would keep the mount alive
    return (ended if ended != "done" else closed), took


def appends_and_room_again(m: Mounted) -> dict[str, object]:
    """Appends on a full upper, to a file copied up before and to one not yet copied up;
    then room again after rm, and the same appends."""
    with open(m.path("lower"), "ab") as f:  # copied up while there is room
        f.write(b"appended\n")
    found: dict[str, object] = {"filled": fill(m)}
    found["append to a copy"] = append(m.path("lower"), MiB)
    found["append to a lower file"] = append(m.path("d/x"), MiB)
    found["echo"] = echo_hi(m)
    os.unlink(m.path("fill"))
    found["after rm: append to a copy"] = append(m.path("lower"), MiB)
    found["after rm: append to a lower file"] = append(m.path("d/x"), MiB)
    fd = os.open(m.path("new"), os.O_WRONLY | os.O_CREAT, 0o644)
    found["after rm: a new file"] = write_all(fd, 2 * MiB), close(fd)
    found["files"] = ["lower", "d/x", "new", "hi"]
    return found


def test_appends_on_a_full_upper_and_room_after_rm_as_on_the_kernel(tmp_path: Path) -> None:
    kern, ours = (run(tmp_path, k, UPPER_SIZE, appends_and_room_again) for k in (True, False))
    assert kern["kept"] and ours["kept"]
    assert kern.pop("shown") == ours.pop("shown")
    # tmpfs: the same pages fill up, whoever writes them (the workdir takes none).
    assert abs(kern.pop("filled") - ours.pop("filled")) <= 256 << 10  # type: ignore[operator]
    assert ours == kern
