"""The error boundary of every FUSE handler, and the one place every request passes.

An ``OSError`` becomes its errno; any other exception is a bug, logged with its traceback
(at ERROR, which the tests look for) and answered EIO, because pyfuse3 lets any exception
other than FUSEError end the whole mount. With ``UNIONFS_PROFILE=FILE`` in the environment,
each handler also counts its requests, their seconds and the bytes it answered, written to
FILE as JSON at unmount and on SIGUSR1 (the bench's profile mode reads one workload's
share that way).
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import pyfuse3

log = logging.getLogger("unionfs.fuse")

P = ParamSpec("P")
R = TypeVar("R")

PROFILE_ENV = "UNIONFS_PROFILE"
LOGGED_BYTES = 64  # a longer bytes argument (write data, xattr values) is logged as its size

Handler = Callable[P, Coroutine[Any, Any, R]]


class Profile:
    """Requests answered and seconds spent (await included) per handler name."""

    def __init__(self) -> None:
        self.counts: dict[str, list[float]] = {}

    def add(self, name: str, seconds: float, nbytes: int = 0) -> None:
        entry = self.counts.setdefault(name, [0, 0.0, 0])
        entry[0] += 1
        entry[1] += seconds
        entry[2] += nbytes

    def dump(self, path: str) -> None:
        table = {k: {"requests": int(n), "seconds": s, "bytes": int(b)}
                 for k, (n, s, b) in self.counts.items()}  # fmt: skip
        with open(path, "w") as f:
            json.dump(table, f, indent=1, sort_keys=True)


# Decided once, at import: handlers decorated while it is None pay nothing for profiling.
PROFILE: Profile | None = Profile() if os.environ.get(PROFILE_ENV) else None


def dump_profile() -> None:
    """Write the profile to the file $UNIONFS_PROFILE names and start counting afresh (a
    no-op when not profiling). Called at unmount, and on SIGUSR1 while profiling."""
    path = os.environ.get(PROFILE_ENV)
    if PROFILE is not None and path:
        PROFILE.dump(path + ".tmp")
        os.replace(path + ".tmp", path)
        PROFILE.counts.clear()


def _shown(args: tuple[object, ...]) -> tuple[object, ...]:
    """*args* for a debug line: long byte strings as their size (``-d`` must not log data)."""
    return tuple(
        f"<{len(a)} bytes>"
        if isinstance(a, (bytes, bytearray, memoryview)) and len(a) > LOGGED_BYTES
        else a
        for a in args
    )


def handler(fn: Handler[P, R]) -> Handler[P, R]:
    """Answer every failure of one request with an errno; never let it end the mount."""
    name = fn.__name__

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s%r", name, _shown(args[1:]))
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("ERROR: %s%r failed", name, _shown(args[1:]))
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper if PROFILE is None else _timed(wrapper, name, PROFILE)


def _timed(fn: Handler[P, R], name: str, profile: Profile) -> Handler[P, R]:
    @functools.wraps(fn)
    async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        start = time.perf_counter()
        nbytes = 0
        try:
            result = await fn(*args, **kwargs)
            if isinstance(result, bytes):
                nbytes = len(result)  # read: what the kernel was served (the bench's "read")
            return result
        finally:
            profile.add(name, time.perf_counter() - start, nbytes)

    return timed
