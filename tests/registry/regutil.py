"""A real registry for the tests: Debian's ``docker-registry`` (CNCF distribution) on
127.0.0.1 with a free port, a temporary storage dir and (optionally) htpasswd basic auth;
its access log is read back to see which requests our client made. Also builds small OCI
image layouts by hand (deterministic gzip, so equal layers have equal digests).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from patience import Deadline, exit_of, scaled

REGISTRY_BIN = "/usr/bin/docker-registry"
_ACCESS = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/[0-9.]+" (\d{3})')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    proc: subprocess.Popen[bytes]
    log_path: Path
    storage: Path
    token: TokenServer | None = None

    def requests(self, since: int = 0) -> list[tuple[str, str, int]]:
        """(method, uri, status) of every access-log line after byte offset *since*."""
        text = self.log_path.read_bytes()[since:].decode(errors="replace")
        return [(m[1], m[2], int(m[3])) for m in _ACCESS.finditer(text)]

    def mark(self) -> int:
        return self.log_path.stat().st_size

    def restart(self) -> None:
        """Start it again after ``stop``: same port, storage and log (a registry back)."""
        config = self.log_path.with_name("config.yml")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = Deadline(30)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=scaled(5)).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                if deadline.expired():
                    raise RuntimeError(f"docker-registry did not come back in {deadline}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            if not exit_of(self.proc):
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """(cert, key) for 127.0.0.1, made by openssl."""
    cert, key = workdir / "tls-cert.pem", workdir / "tls-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def start_registry(
    workdir: Path,
    htpasswd: Path | None = None,
    token: TokenServer | None = None,
    tls: tuple[Path, Path] | None = None,
) -> Registry:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = workdir / "storage"
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: unionfs-test\n    path: {htpasswd}\n"
    if token is not None:
        auth = (
            f"auth:\n  token:\n    realm: {token.realm}\n    service: unionfs-test-registry\n"
            f"    issuer: unionfs-test-issuer\n    rootcertbundle: {token.cert}\n"
        )
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        + (f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n" if tls else "")
        + auth
    )
    log_path = workdir / "registry.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    reg = Registry(f"127.0.0.1:{port}", proc, log_path, storage)
    deadline = Deadline(30)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log_path.read_text()[-2000:]}")
        try:
            scheme = "https" if tls else "http"
            context = ssl._create_unverified_context() if tls else None
            urllib.request.urlopen(f"{scheme}://{reg.host}/v2/", timeout=scaled(5),
                                   context=context).close()  # fmt: skip
            return reg
        except urllib.error.HTTPError:
            return reg  # 401: up, wants auth
        except OSError:
            if deadline.expired():
                reg.stop()
                raise RuntimeError(f"docker-registry did not answer /v2/ in {deadline}") from None
            time.sleep(0.05)


def write_htpasswd(path: Path, user: str, password: str) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    path.write_text(f"{user}:{hashed}\n")


# -- OCI layouts by hand ------------------------------------------------------------------


def _blob(layout: Path, data: bytes) -> str:
    hexd = hashlib.sha256(data).hexdigest()
    d = layout / "blobs" / "sha256"
    d.mkdir(parents=True, exist_ok=True)
    (d / hexd).write_bytes(data)
    return "sha256:" + hexd


def layer_tar(files: Mapping[str, bytes | str | None]) -> tuple[bytes, str]:
    """A deterministic gzip'd tar of *files* (bytes: a file, str: a symlink to it, None: a
    directory); (blob bytes, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            value = files[name]
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            info.mode = 0o644
            if value is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(value, str):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, value, 0o777
                tar.addfile(info)
            else:
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
    plain = raw.getvalue()
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=1) as gz:
        gz.write(plain)
    return out.getvalue(), "sha256:" + hashlib.sha256(plain).hexdigest()


OCI_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
)
DOCKER_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
)


def build_image(
    layout: Path,
    tag: str,
    layers: Sequence[Mapping[str, bytes | str | None]],
    *,
    arch: str = "amd64",
    docker: bool = False,
) -> str:
    """Write an image of *layers* (bottom first) into *layout* as *tag*; its manifest
    digest. Several images can share a layout (and equal layers share blobs). *docker*:
    Docker v2 schema 2 media types instead of OCI ones."""
    manifest_type, config_type, layer_type = DOCKER_TYPES if docker else OCI_TYPES
    descs, diff_ids = [], []
    for files in layers:
        blob, diff_id = layer_tar(files)
        descs.append(
            {
                "mediaType": layer_type,
                "digest": _blob(layout, blob),
                "size": len(blob),
            }
        )
        diff_ids.append(diff_id)
    config = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {
                "mediaType": config_type,
                "digest": _blob(layout, config),
                "size": len(config),
            },
            "layers": descs,
        }
    ).encode()
    digest = _blob(layout, manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index_path = layout / "index.json"
    index = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "manifests": []}
    )
    index["manifests"] = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ] + [
        {
            "mediaType": manifest_type,
            "digest": digest,
            "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
    ]
    index_path.write_text(json.dumps(index))
    return digest


def random_bytes(n: int, seed: int) -> bytes:
    """*n* incompressible bytes, the same for the same seed."""
    import random

    return random.Random(seed).randbytes(n)


def blob_files(layout: Path) -> dict[str, bytes]:
    """hex -> bytes of every blob in *layout* (partials excluded)."""
    d = layout / "blobs" / "sha256"
    if not d.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in d.iterdir() if not p.name.startswith(".")}


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under *root* -> its bytes (None for directories): to prove it unchanged."""
    if not root.exists():
        return {}
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = None if p.is_dir() else p.read_bytes()
    return out


# -- bearer tokens: a token server for a docker-registry with ``auth: token`` --------------


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues RS256 JWTs (signed with ``openssl``) that docker-registry's token auth accepts:
    the certificate rides in the ``x5c`` header and is the registry's root bundle. Answers
    only requests with the right Basic credentials; grants what was asked for."""

    def __init__(self, workdir: Path, user: str, password: str) -> None:
        import base64
        import http.server
        import threading
        import urllib.parse

        workdir.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = workdir / "key.pem", workdir / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
             str(self.key), "-out", str(self.cert), "-days", "2", "-subj", "/CN=unionfs-test"],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True,
            capture_output=True,
        ).stdout
        self.x5c = base64.b64encode(der).decode()
        self.issued: list[list[str]] = []
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        server_self = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                query = urllib.parse.parse_qs(url.query)
                scopes = query.get("scope", [])
                server_self.issued.append(scopes)
                token = server_self.sign(query.get("service", [""])[0], scopes)
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def sign(self, service: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": "unionfs-test-issuer", "sub": "tester", "aud": service,
                  "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": os.urandom(8).hex(), "access": access}  # fmt: skip
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            check=True,
            capture_output=True,
        ).stdout
        return signing_input + "." + _b64url(sig)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
