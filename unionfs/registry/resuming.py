"""A whole blob as one stream that survives breaks (what a lazy layer's prefetch reads):
checked as ``Client.fetch_blob`` checks it (size and sha256 over every byte, at its end), but a
transfer that breaks off is taken up where it stopped (``Range: bytes=N-``) instead of
from byte 0. The consumer sees one stream, never a byte twice nor a gap: a registry that
ignores the range (200) has the bytes already had skipped. Does not judge the bytes: the
verification of the whole stream does.
"""

from __future__ import annotations

import re
import time
import typing
from collections.abc import Callable, Iterator

import httpx

from unionfs.registry.auth import RegistryError
from unionfs.registry.client import Client
from unionfs.registry.digest import VerifyingReader, short

RETRIES = 4  # breaks in a row without a byte between them before giving up (then the
# prefetch backs off and starts again from byte 0): 0.5 + 1 + 2 + 4 s of waiting at most
_START = re.compile(r"bytes (\d+)-")


def fetch_blob(client: Client, repo: str, digest: str, size: int,
          consume: Callable[[typing.BinaryIO], None],
          sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
    """Hand *consume* a verifying reader of blob *digest* (*size* bytes) of *repo*."""
    what = f"downloading blob {short(digest)} from {repo}"

    def pieces() -> Iterator[bytes]:
        at = failures = 0
        while at < size:
            before = at
            try:
                resp = client.send_range(repo, digest, f"bytes={at}-", what)
                try:
                    skip = _skip(client, resp, at, what)
                    for piece in resp.iter_bytes():  # as received: a break loses none
                        if skip:
                            dropped = min(skip, len(piece))
                            piece, skip = piece[dropped:], skip - dropped
                        if piece:
                            at += len(piece)
                            yield piece
                finally:
                    resp.close()
            except RegistryError as exc:
                if exc.status is not None and exc.status < 500:
                    raise  # refused, not broken off: trying again will not help
                error: Exception = exc
            except httpx.TransportError as exc:
                error = exc
            else:
                if at >= size:
                    return
                error = RegistryError(f"{what}: the body ended at byte {at} of {size}")
            failures = 0 if at > before else failures + 1
            if failures >= RETRIES:
                raise RegistryError(f"{what}: the transfer broke off ({error})")
            sleep(0.5 * 2 ** max(failures - 1, 0))

    reader = VerifyingReader(pieces(), digest, size,
                             what=f"blob {short(digest)} from {client.registry}")  # fmt: skip
    consume(reader)  # type: ignore[arg-type]  # read() is all a consumer uses


def _skip(client: Client, resp: httpx.Response, at: int, what: str) -> int:
    """How many bytes of *resp*'s body come before byte *at* (0 for a 206 from *at*)."""
    if resp.status_code == 200:
        return at
    if resp.status_code == 206:
        found = _START.match(resp.headers.get("Content-Range", ""))
        if found is None or int(found[1]) != at:
            resp.close()
            raise RegistryError(f"{what}: asked for bytes from {at}, the registry sent others")
        return 0
    raise client.fail(resp, what)
