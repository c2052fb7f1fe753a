"""The data of lazy layers, for the mount daemon (what ``fuse.lazyhook.LazyData`` asks):
which files of a layer's tree are still placeholders, their bytes read through the
registry's ranges chunk by chunk (each checked against the TOC's digest before a byte is
served, kept in the shared chunk cache), and a file filled in its tree once all its chunks
are here. A failed or refused fetch is OSError EIO for that read alone: the next read
tries again, so the mount recovers when the registry does. Runs in worker threads.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import typing
from collections.abc import Callable, Sequence

from unionfs.lazy import layout, verify
from unionfs.lazy.chunkcache import ChunkCache
from unionfs.registry.auth import RegistryError
from unionfs.safepath import DirFdCache, LayerDir
from unionfs.store.chunkread import CorruptChunk, LayerReader, RangeSource
from unionfs.store.toc import Chunk, LayerToc, TocEntry

log = logging.getLogger("unionfs.lazy")
STOP_WAIT = 10.0  # seconds the unmount waits for a prefetch to notice it should stop


parse = layout.parse_toc


def regular_files(toc: LayerToc) -> dict[bytes, TocEntry]:
    """Every path of a non-empty regular file, hard links included, -> the file's entry."""
    files: dict[bytes, TocEntry] = {}
    for entry in toc.entries:
        if entry.kind == "reg":
            files.pop(entry.path, None)
            if entry.size:
                files[entry.path] = entry
        elif entry.kind == "hardlink" and entry.linkname in files:
            files[entry.path] = files[entry.linkname]
        else:
            files.pop(entry.path, None)
    return files


class LazyLayer:
    """One lazy layer's tree and its blob. Invariant: a path is in ``filled`` only after
    its whole data was written into the tree and synced; until then its placeholder's
    bytes (zeros) are never served."""

    def __init__(self, directory: str, source: RangeSource, cache: ChunkCache,
                 whole: Callable[[Callable[[typing.BinaryIO], None]], None]) -> None:  # fmt: skip
        """*whole(consume)* hands *consume* a reader of the whole blob (one that raises at
        its end unless the blob matches its digest): what the prefetch reads."""
        self.dir = directory
        self.whole = whole
        self.record, data = layout.load(directory)
        self.toc = parse(self.record, data)
        self.reader = LayerReader(source, self.toc)
        self.cache = cache
        self.files = regular_files(self.toc)
        self.filled = layout.filled(directory)
        self._fdcache = DirFdCache()
        self.tree = LayerDir(os.path.join(directory, layout.TREE), self._fdcache)
        self._lock = threading.Lock()  # held while a file is written into the tree
        self.refused = 0  # chunks that did not match their digest

    def close(self) -> None:
        self.tree.close()
        self._fdcache.close()

    def pending(self, path: bytes) -> bool:
        entry = self.files.get(path)
        return entry is not None and entry.path not in self.filled

    def _chunks(self, chunks: Sequence[Chunk]) -> list[bytes]:
        """Each chunk's bytes, from the cache or fetched in one ``read_ranges`` (verified),
        what is fetched kept in the cache."""
        got: dict[int, bytes] = {}
        fetch = []
        for i, c in enumerate(chunks):
            data = self.cache.get(c.digest)
            if data is None:
                fetch.append(i)
            else:
                got[i] = data
        if fetch:
            try:
                fetched = self.reader.read_chunks([chunks[i] for i in fetch])
            except CorruptChunk as exc:
                self.refused += 1
                log.warning("refused a chunk of blob %s: %s", self.record.digest[:19], exc)
                raise
            for i, data in zip(fetch, fetched, strict=True):
                self.cache.put(chunks[i].digest, data)
                got[i] = data
        return [got[i] for i in range(len(chunks))]

    def read(self, path: bytes, offset: int, size: int) -> bytes:
        """Bytes ``[offset, offset + size)`` of the pending file *path*, verified."""
        entry = self.files[path]
        end = min(entry.size, offset + size)
        if offset >= end:
            return b""
        wanted = [c for c in entry.chunks
                  if offset < c.file_offset + c.size and c.file_offset < end]  # fmt: skip
        pieces = [self.cache.read(c.digest, max(0, offset - c.file_offset),
                                  min(end, c.file_offset + c.size) - max(offset, c.file_offset))
                  for c in wanted]  # fmt: skip
        if any(p is None for p in pieces):  # not all here: fetch them (then the slices)
            base = wanted[0].file_offset
            data = b"".join(self._chunks(wanted))[offset - base : end - base]
        else:
            data = b"".join(typing.cast(list[bytes], pieces))
        if all(self.cache.has(c.digest) for c in entry.chunks):
            self._fill(entry, self._chunks(entry.chunks))
        return data

    def fill(self, path: bytes) -> None:
        """Make the pending file *path* whole in the tree (before a copy-up reads it)."""
        entry = self.files[path]
        if entry.path not in self.filled:
            self._fill(entry, self._chunks(entry.chunks))

    def _fill(self, entry: TocEntry, chunks: list[bytes]) -> None:
        with self._lock:
            if entry.path in self.filled:
                return
            self._write(entry, chunks)
            layout.add_filled(self.dir, [entry.path])
            self.filled.add(entry.path)

    def _write(self, entry: TocEntry, chunks: list[bytes]) -> None:
        fd = self.tree.open(entry.path, os.O_WRONLY)
        try:
            st = os.fstat(fd)
            for c, data in zip(entry.chunks, chunks, strict=True):
                os.pwrite(fd, data, c.file_offset)
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))  # as the TOC (and tar) say
            os.fsync(fd)  # before ``filled`` says so: after a crash, data or a placeholder
        finally:
            os.close(fd)

    def prefetch(self, stop: threading.Event, wait: Callable[[float], bool] | None = None
                 ) -> bool:  # fmt: skip
        """Fetch the whole blob in one stream, in its order (an eStargz layer's prioritized
        files first), and check it as ``verify.walk`` does, filling each pending file from
        it; a transfer that breaks off goes on where it stopped (the daemon's *whole*:
        ``registry.resuming``); one that keeps failing is backed off, then read from the
        start. True once the layer is whole and verified against its diff_id (then marked
        ``complete``), False if *stop* came first or the blob was refused (then marked
        ``broken``, logged)."""
        wait = wait or stop.wait
        if layout.broken(self.dir) is not None:
            return False
        backoff = 0.5
        while not stop.is_set():
            sink = _TreeSink(self)
            done = False

            def consume(reader: typing.BinaryIO, sink: _TreeSink = sink) -> None:
                nonlocal done
                done = verify.walk(reader, self.toc, self.record.diff_id, sink, stop.is_set)

            try:
                self.whole(consume)
            except verify.Mismatch as exc:
                log.error("lazy layer %s refused: %s", self.record.digest[:19], exc)
                layout.mark_broken(self.dir, str(exc))
                return False
            except (OSError, RegistryError) as exc:
                log.warning("prefetch of blob %s: %s (trying again in %.1f s)",
                            self.record.digest[:19], exc, backoff)  # fmt: skip
                if wait(backoff):
                    return False
                backoff = min(backoff * 2, 30.0)
                continue
            finally:
                sink.close()
            if not done:
                return False
            layout.mark_complete(self.dir, self.record.diff_id)
            log.info("lazy layer %s is complete, verified against its diff_id",
                     self.record.digest[:19])  # fmt: skip
            return True
        return False


class _TreeSink:
    """``verify.Sink`` writing the verified chunks of pending files into the tree; a file
    is recorded as filled once all of it is written and synced."""

    def __init__(self, layer: LazyLayer) -> None:
        self.layer = layer
        self.fd = -1
        self.times = (0, 0)

    def chunk(self, entry: TocEntry, chunk: Chunk, data: bytes) -> None:
        if entry.path in self.layer.filled or self.layer.files.get(entry.path) is not entry:
            return  # here already, or an earlier entry of a path the tar gives twice
        if self.fd < 0:
            self.fd = self.layer.tree.open(entry.path, os.O_WRONLY)
            st = os.fstat(self.fd)
            self.times = (st.st_atime_ns, st.st_mtime_ns)
        os.pwrite(self.fd, data, chunk.file_offset)

    def file_done(self, entry: TocEntry) -> None:
        if self.fd < 0:
            return
        os.utime(self.fd, ns=self.times)  # as the TOC (and tar) say
        os.fsync(self.fd)
        self.close()
        with self.layer._lock:
            if entry.path not in self.layer.filled:
                layout.add_filled(self.layer.dir, [entry.path])
                self.layer.filled.add(entry.path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class LazyMount:
    """The lazy layers of one mount by their tree's directory (as the mount's ``lowerdir=``
    names it): ``fuse.lazyhook.LazyData``. *closing*: what to close at ``stop`` (clients)."""

    def __init__(self, layers: dict[str, LazyLayer], closing: Sequence[Callable[[], None]] = ()
                 ) -> None:  # fmt: skip
        self.layers = layers
        self._closing = list(closing)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pending(self, layer: str, path: bytes) -> bool:
        lazy = self.layers.get(layer)
        return lazy is not None and lazy.pending(path)

    def read(self, layer: str, path: bytes, offset: int, size: int) -> bytes:
        try:
            return self.layers[layer].read(path, offset, size)
        except OSError as exc:
            raise OSError(errno.EIO, exc.strerror or str(exc)) from None

    def fill(self, layer: str, path: bytes) -> None:
        try:
            self.layers[layer].fill(path)
        except OSError as exc:
            raise OSError(errno.EIO, exc.strerror or str(exc)) from None

    def start_prefetch(self) -> None:
        """Fetch the rest of every layer in a background thread (daemon: it ends with us),
        unless ``UNIONFS_LAZY_PREFETCH=0`` (tests that count what a read fetches)."""
        if os.environ.get("UNIONFS_LAZY_PREFETCH", "1") in ("0", "off", "no"):
            return

        def run() -> None:
            for lazy in self.layers.values():
                try:
                    lazy.prefetch(self._stop)  # False: stopped, or refused (and logged)
                    if self._stop.is_set():
                        return
                except Exception:
                    log.exception("prefetch of blob %s failed", lazy.record.digest[:19])
                    return

        self._thread = threading.Thread(target=run, name="lazy-prefetch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT)  # a fetch under way ends with its timeout
            if self._thread.is_alive():
                return  # it still uses the clients: the process's end closes them
        for lazy in self.layers.values():
            lazy.close()
        for close in self._closing:
            close()
