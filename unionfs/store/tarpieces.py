"""A tar stream cut, losslessly, into pieces (raw bytes before a member's data: the previous
member's padding, extension headers, the header; then the member) that lazy-pulling
formats are written from: writing every piece and every member's data in order gives the
input back byte for byte (same diff_id). Parsing is ``tarread.TarStream``'s; no I/O else.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator

from unionfs.store.compress import BLOCK
from unionfs.store.tarread import REGULAR, Member, TarStream


class _Tap:
    """Passes reads through, keeping every byte that is not member data in ``raw``."""

    def __init__(self, src: typing.BinaryIO) -> None:
        self._src = src
        self.raw = bytearray()
        self.data_left = 0  # bytes of member data still to pass unrecorded

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        take = min(len(data), self.data_left)
        self.data_left -= take
        if take < len(data):
            self.raw += data[take:]
        return data

    def take(self) -> bytes:
        out = bytes(self.raw)
        self.raw.clear()
        return out


class TarPieces:
    """Iterate ``(raw, member)``; consume a regular member's data with ``data(member)``
    before asking for the next piece (or not at all: it is then skipped). The last piece
    is ``(raw, None)``; ``eoa`` then says how many of its bytes are the two end-of-archive
    blocks and the padding before them (the rest is trailing data), and ``diff_id`` is
    the sha256 of the whole input."""

    def __init__(self, src: typing.BinaryIO) -> None:
        self._tap = _Tap(src)
        self._tar = TarStream(typing.cast(typing.BinaryIO, self._tap), None)
        self.diff_id = ""
        self.eoa = 0

    def __iter__(self) -> Iterator[tuple[bytes, Member | None]]:
        while True:
            member = self._tar.next()
            if member is None:
                head = self._tap.take()  # padding of the last member + the first zero block
                self.diff_id = self._tar.finish()
                tail = self._tap.take()
                self.eoa = len(head) + min(BLOCK, len(tail))
                yield head + tail, None
                return
            raw = self._tap.take()
            if member.type == REGULAR:
                self._tap.data_left = member.size
            yield raw, member

    def data(self, member: Member) -> Iterator[bytes]:
        """The data of regular member *member* (the one just yielded), in chunks."""
        yield from self._tar.data(member)


def exact_chunks(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Re-cut a stream of byte strings into pieces of exactly *size* bytes (the last one
    shorter)."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    if buf:
        yield bytes(buf)
