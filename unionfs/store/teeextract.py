"""A layer extracted from the tar stream while it is being written: commit (and import of a
rootfs directory) hand each plain tar byte to ``Extraction.feed`` as well as to the
compressor, and a thread applies it to a temporary layer directory, instead of reading the
new blob back, inflating it and extracting it in a second pass. Owns that thread and the
bounded hand-off between the two; the caller owns the directory (a ``scratch.temp_dir``).
"""

from __future__ import annotations

import io
import threading
import typing
from collections import deque
from collections.abc import Callable

from unionfs import layerfmt
from unionfs.store import layertar

LIMIT = 8 << 20  # bytes handed over and not yet taken: the writer waits past this
_BUFFER = 1 << 20


class _Aborted(Exception):
    """The writer failed: the extraction stops (its result is never used)."""


class _Pipe(io.RawIOBase):
    """Chunks from the writer thread to the reading one, at most LIMIT bytes queued."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._chunks: deque[memoryview] = deque()
        self._queued = 0
        self._ended = False
        self._aborted = False
        self._reader_gone = False  # the reader failed: what is fed is dropped

    def readable(self) -> bool:
        return True

    def feed(self, data: bytes) -> None:
        with self._cond:
            while self._queued >= LIMIT and not self._reader_gone:
                self._cond.wait()
            if self._reader_gone:
                return
            self._chunks.append(memoryview(data))
            self._queued += len(data)
            self._cond.notify_all()

    def end(self, aborted: bool) -> None:
        with self._cond:
            self._ended = True
            self._aborted = aborted
            self._cond.notify_all()

    def reader_gone(self) -> None:
        with self._cond:
            self._reader_gone = True
            self._chunks.clear()
            self._queued = 0
            self._cond.notify_all()

    def readinto(self, buffer: typing.Any) -> int:
        view = memoryview(buffer).cast("B")
        with self._cond:
            while not self._chunks and not self._ended:
                self._cond.wait()
            if self._aborted:
                raise _Aborted()
            got = 0
            while self._chunks and got < len(view):
                chunk = self._chunks[0]
                n = min(len(chunk), len(view) - got)
                view[got : got + n] = chunk[:n]
                got += n
                if n == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[n:]
            self._queued -= got
            self._cond.notify_all()
            return got


class Extraction:
    """``feed`` the plain tar stream, then ``finish`` (or ``abort`` on failure) once."""

    def __init__(self, dest: str, style: layerfmt.MarkerStyle,
                 warn: Callable[[str], None]) -> None:  # fmt: skip
        self._pipe = _Pipe()
        self.size = 0  # bytes of the tar taken by the extraction
        self._diff_id: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(dest, style, warn),
                                        name="extract", daemon=True)  # fmt: skip
        self._thread.start()

    def _count(self, n: int) -> None:
        self.size += n

    def _run(self, dest: str, style: layerfmt.MarkerStyle, warn: Callable[[str], None]) -> None:
        stream = typing.cast(typing.BinaryIO, io.BufferedReader(self._pipe, _BUFFER))
        try:
            self._diff_id = layertar.extract_layer(stream, dest, style, warn=warn,
                                                   progress=self._count)  # fmt: skip
        except BaseException as exc:  # handed to the writer's thread by finish
            self._error = exc
            self._pipe.reader_gone()

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._pipe.feed(data if isinstance(data, bytes) else bytes(data))

    def finish(self) -> str:
        """The diff_id of what was extracted, once all of it is; the extraction's error
        (a UserError for a tar it refuses) if it failed."""
        self._pipe.end(aborted=False)
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._diff_id is not None
        return self._diff_id

    def abort(self) -> None:
        self._pipe.end(aborted=True)
        self._thread.join()
