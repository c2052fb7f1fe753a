"""The LMDB environment of an index: two databases and a registry.

``meta`` holds the format version, a counter for table ids, and the registry: one JSON
record per indexed layer (keyed by the layer's identity) and per stack (keyed by its
ordered layer tables). ``entries`` holds every table's entries (``codec`` keys).

Durability: writes use ``sync=False, metasync=False``. A commit then costs ~16 us instead
of ~1 ms, and a crash can lose the last transactions but never leaves a torn database
(LMDB's copy-on-write B-tree; ``writemap`` stays off, since with it a crash can corrupt).
Each build is one transaction that writes the entries and their registry record together,
so an index is complete or absent; ``sync()`` follows every build. The index is a cache:
a file that is not an LMDB database, belongs to something else, or has another format
version is set aside and rebuilt, never trusted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import lmdb

log = logging.getLogger("unionfs.index")

FORMAT = b"unionfs-index-4"  # 4: xwhiteouts (empty files marked overlay.whiteout)
MAP_SIZE = 1 << 36  # address space only: the file grows as it fills
READ_AHEAD = 32 << 20  # bytes of the file asked into the page cache at open (see _read_ahead)


class IndexUnavailable(Exception):
    """The index cannot be used here (disk full, unwritable...): serve without it."""


def default_dir() -> str:
    explicit = os.environ.get("UNIONFS_INDEX_DIR")
    if explicit:
        return explicit
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "unionfs", "index")


class IndexEnv:
    """An open index directory. Not thread-safe for writes; reads open their own txn."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            self._open()
        except _Unusable as exc:
            log.warning("index at %s is unusable (%s): starting a new one", path, exc)
            self._set_aside()
            self._open()
        except (OSError, lmdb.Error) as exc:
            raise IndexUnavailable(f"cannot open the index at {path}: {exc}") from None

    def _open(self) -> None:
        try:
            self.env = lmdb.open(
                self.path, map_size=MAP_SIZE, max_dbs=4, subdir=True, readahead=False,
                sync=False, metasync=False, max_readers=256,
            )  # fmt: skip
        except (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError) as exc:
            raise _Unusable(str(exc)) from None
        try:
            self._check_whole()
            self._read_ahead()
            self._check_ours()
            self.meta = self.env.open_db(b"meta")
            self.entries = self.env.open_db(b"entries")
            with self.env.begin(write=True) as txn:
                found = txn.get(b"format", db=self.meta)
                if found is None:
                    if txn.stat(self.entries)["entries"]:
                        raise _Unusable("entries without a format record")
                    txn.put(b"format", FORMAT, db=self.meta)
                elif found != FORMAT:
                    raise _Unusable(f"format {found!r}, this unionfs reads {FORMAT!r}")
        except (lmdb.IncompatibleError, lmdb.CorruptedError, lmdb.InvalidError,
                lmdb.BadValsizeError) as exc:  # fmt: skip
            self.env.close()
            raise _Unusable(str(exc)) from None
        except _Unusable:
            self.env.close()
            raise

    def _check_whole(self) -> None:
        """A file shorter than its own last page would fault (SIGBUS) on the first read."""
        expected = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
        actual = os.path.getsize(os.path.join(self.path, "data.mdb"))
        if actual < expected:
            raise _Unusable(f"data.mdb is truncated ({actual} of {expected} bytes)")

    def _read_ahead(self) -> None:
        """Ask the kernel to read the file (its first READ_AHEAD bytes) into the page cache
        in the background. LMDB maps it with readahead off (MADV_RANDOM, right for a big
        file): on a cold cache every first touch of a page was a disk wait of its own, in
        the request path of a mount's first lookups. The call does not wait for the reads."""
        fd = os.open(os.path.join(self.path, "data.mdb"), os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.posix_fadvise(fd, 0, READ_AHEAD, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)

    def _check_ours(self) -> None:
        """Only our two named databases may be in the main database."""
        with self.env.begin() as txn:
            names = {bytes(key) for key in txn.cursor().iternext(values=False)}
        strangers = names - {b"meta", b"entries"}
        if strangers:
            shown = ", ".join(sorted(repr(n) for n in strangers)[:3])
            raise _Unusable(f"it is another program's LMDB database (it holds {shown})")

    def _set_aside(self) -> None:
        """Move an unusable database out of the way (kept once, as *.unusable)."""
        for name in ("data.mdb", "lock.mdb"):
            where = os.path.join(self.path, name)
            with contextlib.suppress(FileNotFoundError):
                os.replace(where, where + ".unusable")

    def close(self) -> None:
        self.env.close()

    def sync(self) -> None:
        self.env.sync(True)

    # -- transactions --------------------------------------------------------------------
    @contextlib.contextmanager
    def write(self) -> Iterator[lmdb.Transaction]:
        """A write transaction; a full disk or map becomes IndexUnavailable."""
        try:
            with self.env.begin(write=True) as txn:
                yield txn
        except lmdb.MapFullError as exc:
            raise IndexUnavailable(f"the index at {self.path} is full: {exc}") from None
        except lmdb.Error as exc:
            # A full disk shows as ENOSPC or, for a short write at commit, as EIO.
            raise IndexUnavailable(f"cannot write the index at {self.path}: {exc}") from None

    def read(self) -> lmdb.Transaction:
        return self.env.begin(buffers=False)

    # -- registry ------------------------------------------------------------------------
    def new_table(self, txn: lmdb.Transaction) -> int:
        raw = txn.get(b"next", db=self.meta)
        table = int(raw) if raw else 1
        txn.put(b"next", str(table + 1).encode(), db=self.meta)
        return table

    def get_record(self, txn: lmdb.Transaction, key: bytes) -> dict[str, Any] | None:
        raw = txn.get(key, db=self.meta)
        if raw is None:
            return None
        try:
            value = json.loads(bytes(raw))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def put_record(self, txn: lmdb.Transaction, key: bytes, value: dict[str, Any]) -> None:
        txn.put(key, json.dumps(value, sort_keys=True).encode(), db=self.meta)

    def drop_table(self, txn: lmdb.Transaction, table: int) -> None:
        """Delete every entry of *table*."""
        from unionfs.index.codec import table_prefix

        prefix = table_prefix(table)
        cursor = txn.cursor(db=self.entries)
        if not cursor.set_range(prefix):
            return
        while bytes(cursor.key()).startswith(prefix):
            if not cursor.delete():
                break


class _Unusable(Exception):
    pass
