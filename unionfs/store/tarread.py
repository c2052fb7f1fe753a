"""Reading a tar stream strictly, one member at a time, hashing every byte read.

Understands ustar, GNU (long names, base-256 numbers) and pax (path, linkpath, size,
uid, gid, fractional mtime, ``SCHILY.xattr.*`` and ``LIBARCHIVE.xattr.*``). Anything else
is refused with one ``UserError`` line: a bad checksum, a stream that ends before its
end-of-archive block, sparse or multi-volume entries, unknown entry types. Names come out
normalized (``./`` and empty components dropped) after refusing absolute names and ``..``.
Nothing here touches the filesystem.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import typing
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from unionfs.errors import UserError
from unionfs.store.compress import BLOCK, tar_header_checksum_ok

REGULAR = b"0"
HARDLINK = b"1"
SYMLINK = b"2"
CHAR = b"3"
BLOCKDEV = b"4"
DIRECTORY = b"5"
FIFO = b"6"
_KNOWN = {REGULAR, HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO}
_TYPE_WORDS = {
    b"S": "a GNU sparse file",
    b"M": "a multi-volume continuation",
    b"D": "a GNU dump directory",
    b"N": "an old GNU long-name entry",
}
_CHUNK = 1 << 20
_MAX_EXTENSION = 1 << 20  # a pax header or GNU long name
_ZERO_BLOCK = bytes(BLOCK)


def show(name: bytes) -> str:
    """A member name as it appears in messages."""
    return name.decode("utf-8", "backslashreplace")


def normalize(raw: bytes, what: str = "entry") -> bytes:
    """``./a//b/`` -> ``a/b``; ``b""`` names the root. UserError for an absolute name, a
    ``..`` component or a NUL byte: nothing in a layer may name a place outside it."""
    if b"\0" in raw:
        raise UserError(f"{what} {show(raw)!r} holds a NUL byte")
    if raw.startswith(b"/"):
        raise UserError(f"{what} {show(raw)!r} is an absolute path")
    parts = [p for p in raw.split(b"/") if p not in (b"", b".")]
    if b".." in parts:
        raise UserError(f"{what} {show(raw)!r} has a '..' component")
    return b"/".join(parts)


@dataclass(slots=True)
class Member:
    """One entry of the archive, its pax and GNU extensions already applied."""

    name: bytes  # as stored (for messages)
    path: bytes  # normalized
    type: bytes  # one of the constants above
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    linkname: bytes
    devmajor: int
    devminor: int
    xattrs: dict[bytes, bytes] = field(default_factory=dict)


def _number(raw: bytes, what: str) -> int:
    if raw and raw[0] in (0x80, 0xFF):  # GNU base-256
        n = int.from_bytes(raw[1:], "big")
        return n - 256 ** (len(raw) - 1) if raw[0] == 0xFF else n
    text = raw.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise UserError(f"corrupt tar header: bad {what} field {raw!r}") from None


def _decimal_ns(text: bytes) -> int:
    """A pax time (``-12.5``, ``1700000000.123456789``) in nanoseconds."""
    sign = -1 if text.startswith(b"-") else 1
    whole, _, frac = text.lstrip(b"-").partition(b".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise ValueError(text)
    return sign * (int(whole) * 1_000_000_000 + int((frac + b"000000000")[:9]))


def _pax_records(data: bytes) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise UserError("corrupt pax header: bad record length") from None
        record = data[pos : pos + length]
        if space < 0 or length <= 0 or len(record) != length or not record.endswith(b"\n"):
            raise UserError("corrupt pax header: bad record")
        key, eq, value = record[space - pos + 1 : -1].partition(b"=")
        if not eq:
            raise UserError("corrupt pax header: a record without '='")
        records[key] = value
        pos += length
    return records


def _pax_xattr(key: bytes, value: bytes) -> tuple[bytes, bytes] | None:
    if key.startswith(b"SCHILY.xattr."):
        return key[len(b"SCHILY.xattr.") :], value
    if key.startswith(b"LIBARCHIVE.xattr."):
        name = urllib.parse.unquote_to_bytes(key[len(b"LIBARCHIVE.xattr.") :])
        try:
            return name, base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
        except binascii.Error:
            raise UserError(f"corrupt pax header: bad xattr value for {show(name)}") from None
    return None


class TarStream:
    """Members of the tar read from *src*, in order. Invariant: every byte taken from
    *src* passes through the hash; ``finish`` reads *src* to its end and returns
    ``sha256:<hex>`` of all of it (the layer's diff_id)."""

    def __init__(self, src: typing.BinaryIO, progress: Callable[[int], None] | None) -> None:
        self._src = src
        self._hash = hashlib.sha256()
        self._progress = progress
        self.offset = 0
        self._unread = 0  # data and padding of the current member not consumed yet
        self._globals: dict[bytes, bytes] = {}
        self._ended = False

    # -- raw reading ---------------------------------------------------------------------
    def _read(self, n: int) -> bytes:
        """Up to *n* bytes (fewer only at the end of the stream)."""
        parts = []
        got = 0
        while got < n:
            data = self._src.read(min(n - got, _CHUNK))
            if not data:
                break
            parts.append(data)
            got += len(data)
        data = b"".join(parts)
        self._hash.update(data)
        self.offset += got
        if self._progress is not None and got:
            self._progress(got)
        return data

    def _exactly(self, n: int, what: str) -> bytes:
        data = self._read(n)
        if len(data) != n:
            raise UserError(f"truncated tar: the stream ends inside {what}")
        return data

    # -- members -------------------------------------------------------------------------
    def data(self, member: Member) -> Iterator[bytes]:
        """The content of regular file *member*, in chunks, then its padding is skipped."""
        left = member.size
        while left:
            chunk = self._exactly(min(left, _CHUNK), f"the data of {show(member.name)}")
            left -= len(chunk)
            self._unread -= len(chunk)
            yield chunk
        self._skip_unread()

    def _skip_unread(self) -> None:
        while self._unread:
            n = min(self._unread, _CHUNK)
            self._exactly(n, "member data")
            self._unread -= n

    def _extension(self, size: int, what: str) -> bytes:
        if size > _MAX_EXTENSION:  # Go's archive/tar draws the same line
            raise UserError(f"corrupt tar: {what} of {size} bytes (more than 1 MiB)")
        padded = -(-size // BLOCK) * BLOCK
        return self._exactly(padded, what)[:size]

    def next(self) -> Member | None:
        """The next member, or None at the end-of-archive marker."""
        self._skip_unread()
        if self._ended:
            return None
        pax: dict[bytes, bytes] = {}
        long_name = long_link = None
        while True:
            start = self.offset
            block = self._read(BLOCK)
            if not block and start == 0:
                raise UserError("not a tar archive: the stream is empty")
            if len(block) < BLOCK:
                raise UserError("truncated tar: the stream ends before the end-of-archive block")
            if block == _ZERO_BLOCK:
                self._ended = True
                return None
            if not tar_header_checksum_ok(block):
                if start == 0:
                    raise UserError("not a tar archive (bad header checksum)")
                raise UserError(f"corrupt tar: bad header checksum at offset {start}")
            kind = block[156:157]
            size = _number(block[124:136], "size")
            if size < 0:
                raise UserError(f"corrupt tar: negative size at offset {start}")
            if kind in (b"x", b"g"):
                records = _pax_records(self._extension(size, "a pax header"))
                (pax if kind == b"x" else self._globals).update(records)
                continue
            if kind in (b"L", b"K"):
                value = self._extension(size, "a GNU long name").split(b"\0", 1)[0]
                if kind == b"L":
                    long_name = value
                else:
                    long_link = value
                continue
            if kind == b"V":  # a volume label: nothing to extract
                self._unread = -(-size // BLOCK) * BLOCK
                self._skip_unread()
                continue
            return self._member(block, kind, size, {**self._globals, **pax}, long_name, long_link)

    def _member(self, block: bytes, kind: bytes, size: int, pax: dict[bytes, bytes],
                long_name: bytes | None, long_link: bytes | None) -> Member:  # fmt: skip
        name = block[0:100].split(b"\0", 1)[0]
        if block[257:263] == b"ustar\0":  # POSIX: a prefix may hold the leading directories
            prefix = block[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        name = pax.get(b"path", long_name if long_name is not None else name)
        linkname = pax.get(b"linkpath", long_link or block[157:257].split(b"\0", 1)[0])
        if kind == b"\0":
            kind = DIRECTORY if name.endswith(b"/") else REGULAR
        elif kind == b"7":
            kind = REGULAR  # contiguous file: a regular file everywhere that matters
        if kind not in _KNOWN:
            word = _TYPE_WORDS.get(kind, f"an entry of unknown type {kind!r}")
            raise UserError(f"{show(name)}: {word} is not supported in a layer")
        if any(key.startswith(b"GNU.sparse.") for key in pax):
            raise UserError(f"{show(name)}: a sparse file is not supported in a layer")
        try:
            size = int(pax.get(b"size", size))
            uid = int(pax.get(b"uid", _number(block[108:116], "uid")))
            gid = int(pax.get(b"gid", _number(block[116:124], "gid")))
            mtime = pax.get(b"mtime")
            mtime_ns = (
                _decimal_ns(mtime)
                if mtime is not None
                else _number(block[136:148], "mtime") * 1_000_000_000
            )
        except ValueError:
            raise UserError(f"{show(name)}: corrupt pax header (a bad number)") from None
        if min(size, uid, gid) < 0:
            raise UserError(f"{show(name)}: corrupt tar header (a negative size or owner)")
        member = Member(
            name=name,
            path=normalize(name),
            type=kind,
            mode=_number(block[100:108], "mode") & 0o7777,
            uid=uid,
            gid=gid,
            size=size if kind == REGULAR else 0,
            mtime_ns=mtime_ns,
            linkname=linkname,
            devmajor=_number(block[329:337], "devmajor"),
            devminor=_number(block[337:345], "devminor"),
        )
        for key, value in pax.items():
            xattr = _pax_xattr(key, value)
            if xattr is not None:
                member.xattrs[xattr[0]] = xattr[1]
        self._unread = -(-size // BLOCK) * BLOCK
        return member

    def finish(self) -> str:
        """Read what follows the end-of-archive block (padding) and return the diff_id."""
        self._skip_unread()
        while self._read(_CHUNK):
            pass
        return "sha256:" + self._hash.hexdigest()
