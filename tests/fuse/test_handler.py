"""The error boundary of every handler: OSError -> its errno, anything else -> EIO and a log."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path
from unittest.mock import ANY

import pyfuse3
import pytest

from unionfs.fuse import edge
from unionfs.fuse.edge import handler

from .conftest import MakeOps
from .driver import CTX, ROOT, call, fuse_errno


class Handlers:
    """A stand-in Operations object: handlers are methods, as in UnionOperations."""

    @handler
    async def raises(self, exc: BaseException) -> None:
        raise exc

    @handler
    async def answers(self, value: int) -> int:
        return value + 1


def test_handler_passes_the_answer_through() -> None:
    assert call(Handlers().answers, 41) == 42


def test_handler_keeps_the_handlers_name() -> None:
    assert Handlers.raises.__name__ == "raises"


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (OSError(errno.ENOENT, "gone"), errno.ENOENT),
        (FileNotFoundError(errno.ENOENT, "gone"), errno.ENOENT),
        (PermissionError(errno.EACCES, "no"), errno.EACCES),
        (OSError(errno.EXDEV, "cross"), errno.EXDEV),
    ],
)
def test_handler_turns_oserror_into_fuseerror_with_its_errno(
    exc: OSError, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="unionfs"):
        assert fuse_errno(Handlers().raises, exc) == code
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_handler_turns_oserror_without_errno_into_eio() -> None:
    assert fuse_errno(Handlers().raises, OSError("no errno")) == errno.EIO


def test_handler_lets_fuseerror_through_unchanged() -> None:
    original = pyfuse3.FUSEError(errno.EACCES)
    with pytest.raises(pyfuse3.FUSEError) as info:
        call(Handlers().raises, original)
    assert info.value is original


@pytest.mark.parametrize("exc", [RuntimeError("bug"), KeyError("k"), AssertionError()])
def test_handler_turns_unexpected_exception_into_eio_and_logs_it(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="unionfs"):
        assert fuse_errno(Handlers().raises, exc) == errno.EIO
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "raises" in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[1] is exc


def test_a_bug_inside_a_real_handler_is_answered_eio(
    make_ops: MakeOps, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ops = make_ops({"a": ""})

    def broken() -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ops.stack.layers[0], "statvfs", broken)
    with caplog.at_level(logging.ERROR, logger="unionfs"):
        assert fuse_errno(ops.statfs, CTX) == errno.EIO
    assert any(r.levelno >= logging.ERROR and "statfs" in r.getMessage() for r in caplog.records)
    assert call(ops.getattr, ROOT, CTX).st_ino == ROOT  # still answering


def test_forget_logs_instead_of_raising(
    make_ops: MakeOps, caplog: pytest.LogCaptureFixture
) -> None:
    ops = make_ops({"a": ""})
    with caplog.at_level(logging.ERROR, logger="unionfs"):
        call(ops.forget, [("not", "numbers")])
        call(ops.forget, 42)
    assert call(ops.getattr, ROOT, CTX).st_ino == ROOT


def test_debug_log_shows_the_size_of_write_data_not_the_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Writer:
        @handler
        async def write(self, fh: int, off: int, buf: bytes) -> int:
            return len(buf)

    with caplog.at_level(logging.DEBUG, logger="unionfs"):
        assert call(Writer().write, 7, 0, b"\xab" * 4096) == 4096
        assert call(Writer().write, 7, 0, b"short") == 5
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "write(7, 0, '<4096 bytes>')" in text
    assert "\\xab" not in text
    assert "write(7, 0, b'short')" in text  # short arguments are shown as they are


def test_profile_counts_requests_seconds_and_bytes_per_handler(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    profile = edge.Profile()
    monkeypatch.setattr(edge, "PROFILE", profile)

    class Profiled:
        @handler
        async def lookup(self, value: int) -> int:
            return value

        @handler
        async def unlink(self) -> None:
            raise OSError(errno.ENOENT, "gone")

        @handler
        async def read(self, size: int) -> bytes:
            return b"x" * size

    ops = Profiled()
    assert [call(ops.lookup, n) for n in range(3)] == [0, 1, 2]
    assert call(ops.read, 5) == b"xxxxx" and call(ops.read, 7) == b"x" * 7
    assert fuse_errno(ops.unlink) == errno.ENOENT
    assert Profiled.lookup.__name__ == "lookup"
    path = tmp_path / "profile.json"
    monkeypatch.setenv(edge.PROFILE_ENV, str(path))
    edge.dump_profile()
    table = json.loads(path.read_text())
    assert {k: v["requests"] for k, v in table.items()} == {"lookup": 3, "unlink": 1, "read": 2}
    assert table["read"]["bytes"] == 12 and table["lookup"]["bytes"] == 0  # what reads served
    assert all(v["seconds"] >= 0 for v in table.values())
    # A dump starts counting afresh: the next one holds only what came after it.
    call(ops.lookup, 9)
    edge.dump_profile()
    assert json.loads(path.read_text()) == {"lookup": {"requests": 1, "seconds": ANY, "bytes": 0}}


def test_handlers_are_not_timed_unless_profiling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(edge, "PROFILE", None)
    path = tmp_path / "profile.json"
    monkeypatch.setenv(edge.PROFILE_ENV, str(path))
    assert call(Handlers().answers, 1) == 2
    edge.dump_profile()
    assert not path.exists()
