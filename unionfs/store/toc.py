"""Tables of contents of lazily pullable layers (eStargz, zstd:chunked) parsed into one
format-neutral model: each entry's attributes and, for a regular file, its chunks (where
each lies in the blob, its size, its sha256). Pure. A TOC comes from a registry: names are
refused as ``tarread.normalize`` refuses them, and a chunk without a digest is refused.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import dataclasses
import functools
import json
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field

from unionfs.errors import UserError
from unionfs.imageformat import DIGEST
from unionfs.store.tarread import normalize

ESTARGZ = "estargz"
ZSTD_CHUNKED = "zstd:chunked"
PREFETCH_LANDMARK = b".prefetch.landmark"
NO_PREFETCH_LANDMARK = b".no.prefetch.landmark"
KINDS = ("dir", "reg", "symlink", "hardlink", "char", "block", "fifo")
_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One stretch of a file's data. Fetch blob bytes ``[offset, end)``, decompress them
    as one stream, drop ``skip`` bytes, keep ``size``: they must hash to ``digest``."""

    offset: int  # where its gzip member / zstd frame starts in the blob
    end: int  # where the compressed bytes worth fetching end (exclusive)
    file_offset: int  # where the chunk lies in the file
    size: int  # uncompressed length
    skip: int  # uncompressed bytes before it in the stream at ``offset`` (eStargz innerOffset)
    digest: str  # "sha256:<hex>" of its uncompressed bytes


@dataclass(frozen=True, slots=True)
class TocEntry:
    path: bytes  # normalized (``tarread.normalize``); b"" is the layer root
    kind: str  # one of KINDS
    mode: int  # permission bits, set-id and sticky bits (07777)
    uid: int
    gid: int
    size: int  # a regular file's length, else 0
    mtime_ns: int
    linkname: bytes  # a symlink's target; a hard link's target path (normalized)
    devmajor: int
    devminor: int
    xattrs: dict[bytes, bytes] = field(default_factory=dict)
    digest: str = ""  # "sha256:<hex>" of the whole content of a non-empty regular file
    chunks: tuple[Chunk, ...] = ()


@dataclass(frozen=True, slots=True)
class LayerToc:
    format: str  # ESTARGZ or ZSTD_CHUNKED
    digest: str  # the TOC digest the layer's descriptor annotates (verified)
    entries: tuple[TocEntry, ...]  # in TOC order, landmarks left out
    prefetch_end: int  # blob bytes [0, prefetch_end) hold the prioritized files; 0: none

    def by_path(self) -> dict[bytes, TocEntry]:
        return {e.path: e for e in self.entries}


def _obj(value: object, what: str) -> dict[str, typing.Any]:
    if not isinstance(value, dict):
        raise UserError(f"corrupt TOC: {what} is not an object")
    return value


def _int(entry: dict[str, typing.Any], key: str, what: str) -> int:
    value = entry.get(key, 0)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UserError(f"corrupt TOC: {what}: {key} is not a non-negative integer")
    return value


def _str(entry: dict[str, typing.Any], key: str, what: str) -> str:
    value = entry.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UserError(f"corrupt TOC: {what}: {key} is not a string")
    return value


def _digest(text: str, what: str) -> str:
    if not text:
        return ""
    if re.fullmatch(r"[0-9a-f]{64}", text):
        text = "sha256:" + text  # zstd:chunked's comment says "hexadecimal"; accept both
    if DIGEST.fullmatch(text) is None:
        raise UserError(f"corrupt TOC: {what}: digest {text[:80]!r} is not a sha256 digest")
    return text


@functools.lru_cache(maxsize=4096)
def parse_time(text: str) -> int:
    """An RFC 3339 time (seconds, fraction up to nanoseconds, Z or an offset) in ns.
    Cached: the files of a layer share few times (a TOC parses thousands of them)."""
    m = _TIME.fullmatch(text)
    if m is None:
        raise UserError(f"corrupt TOC: bad time {text[:40]!r}")
    year, month, day, hh, mm, ss = (int(m.group(i)) for i in range(1, 7))
    seconds = calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0))
    if m.group(9):
        offset = (int(m.group(10)) * 60 + int(m.group(11))) * 60
        seconds -= offset if m.group(9) == "+" else -offset
    fraction = int((m.group(7) or "").ljust(9, "0"))
    return seconds * 1_000_000_000 + fraction


def format_time(ns: int, *, nanos: bool) -> str:
    """RFC 3339 in UTC (``Z``): whole seconds (eStargz) or Go's RFC3339Nano (zstd:chunked)."""
    import time

    seconds, frac = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos and frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def name_text(raw: bytes) -> str:
    """A tar name as a TOC (JSON) writes it; a name that is not UTF-8 cannot be written."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        name = raw.decode("utf-8", "backslashreplace")
        raise UserError(f"{name}: a name that is not UTF-8 cannot be listed in a TOC") from None


def xattrs_text(xattrs: dict[bytes, bytes]) -> dict[str, str]:
    """A tar member's xattrs as a TOC writes them: names as text, values in base64."""
    return {name_text(k): base64.b64encode(v).decode() for k, v in sorted(xattrs.items())}


def _xattrs(entry: dict[str, typing.Any], what: str) -> dict[bytes, bytes]:
    raw = entry.get("xattrs") or {}
    if not isinstance(raw, dict):
        raise UserError(f"corrupt TOC: {what}: xattrs is not an object")
    out = {}
    for name, value in raw.items():
        if not isinstance(value, str):
            raise UserError(f"corrupt TOC: {what}: xattr {name!r} is not a string")
        try:
            out[str(name).encode()] = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise UserError(f"corrupt TOC: {what}: xattr {name!r} is not base64") from None
    return out


def _entry(raw: dict[str, typing.Any], kind: str, what: str) -> TocEntry:
    name = _str(raw, "name", what).encode("utf-8", "surrogateescape")
    link = _str(raw, "linkName", what).encode("utf-8", "surrogateescape")
    if kind == "hardlink":
        link = normalize(link, f"{what}: hard link target")
    modtime = _str(raw, "modtime", what)
    return TocEntry(
        path=normalize(name, "TOC entry"),
        kind=kind,
        mode=_int(raw, "mode", what) & 0o7777,
        uid=_int(raw, "uid", what),
        gid=_int(raw, "gid", what),
        size=_int(raw, "size", what) if kind == "reg" else 0,
        mtime_ns=parse_time(modtime) if modtime else 0,
        linkname=link,
        devmajor=_int(raw, "devMajor", what),
        devminor=_int(raw, "devMinor", what),
        xattrs=_xattrs(raw, what),
        digest=_digest(_str(raw, "digest", what), what) if kind == "reg" else "",
    )


def _load(data: bytes, what: str) -> list[dict[str, typing.Any]]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"corrupt TOC: {what} is not valid JSON") from None
    doc = _obj(doc, what)
    entries = doc.get("entries")
    if doc.get("version") not in (1, 2) or not isinstance(entries, list):
        raise UserError(f"corrupt TOC: {what} is not a version 1 TOC with entries")
    return [_obj(e, f"{what} entry {i}") for i, e in enumerate(entries)]


Raw = dict[str, typing.Any]


def _groups(raws: list[Raw], what: str) -> Iterator[tuple[Raw, list[Raw]]]:
    """Each entry with the ``chunk`` entries that follow it."""
    current: tuple[Raw, list[Raw]] | None = None
    for i, raw in enumerate(raws):
        if raw.get("type") == "chunk":
            if current is None or current[0].get("type") != "reg":
                raise UserError(f"corrupt TOC: {what}: chunk entry {i} follows no regular file")
            current[1].append(raw)
            continue
        if current is not None:
            yield current
        current = (raw, [])
    if current is not None:
        yield current


def _with_chunks(entry: TocEntry, chunks: list[Chunk], what: str) -> TocEntry:
    if entry.size == 0:
        return entry
    position = 0
    for c in chunks:
        if c.file_offset != position or c.size <= 0 or c.end <= c.offset:
            raise UserError(f"corrupt TOC: {what}: the chunks of {entry.path!r} do not tile it")
        position += c.size
    if position != entry.size:
        raise UserError(f"corrupt TOC: {what}: the chunks of {entry.path!r} do not tile it")
    return dataclasses.replace(entry, chunks=tuple(chunks))


def _chunk_digest(raw: dict[str, typing.Any], entry: TocEntry, single: bool, what: str) -> str:
    digest = _digest(_str(raw, "chunkDigest", what), what)
    if not digest and single:
        digest = entry.digest  # one chunk: the file's digest is the chunk's
    if not digest:
        raise UserError(f"corrupt TOC: {what}: a chunk of {entry.path!r} has no digest")
    return digest


def parse_estargz(data: bytes, digest: str, toc_offset: int) -> LayerToc:
    """The TOC JSON of an eStargz blob whose TOC gzip member starts at *toc_offset*."""
    what = "stargz.index.json"
    raws = _load(data, what)
    # A chunk's compressed bytes end where the next entry with an offset begins (the
    # reference reader's nextOffset); the last one's end at the TOC.
    ends: dict[int, int] = {}
    last = toc_offset
    for i in range(len(raws) - 1, -1, -1):
        if raws[i].get("type") in ("reg", "chunk"):
            ends[i] = last
        offset = _int(raws[i], "offset", what)
        if offset:
            last = offset
    entries: list[TocEntry] = []
    prefetch_end = 0
    index = 0
    for head, tail in _groups(raws, what):
        kind = head.get("type")
        if kind not in KINDS:
            raise UserError(f"corrupt TOC: {what}: unknown entry type {str(kind)[:20]!r}")
        entry = _entry(head, typing.cast(str, kind), what)
        if entry.path in (PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK):
            if entry.path == PREFETCH_LANDMARK:
                prefetch_end = _int(head, "offset", what)
            index += 1 + len(tail)
            continue
        chunks = []
        single = not tail
        for j, raw in enumerate([head, *tail]):
            if entry.size == 0:
                break
            start = _int(raw, "chunkOffset", what)
            size = _int(raw, "chunkSize", what) or entry.size - start
            chunks.append(Chunk(_int(raw, "offset", what), ends[index + j], start, size,
                                _int(raw, "innerOffset", what),
                                _chunk_digest(raw, entry, single, what)))  # fmt: skip
        index += 1 + len(tail)
        entries.append(_with_chunks(entry, chunks, what))
    return LayerToc(ESTARGZ, digest, tuple(entries), prefetch_end)


def parse_zstd_chunked(data: bytes, digest: str) -> LayerToc:
    """The TOC ("manifest") JSON of a zstd:chunked blob, already decompressed."""
    what = "zstd:chunked manifest"
    entries: list[TocEntry] = []
    for head, tail in _groups(_load(data, what), what):
        kind = head.get("type")
        if kind not in KINDS:
            raise UserError(f"corrupt TOC: {what}: unknown entry type {str(kind)[:20]!r}")
        entry = _entry(head, typing.cast(str, kind), what)
        parts = [head, *tail]
        end = _int(head, "endOffset", what)
        chunks = []
        for j, raw in enumerate(parts if entry.size else []):
            start = _int(raw, "chunkOffset", what)
            nxt = _int(parts[j + 1], "offset", what) if j + 1 < len(parts) else end
            size = _int(raw, "chunkSize", what) or entry.size - start
            chunks.append(Chunk(_int(raw, "offset", what), nxt, start, size, 0,
                                _chunk_digest(raw, entry, not tail, what)))  # fmt: skip
        entries.append(_with_chunks(entry, chunks, what))
    return LayerToc(ZSTD_CHUNKED, digest, tuple(entries), 0)
