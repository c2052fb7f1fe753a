"""pyfuse3's request loop (third_party/pyfuse3 patch 0015): the task that read a request keeps
reading while its handlers finish without waiting, and a handler that waits holds up no
other request. A toy file system (toyfs.py) in a child process, feature "gate": a lookup of
``wait-*`` waits until a lookup of ``open``."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from patience import Deadline, wait_until
from toymount import Toy

ToyFactory = Callable[..., AbstractContextManager[Toy]]

AT_FDCWD = -100
AT_STATX_FORCE_SYNC = 0x2000
STATX_BASIC_STATS = 0x7FF
_libc = ctypes.CDLL(None, use_errno=True)


def statx_sync(path: Path) -> None:
    """statx(2) with AT_STATX_FORCE_SYNC: the kernel asks the file system (GETATTR) every
    time, whatever it has cached."""
    buf = ctypes.create_string_buffer(256)
    if _libc.statx(AT_FDCWD, os.fsencode(path), AT_STATX_FORCE_SYNC, STATX_BASIC_STATS, buf):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))


def test_handlers_that_do_not_wait_are_served_by_the_task_that_reads(toy: ToyFactory) -> None:
    # Stock pyfuse3 hands the read lock to its other worker after every read: two task
    # switches per request, the getattrs alternating between two tasks.
    with toy() as t:
        (t.mnt / "f").write_bytes(b"x")
        for _ in range(40):
            statx_sync(t.mnt / "f")
        tasks = t.stats()["getattr_tasks"][-40:]
    assert len(tasks) == 40
    assert len(set(tasks)) == 1, tasks


def test_waiting_handlers_hold_up_no_other_request(toy: ToyFactory) -> None:
    waiters = 4
    errors: dict[int, int | None] = {}

    def lookup(t: Toy, i: int) -> None:
        try:
            os.stat(t.mnt / f"d{i}" / f"wait-{i}")
            errors[i] = None
        except OSError as exc:
            errors[i] = exc.errno

    with toy("gate") as t:
        (t.mnt / "f").write_bytes(b"x")
        for i in range(waiters):  # the kernel serializes lookups in one directory
            (t.mnt / f"d{i}").mkdir()
        threads = [
            threading.Thread(target=lookup, args=(t, i), daemon=True) for i in range(waiters)
        ]
        for th in threads:
            th.start()
        # All four wait in their handlers at once, and the stats requests polling for
        # that are served meanwhile.
        assert wait_until(lambda: t.stats()["waiting"] == waiters, 60), t.stats()
        for _ in range(20):
            statx_sync(t.mnt / "f")
        assert t.stats()["waiting"] == waiters
        assert not errors
        open_gate_and_join(t, threads)
        assert t.stats()["waiting"] == 0
    assert errors == dict.fromkeys(range(waiters), 2)  # ENOENT: no such names


def open_gate_and_join(t: Toy, threads: list[threading.Thread]) -> None:
    """Let the waiting lookups go (looking up "open" opens the gate) and wait for each."""
    with contextlib.suppress(FileNotFoundError):
        os.stat(t.mnt / "open")
    deadline = Deadline(60)
    for th in threads:
        th.join(deadline.left())
        assert not th.is_alive(), f"a waiting lookup did not finish in {deadline}"


def test_with_parallel_dirops_lookups_in_one_directory_wait_at_once(toy: ToyFactory) -> None:
    # Without FUSE_PARALLEL_DIROPS (never sent by libfuse 3.14, not wanted by default by 3.17)
    # the kernel sends one lookup of a directory at a time: one waiting lookup held up the
    # other three, in its own directory only.
    waiters = 4
    errors: dict[int, int | None] = {}

    def lookup(t: Toy, i: int) -> None:
        try:
            os.stat(t.mnt / "d" / f"wait-{i}")
            errors[i] = None
        except OSError as exc:
            errors[i] = exc.errno

    with toy("gate", "parallel_dirops") as t:
        (t.mnt / "d").mkdir()
        threads = [
            threading.Thread(target=lookup, args=(t, i), daemon=True) for i in range(waiters)
        ]
        for th in threads:
            th.start()
        all_waited = wait_until(lambda: t.stats()["waiting"] == waiters, 60)
        seen = t.stats()["waiting"]
        open_gate_and_join(t, threads)  # whatever was seen
    assert all_waited, f"{seen} of {waiters} lookups in one directory waited at once"
    assert errors == dict.fromkeys(range(waiters), 2)  # ENOENT: no such names
