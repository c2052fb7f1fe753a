"""The error boundary of every handler: OSError -> its errno, anything else -> EIO and a log."""

from __future__ import annotations

import errno
import logging

import pyfuse3
import pytest

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
