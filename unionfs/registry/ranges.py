"""Byte ranges of a registry blob over HTTP Range requests: what a lazy pull reads with.
Auth and TLS are the ``Client``'s (``pull``'s). No digest is checked here (a range has
none): ``store.chunkread`` checks the TOC's chunk digests on what this returns.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Sequence

import httpx

from unionfs.registry.auth import RegistryError
from unionfs.registry.client import Client
from unionfs.registry.digest import short

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_BODY = 256 << 20  # a 200 answer larger than this is not read for a few ranges


class RangeError(RegistryError):
    """Ranges that could not be had (after the retries)."""


def merge(ranges: Sequence[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """``(offset, length)`` ranges sorted and merged where they overlap, touch or lie less
    than *gap* bytes apart (one request for neighbours costs less than two)."""
    spans: list[list[int]] = []
    for offset, length in sorted((o, n) for o, n in ranges if n > 0):
        if spans and offset <= spans[-1][1] + gap:
            spans[-1][1] = max(spans[-1][1], offset + length)
        else:
            spans.append([offset, offset + length])
    return [(start, end - start) for start, end in spans]


def _content_range(value: str) -> tuple[int, int]:
    """``bytes a-b/size`` -> (a, b + 1)."""
    unit, _, rest = value.strip().partition(" ")
    span = rest.split("/", 1)[0]
    first, _, last = span.partition("-")
    if unit != "bytes" or not first.isdigit() or not last.isdigit():
        raise ValueError(value)
    return int(first), int(last) + 1


def _multipart(body: bytes, boundary: bytes) -> list[tuple[int, bytes]]:
    """(start, data) of each part of a ``multipart/byteranges`` body. Each part's length
    comes from its Content-Range, so data that looks like a boundary cannot cut it."""
    parts = []
    marker = b"--" + boundary
    pos = body.find(marker)
    while pos >= 0:
        pos += len(marker)
        if body[pos : pos + 2] == b"--":
            break
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise ValueError("a part without a header end")
        headers = {}
        for line in body[pos:head_end].split(b"\r\n"):
            key, sep, value = line.partition(b":")
            if sep:
                headers[key.strip().lower()] = value.strip().decode("latin-1")
        start, end = _content_range(headers[b"content-range"])
        data_start = head_end + 4
        data = body[data_start : data_start + end - start]
        if len(data) != end - start:
            raise ValueError("a part shorter than its Content-Range")
        parts.append((start, data))
        pos = body.find(marker, data_start + len(data))
    return parts


def _pieces(resp: httpx.Response, asked: list[tuple[int, int]]) -> list[tuple[int, bytes]]:
    """(start, data) pieces of a response to a Range request for *asked*."""
    if resp.status_code == 200:
        if int(resp.headers.get("Content-Length", "0")) > MAX_BODY:
            raise RangeError("the registry ignored the Range header for a large blob")
        return [(0, resp.read())]
    ctype = resp.headers.get("Content-Type", "")
    if ctype.startswith("multipart/byteranges"):
        boundary = ctype.split("boundary=", 1)[1].strip().strip('"').encode()
        return _multipart(resp.read(), boundary)
    start, end = _content_range(resp.headers.get("Content-Range", ""))
    data = resp.read()
    if len(data) != end - start:
        raise ValueError("a body shorter than its Content-Range")
    return [(start, data)]


class RangeStats:
    """What went over the wire, for tests and benchmarks."""

    def __init__(self) -> None:
        self.requests = 0
        self.retries = 0
        self.bytes = 0


def fetch_ranges(
    client: Client,
    repo: str,
    digest: str,
    ranges: Sequence[tuple[int, int]],
    *,
    gap: int = 16 << 10,
    per_request: int = 16,
    attempts: int = 5,
    backoff: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    stats: RangeStats | None = None,
) -> list[bytes]:
    """The bytes of each ``(offset, length)`` of blob *digest* in *repo*, in order.

    Ranges that touch or lie closer than *gap* bytes are merged; up to *per_request* go in
    one ``Range: bytes=a-b,c-d`` request (1: one each, for a server that mishandles
    several). The answer may be 206 with one range (``Content-Range``), 206
    ``multipart/byteranges``, or 200 with the whole blob (Go's ``http.ServeContent``, which
    docker-registry uses, sends that when the ranges add up to more than the blob). A
    transport error, a 5xx, 408 or 429 is retried *attempts* times with doubling back-off;
    anything else fails at once. RangeError (a UserError) when the bytes cannot be had.
    """
    spans = merge(ranges, gap)
    got: dict[tuple[int, int], bytes] = {}
    for i in range(0, len(spans), per_request):
        batch = spans[i : i + per_request]
        pieces = _fetch_batch(client, repo, digest, batch, attempts, backoff, sleep, stats)
        for start, length in batch:
            got[(start, length)] = _slice(pieces, start, length)
    out = []
    for offset, length in ranges:
        span = next((s for s in spans if s[0] <= offset and offset + length <= s[0] + s[1]),
                    (offset, 0))  # fmt: skip
        data = got.get(span, b"")[offset - span[0] : offset - span[0] + length]
        out.append(data)
    return out


def _slice(pieces: list[tuple[int, bytes]], start: int, length: int) -> bytes:
    for piece_start, data in pieces:
        if piece_start <= start and start + length <= piece_start + len(data):
            return data[start - piece_start : start - piece_start + length]
    raise ValueError(f"the answer lacks bytes {start}-{start + length - 1}")


def _fetch_batch(client: Client, repo: str, digest: str, batch: list[tuple[int, int]],
                 attempts: int, backoff: float, sleep: Callable[[float], None],
                 stats: RangeStats | None) -> list[tuple[int, bytes]]:  # fmt: skip
    what = f"reading blob {short(digest)} of {repo}"
    header = "bytes=" + ",".join(f"{o}-{o + n - 1}" for o, n in batch)
    last = ""
    for attempt in range(attempts):
        if attempt:
            if stats is not None:
                stats.retries += 1
            sleep(backoff * 2 ** (attempt - 1))
        if stats is not None:
            stats.requests += 1
        try:
            resp = client.send_range(repo, digest, header, what)
        except RegistryError as exc:
            last = exc.message  # the transport failed: the registry may come back
            continue
        try:
            if resp.status_code in RETRY_STATUS:
                last = f"{what}: registry answered {resp.status_code}"
                continue
            if resp.status_code not in (200, 206):
                raise RangeError(client.fail(resp, what).message)
            try:
                pieces = _pieces(resp, batch)
                for start, length in batch:
                    _slice(pieces, start, length)
            except (ValueError, KeyError, IndexError) as exc:
                last = f"{what}: a malformed range answer ({exc})"
                continue
            except httpx.TransportError as exc:
                last = f"{what}: the transfer broke off ({exc})"
                continue
            if stats is not None:
                stats.bytes += sum(len(d) for _, d in pieces)
            return pieces
        finally:
            resp.close()
    raise RangeError(f"{last} (gave up after {attempts} attempts)")


class RegistryRangeSource:
    """A registry blob as a ``store.chunkread.RangeSource``. Failures are OSError EIO:
    what a reader of a lazily mounted file must see (never wrong data)."""

    def __init__(self, client: Client, repo: str, digest: str, size: int, *, per_request: int = 16,
                 attempts: int = 5, backoff: float = 0.2) -> None:  # fmt: skip
        self.client = client
        self.repo = repo
        self.digest = digest
        self.size = size
        self.per_request = per_request
        self.attempts = attempts
        self.backoff = backoff
        self.stats = RangeStats()

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        if any(o < 0 or n < 0 or o + n > self.size for o, n in ranges):
            raise OSError(errno.EINVAL, f"a range beyond the end of blob {short(self.digest)}")
        try:
            return fetch_ranges(self.client, self.repo, self.digest, ranges,
                                per_request=self.per_request, attempts=self.attempts,
                                backoff=self.backoff, stats=self.stats)  # fmt: skip
        except RegistryError as exc:
            raise OSError(errno.EIO, exc.message) from None
