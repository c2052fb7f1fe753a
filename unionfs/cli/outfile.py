"""Where ``save`` and ``export-layer`` write: ``-o PATH``, ``-o -`` or stdout, as podman.

A regular file (or a new one) is replaced whole or not at all: a temp file beside it, then a
rename. Anything else at PATH is never replaced by a rename: a FIFO or a character device
(or a symlink to one, like /dev/stdout) is written through; a symlink to a regular file has
its target replaced (the link stays); a directory, a block device, a socket or a dangling
symlink is refused in one line. Without ``-o`` the data goes to stdout unless that is a
terminal (refused, as podman refuses).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import typing
from collections.abc import Iterator

from unionfs.errors import UserError


@contextlib.contextmanager
def _replace(path: str) -> Iterator[typing.BinaryIO]:
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "xb") as f:
            yield typing.cast(typing.BinaryIO, f)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def _stdout() -> Iterator[typing.BinaryIO]:
    sys.stdout.flush()
    with os.fdopen(os.dup(1), "wb") as f:
        yield typing.cast(typing.BinaryIO, f)


@contextlib.contextmanager
def output(path: str | None, what: str) -> Iterator[typing.BinaryIO]:
    """A stream for *what* (``an image archive``) to write to, as the module says."""
    if path is None or path == "-":
        if path is None and os.isatty(1):
            raise UserError(f"refusing to write {what} to a terminal: give -o FILE or "
                            "redirect the output")  # fmt: skip
        with _stdout() as f:
            yield f
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise UserError(f"{path} is a symlink to nothing: not writing through it") from None
        if stat.S_ISREG(st.st_mode):
            path = os.path.realpath(path)  # replace the file; the link stays
    if st is None or stat.S_ISREG(st.st_mode):
        with _replace(path) as f:
            yield f
        return
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
        with open(path, "wb") as f:  # written through: it stays what it is
            yield typing.cast(typing.BinaryIO, f)
        return
    kind = ("a directory" if stat.S_ISDIR(st.st_mode) else
            "a block device" if stat.S_ISBLK(st.st_mode) else "a socket")  # fmt: skip
    raise UserError(f"{path} is {kind}: give a file, a FIFO or - for stdout")
