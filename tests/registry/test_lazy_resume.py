"""The prefetch's whole-blob stream (``registry.resuming``) against a tiny local server that
breaks transfers off: it goes on from the byte where the transfer stopped (a Range
request), the consumer gets every byte once, in order, and the size and digest are still
checked over all of them; a registry that ignores ranges is skipped forward; a refusal
(4xx) is not retried; breaks in a row with no byte between them give up."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import typing
from collections.abc import Iterator

import pytest

from registry.regutil import random_bytes
from unionfs.registry import resuming
from unionfs.registry.auth import RegistryError
from unionfs.registry.digest import DigestMismatch
from unionfs.registry.reference import parse_reference
from unionfs.registry.transfer import connect

BLOB = random_bytes(300_000, 11)
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


class Server:
    """Serves BLOB at /v2/r/blobs/<digest>; each GET takes its plan from ``plan`` in turn:
    ("cut", n): the body stops after n bytes; ("whole", 0): as asked (a 206 for a range);
    ("ignore", 0): 200 with the whole blob, whatever the range; ("status", code)."""

    def __init__(self) -> None:
        self.plan: list[tuple[str, int]] = []
        self.ranges: list[str | None] = []
        server = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/v2/":
                    self._answer(200, b"{}", {})
                    return
                server.ranges.append(self.headers.get("Range"))
                how, n = server.plan.pop(0) if server.plan else ("whole", 0)
                if how == "status":
                    self._answer(n, b"", {})
                    return
                start = 0
                asked = self.headers.get("Range")
                if asked and how != "ignore":
                    start = int(asked.removeprefix("bytes=").split("-")[0])
                body = BLOB[start:]
                self.send_response(206 if start and how != "ignore" else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:n] if how == "cut" else body)
                self.wfile.flush()
                if how == "cut":
                    self.close_connection = True

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.host = f"127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.http.shutdown()
    s.http.server_close()


def fetch(server: Server, digest: str = DIGEST) -> bytes:
    got = io.BytesIO()

    def consume(reader: typing.BinaryIO) -> None:
        while piece := reader.read(50_000):
            got.write(piece)

    with connect(parse_reference(f"{server.host}/r:t"), tls_verify=False) as client:
        resuming.fetch_blob(client, "r", digest, len(BLOB), consume, sleep=lambda s: None)
    return got.getvalue()


def test_a_broken_transfer_goes_on_from_where_it_stopped(server: Server) -> None:
    server.plan = [("cut", 100_000), ("cut", 50_000), ("whole", 0)]
    assert fetch(server) == BLOB
    assert server.ranges == ["bytes=0-", "bytes=100000-", "bytes=150000-"]


def test_a_registry_that_ignores_the_range_is_skipped_forward(server: Server) -> None:
    server.plan = [("cut", 100_000), ("ignore", 0)]
    assert fetch(server) == BLOB


def test_the_whole_stream_is_still_checked_against_its_digest(server: Server) -> None:
    server.plan = [("cut", 100_000), ("whole", 0)]
    with pytest.raises(DigestMismatch):
        fetch(server, "sha256:" + "0" * 64)


def test_a_refusal_is_not_retried_and_endless_breaks_give_up(server: Server) -> None:
    server.plan = [("cut", 1000), ("status", 404)]
    with pytest.raises(RegistryError, match="not found"):
        fetch(server)
    assert len(server.ranges) == 2
    server.ranges.clear()
    server.plan = [("cut", 0)] * resuming.RETRIES
    with pytest.raises(RegistryError, match="broke off"):
        fetch(server)
    assert len(server.ranges) == resuming.RETRIES
