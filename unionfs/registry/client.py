"""One registry's HTTP API (OCI distribution spec) on httpx: ping, blobs, manifests.

Owns the connection, the scheme (https; plain http too when TLS verification is off), and
authentication: on a 401 it answers the ``WWW-Authenticate`` challenge (Basic with the
credentials, or Bearer with a token fetched from the realm) and retries once. Every failure
leaves as a one-line ``UserError``; credentials and tokens never appear in a message.
Uploads go through its ``send`` (``upload``). It does not know about blob directories or
images (``transfer`` does).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import httpx

from unionfs.registry.auth import Credentials, RegistryError, fetch_token, parse_challenge
from unionfs.registry.digest import CHUNK, VerifyingReader, sha256_digest, short
from unionfs.registry.manifest import ACCEPT

Content = Callable[[], Iterator[bytes] | bytes]
USER_AGENT = "unionfs-registry/0.1"


@dataclass(frozen=True, slots=True)
class ManifestData:
    data: bytes
    media_type: str
    digest: str


def _error_detail(resp: httpx.Response) -> str:
    """The first ``errors[].message`` of an error body, if there is one."""
    try:
        body = json.loads(resp.read() or b"null")
        first = body["errors"][0]
        text = str(first.get("message") or first.get("code") or "")
    except (ValueError, LookupError, TypeError, AttributeError, httpx.HTTPError):
        return ""
    return f" ({text[:200]})" if text else ""


class Client:
    """A session with one registry. Use as a context manager (it owns connections)."""

    def __init__(
        self,
        registry: str,
        api_host: str | None = None,
        *,
        tls_verify: bool = True,
        credentials: Credentials | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.registry = registry
        self.host = api_host or registry
        self.tls_verify = tls_verify
        self._credentials = credentials
        self._http = httpx.Client(
            verify=tls_verify,
            follow_redirects=True,
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )
        self._base: str | None = None
        self._basic = False  # the registry asked for Basic auth: send it on every request
        self._tokens: dict[tuple[str, ...], str] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _transport_error(self, exc: httpx.TransportError, what: str) -> RegistryError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            reason = str(exc).split("] ")[-1] or type(exc).__name__
            if "ssl" in str(exc).lower() or "certificate" in str(exc).lower():
                hint = "plain http or a self-signed certificate? --tls-verify=false"
                return RegistryError(f"TLS to registry {self.registry} failed: {reason} ({hint})")
            return RegistryError(f"cannot reach registry {self.registry}: {reason}")
        if isinstance(exc, httpx.TimeoutException):
            return RegistryError(f"registry {self.registry} timed out during {what}")
        return RegistryError(f"{what}: connection to {self.registry} failed ({exc})")

    def base(self) -> str:
        """``https://host`` or ``http://host``, found by pinging ``/v2/`` once."""
        if self._base is None:
            self.ping()
        assert self._base is not None
        return self._base

    def ping(self) -> None:
        """Check that a registry answers ``/v2/`` (a 401 counts: it is there, wants auth)."""
        if self._base is not None:
            return
        schemes = ["https"] if self.tls_verify else ["https", "http"]
        last: RegistryError | None = None
        for scheme in schemes:
            try:
                resp = self._http.get(f"{scheme}://{self.host}/v2/")
            except httpx.TransportError as exc:
                last = self._transport_error(exc, "ping")
                continue
            if resp.status_code in (200, 401):
                self._base = f"{scheme}://{self.host}"
                return
            last = RegistryError(
                f"{self.registry} does not look like an OCI registry: GET /v2/ answered "
                f"{resp.status_code} {resp.reason_phrase}",
                resp.status_code,
            )
        assert last is not None
        raise last

    def check_login(self) -> None:
        """Prove the credentials to the registry (``GET /v2/`` answering its challenge), as
        ``podman login`` does; RegistryError when it refuses them."""
        self.ping()
        resp = self.send("GET", "/v2/", (), what="login")
        resp.close()
        if resp.status_code in (401, 403):
            raise RegistryError(f"logging into {self.registry}: invalid username or password",
                                resp.status_code)  # fmt: skip
        if resp.status_code != 200:
            raise self._fail(resp, "login")

    def _auth_headers(self, scopes: tuple[str, ...]) -> dict[str, str]:
        token = self._tokens.get(scopes)
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and self._credentials is not None:
            return {"Authorization": self._credentials.basic_header()}
        return {}

    def _authenticate(self, resp: httpx.Response, scopes: tuple[str, ...]) -> bool:
        """Answer a 401's challenge; True when there is something new to retry with."""
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            return False
        if challenge.scheme == "basic":
            if self._basic or self._credentials is None:
                return False
            self._basic = True
            return True
        if challenge.scheme == "bearer":
            # Also when a token is cached: it may have expired during a long transfer.
            self._tokens[scopes] = fetch_token(
                self._http, self.registry, challenge, scopes, self._credentials
            )
            return True
        return False

    def send(
        self,
        method: str,
        url: str | httpx.URL,
        scopes: tuple[str, ...],
        *,
        what: str,
        headers: dict[str, str] | None = None,
        content: Content | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """One request, answering one auth challenge; the response may be any status."""
        if isinstance(url, str) and url.startswith("/"):
            url = self.base() + url
        for attempt in range(2):
            request = self._http.build_request(
                method,
                url,
                headers={**(headers or {}), **self._auth_headers(scopes)},
                content=content() if content is not None else None,
            )
            try:
                resp = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise self._transport_error(exc, what) from None
            if resp.status_code == 401 and attempt == 0 and self._authenticate(resp, scopes):
                resp.close()
                continue
            return resp
        return resp

    def _fail(self, resp: httpx.Response, what: str) -> RegistryError:
        status = resp.status_code
        detail = _error_detail(resp)
        resp.close()
        if status == 401:
            why = "credentials refused" if self._credentials else "no credentials found"
            msg = f"{what}: registry {self.registry} says unauthorized ({why}; see --authfile)"
        elif status == 403:
            msg = f"{what}: registry {self.registry} denied access{detail}"
        elif status == 404:
            msg = f"{what}: not found on {self.registry}{detail}"
        else:
            msg = f"{what}: registry {self.registry} answered {status} {resp.reason_phrase}{detail}"
        return RegistryError(msg, status)

    # -- blobs ------------------------------------------------------------------------------

    @staticmethod
    def pull_scope(repo: str) -> tuple[str, ...]:
        return (f"repository:{repo}:pull",)

    @staticmethod
    def push_scope(repo: str) -> tuple[str, ...]:
        return (f"repository:{repo}:pull,push",)

    def blob_exists(self, repo: str, digest: str, *, push: bool = False) -> bool:
        scopes = self.push_scope(repo) if push else self.pull_scope(repo)
        what = f"checking blob {short(digest)} in {repo}"
        resp = self.send("HEAD", f"/v2/{repo}/blobs/{digest}", scopes, what=what)
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(resp, what)

    def fetch_blob(
        self,
        repo: str,
        digest: str,
        size: int | None,
        consume: Callable[[BinaryIO], None],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """GET a blob and hand ``consume`` a verifying reader over its body.

        The reader raises at the end of the body if the size or digest is wrong, and a body
        cut short raises too, so ``consume`` must make nothing visible before reading to EOF.
        """
        what = f"downloading blob {short(digest)} from {repo}"
        resp = self.send(
            "GET", f"/v2/{repo}/blobs/{digest}", self.pull_scope(repo), what=what, stream=True
        )
        try:
            if resp.status_code != 200:
                raise self._fail(resp, what)

            def chunks() -> Iterator[bytes]:
                try:
                    yield from resp.iter_bytes(CHUNK)
                except httpx.TransportError as exc:
                    raise RegistryError(f"{what}: the transfer broke off ({exc})") from None

            reader = VerifyingReader(
                chunks(),
                digest,
                size,
                what=f"blob {short(digest)} from {self.registry}",
                progress=progress,
            )
            consume(reader)  # type: ignore[arg-type]  # read() is all a consumer uses
        finally:
            resp.close()

    def send_range(self, repo: str, digest: str, ranges: str, what: str) -> httpx.Response:
        """GET blob *digest* with ``Range: <ranges>`` (``bytes=a-b,...``); the response
        unread (streamed), whatever its status: ``registry.ranges`` reads it."""
        return self.send("GET", f"/v2/{repo}/blobs/{digest}", self.pull_scope(repo), what=what,
                          headers={"Range": ranges}, stream=True)  # fmt: skip

    def fail(self, resp: httpx.Response, what: str) -> RegistryError:
        """The one-line error for an unexpected response (it is closed)."""
        return self._fail(resp, what)

    # -- manifests --------------------------------------------------------------------------

    def get_manifest(self, repo: str, reference: str, what: str) -> ManifestData:
        """A manifest or index by tag or digest, its digest checked (against the reference
        when it is a digest, else against ``Docker-Content-Digest`` when sent)."""
        resp = self.send(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            self.pull_scope(repo),
            what=what,
            headers={"Accept": ACCEPT},
        )
        if resp.status_code == 404:
            detail = _error_detail(resp)
            raise RegistryError(f"{what}: no such image on {self.registry}{detail}", 404)
        if resp.status_code != 200:
            raise self._fail(resp, what)
        data = resp.content
        digest = sha256_digest(data)
        claimed = reference if reference.startswith("sha256:") else None
        claimed = claimed or resp.headers.get("Docker-Content-Digest")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise RegistryError(
                f"{what}: the manifest from {self.registry} does not match its digest "
                f"{short(claimed)} (received {short(digest)})"
            )
        media = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return ManifestData(data, media, digest)

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> None:
        what = f"uploading the manifest {repo}:{reference}"
        resp = self.send(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            self.push_scope(repo),
            what=what,
            headers={"Content-Type": media_type},
            content=lambda: data,
        )
        if resp.status_code not in (200, 201, 202):
            raise self._fail(resp, what)
        claimed = resp.headers.get("Docker-Content-Digest")
        if claimed and claimed != sha256_digest(data):
            raise RegistryError(f"{what}: registry stored it under another digest {short(claimed)}")
