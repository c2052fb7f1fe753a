"""A pull killed half-way (SIGKILL, in a child process) leaves only whole, verified blobs
and no image; run again, it downloads only what is missing. Plus the faults a real
registry will not produce on demand (500, a body cut short, bytes that do not match their
digest), from a tiny local HTTP server, each a one-line error with the destination as it was.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from registry.regutil import Registry, blob_files, build_image, random_bytes, snapshot
from unionfs.errors import UserError
from unionfs.registry.blobdir import OciLayout
from unionfs.registry.reference import parse_reference
from unionfs.registry.transfer import connect, pull, push

KIB = 1024
CHILD = """
import os, signal, sys
from unionfs.registry.blobdir import OciLayout
from unionfs.registry.reference import parse_reference
from unionfs.registry.transfer import connect, pull

ref, dest, mode = sys.argv[1], sys.argv[2], sys.argv[3]

class KillSelf:
    fetched = 0
    moved = 0
    def begin(self, desc): pass
    def advance(self, desc, n):
        self.moved += n
        if mode == "mid-blob" and self.fetched == 1 and self.moved > 300 * 1024:
            os.kill(os.getpid(), signal.SIGKILL)
    def end(self, desc, outcome):
        if outcome == "fetched":
            self.fetched += 1
            self.moved = 0
            if mode == "after-first" and self.fetched == 1:
                os.kill(os.getpid(), signal.SIGKILL)

r = parse_reference(ref)
with connect(r, tls_verify=False) as client:
    pull(client, r, OciLayout(dest), "img", progress=KillSelf())
"""


@pytest.fixture
def pushed(registry: Registry, tmp_path: Path) -> tuple[Path, str]:
    layout = tmp_path / "src"
    layers = [{f"l{i}": random_bytes(600 * KIB, 100 + i)} for i in range(4)]
    build_image(layout, "v1", layers)
    name = f"resume/img{os.getpid()}-{len(list(tmp_path.parent.iterdir()))}:v1"
    ref = parse_reference(f"{registry.host}/{name}")
    with connect(ref, tls_verify=False) as client:
        push(client, OciLayout(str(layout)), "v1", ref)
    return layout, f"{registry.host}/{name}"


@pytest.mark.parametrize("mode", ["after-first", "mid-blob"])
def test_killed_pull_resumes_with_only_the_missing_blobs(
    registry: Registry, pushed: tuple[Path, str], tmp_path: Path, mode: str
) -> None:
    layout, ref_text = pushed
    dest = tmp_path / "dest"
    child = subprocess.run([sys.executable, "-c", CHILD, ref_text, str(dest), mode], check=False)
    assert child.returncode == -9
    have = blob_files(dest)
    src = blob_files(layout)
    # Whatever is there under a blob name is whole and verified; no image was named.
    assert len(have) == 1 and all(src[h] == data for h, data in have.items())
    assert not (dest / "index.json").exists()
    partials = [p for p in (dest / "blobs" / "sha256").iterdir() if p.name.startswith(".")]
    assert len(partials) == (1 if mode == "mid-blob" else 0)

    mark = registry.mark()
    ref = parse_reference(ref_text)
    with connect(ref, tls_verify=False) as client:
        summary = pull(client, ref, OciLayout(str(dest)), "img")
    assert summary.skipped == 1 and summary.moved == 4  # 3 layers + config were missing
    got = [u for m, u, _ in registry.requests(mark) if m == "GET" and "/blobs/" in u]
    assert len(got) == 4 and not any(h in u for u in got for h in have)
    assert blob_files(dest) == src
    assert [p.name for p in (dest / "blobs" / "sha256").iterdir() if p.name.startswith(".")] == []


# -- faults from a tiny local server --------------------------------------------------------

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


@pytest.fixture
def fake_registry() -> Iterator[Callable[[dict[str, Handler]], str]]:
    """``serve({path_suffix: handler})`` -> host:port; /v2/ answers 200, the rest 404."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(routes: dict[str, Handler]) -> str:
        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/v2/":
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                for suffix, handler in routes.items():
                    if self.path.endswith(suffix):
                        handler(self)
                        return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        servers.append(server)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return f"127.0.0.1:{server.server_address[1]}"

    yield serve
    for s in servers:
        s.shutdown()
        s.server_close()


def reply(
    status: int, body: bytes, headers: dict[str, str] | None = None, cut: int | None = None
) -> Handler:
    def handler(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body if cut is None else body[:cut])
        h.wfile.flush()
        if cut is not None:
            h.close_connection = True

    return handler


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image(layer: bytes) -> tuple[bytes, bytes]:
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    man = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return man, config


LAYER = random_bytes(200 * KIB, 7)
MAN, CONFIG = image(LAYER)
MAN_HEADERS = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (
            {"/manifests/t": reply(500, b'{"errors":[{"code":"UNKNOWN","message":"boom"}]}')},
            "answered 500 Internal Server Error (boom)",
        ),
        (
            {
                "/manifests/t": reply(200, MAN, MAN_HEADERS),
                f"/blobs/{sha(CONFIG)}": reply(200, CONFIG),
                f"/blobs/{sha(LAYER)}": reply(500, b""),
            },
            "answered 500",
        ),
        (
            {
                "/manifests/t": reply(200, MAN, MAN_HEADERS),
                f"/blobs/{sha(CONFIG)}": reply(200, CONFIG),
                f"/blobs/{sha(LAYER)}": reply(200, LAYER, cut=len(LAYER) // 2),
            },
            "the transfer broke off",
        ),
        (
            {
                "/manifests/t": reply(200, MAN, MAN_HEADERS),
                f"/blobs/{sha(CONFIG)}": reply(200, CONFIG),
                f"/blobs/{sha(LAYER)}": reply(200, LAYER[:-1] + b"X"),
            },
            "does not match its digest",
        ),
        (
            {"/manifests/t": reply(200, MAN, {**MAN_HEADERS, "Docker-Content-Digest": sha(b"x")})},
            "manifest from 127.0.0.1",
        ),
        ({"/manifests/t": reply(200, b"<html>", MAN_HEADERS)}, "not valid JSON"),
    ],
    ids=["manifest-500", "blob-500", "truncated", "digest-mismatch", "manifest-digest", "junk"],
)
def test_faults_are_one_line_and_leave_no_image(
    fake_registry: Callable[[dict[str, Handler]], str],
    tmp_path: Path,
    routes: dict[str, Handler],
    message: str,
) -> None:
    host = fake_registry(routes)
    dest = tmp_path / "dest"
    build_image(dest, "keep", [{"k": b"keep"}])
    before = snapshot(dest)
    ref = parse_reference(f"{host}/r/x:t")
    with (
        connect(ref, tls_verify=False) as client,
        pytest.raises(UserError) as info,
    ):
        pull(client, ref, OciLayout(str(dest)), "new")
    text = str(info.value)
    assert message in text and "\n" not in text, text
    after = snapshot(dest)
    # Nothing named, nothing half-written; at most the verified config blob was kept.
    added = set(after) - set(before)
    assert added <= {f"blobs/sha256/{sha(CONFIG)[7:]}"}
    assert {k: after[k] for k in before} == before
