"""A mount's lazy layers opened in a thread of their own: parsing each TOC and making the
registry client (a few tenths of a second, more under load) overlap the mount going live
and the container's set-up, instead of coming before them. ``fuse.lazyhook.LazyData``
for the daemon: a call about one of these layers waits until they are open; a call about
any other layer never waits. Must not be made before a fork (it starts a thread).
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable, Collection

from unionfs.lazy.serving import STOP_WAIT, LazyMount

log = logging.getLogger("unionfs.lazy")


class OpeningMount:
    """The ``LazyMount`` that *open_* makes, made in a thread started at once. *trees*: the
    tree directories it will hold. Invariant: until it is made, and forever if making it
    failed, every file of those trees counts as pending (its reads fail with EIO): a
    placeholder's zeros are never served for want of knowing better."""

    def __init__(self, trees: Collection[str], open_: Callable[[], LazyMount]) -> None:
        self.trees = frozenset(trees)
        self._mount: LazyMount | None = None
        self._error = ""
        self._ready = threading.Event()
        self._lock = threading.Lock()  # orders start_prefetch's start against stop
        self._stopped = False
        self._starter: threading.Thread | None = None
        self._thread = threading.Thread(target=self._open, args=(open_,), name="lazy-open",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _open(self, open_: Callable[[], LazyMount]) -> None:
        try:
            self._mount = open_()
        except Exception as exc:  # reported here, and to every read of these layers
            self._error = str(exc) or type(exc).__name__
            log.error("the lazy layers cannot be opened: %s (their files' reads fail)",
                      self._error)  # fmt: skip
        finally:
            self._ready.set()

    def opened(self) -> LazyMount:
        """The mount's lazy layers, once open (waits); OSError EIO if they could not be."""
        self._ready.wait()
        if self._mount is None:
            raise OSError(errno.EIO, f"the lazy layers cannot be opened: {self._error}")
        return self._mount

    def pending(self, layer: str, path: bytes) -> bool:
        if layer not in self.trees:
            return False
        try:
            return self.opened().pending(layer, path)
        except OSError:
            return True  # not known: read through ``read``, which fails, never as zeros

    def read(self, layer: str, path: bytes, offset: int, size: int) -> bytes:
        return self.opened().read(layer, path, offset, size)

    def fill(self, layer: str, path: bytes) -> None:
        self.opened().fill(layer, path)

    def start_prefetch(self) -> None:
        """``LazyMount.start_prefetch`` once the layers are open (from a thread: the caller
        never waits)."""

        def start() -> None:
            self._ready.wait()
            with self._lock:
                if self._mount is not None and not self._stopped:
                    self._mount.start_prefetch()

        self._starter = threading.Thread(target=start, name="lazy-prefetch-start", daemon=True)
        self._starter.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._thread.join(STOP_WAIT)
        if self._starter is not None:
            self._starter.join(STOP_WAIT)
        with self._lock:
            if self._mount is not None:
                self._mount.stop()
