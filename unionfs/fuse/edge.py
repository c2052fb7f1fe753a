"""The error boundary of every FUSE handler.

An ``OSError`` becomes its errno; any other exception is a bug, logged with its traceback
(at ERROR, which the tests look for) and answered EIO, because pyfuse3 lets any exception
other than FUSEError end the whole mount.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import pyfuse3

log = logging.getLogger("unionfs.fuse")

P = ParamSpec("P")
R = TypeVar("R")


Handler = Callable[P, Coroutine[Any, Any, R]]


def handler(fn: Handler[P, R]) -> Handler[P, R]:
    """Answer every failure of one request with an errno; never let it end the mount."""
    name = fn.__name__

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s%r", name, args[1:])
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("ERROR: %s%r failed", name, args[1:])
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper
