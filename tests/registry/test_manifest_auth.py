"""Pure pieces: manifest/index parsing and platform choice, credentials, challenges,
the verifying reader, and the bearer-token flow (against httpx's mock transport)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from unionfs.errors import UserError
from unionfs.imageformat import DOCKER_CONFIG, LAYER_GZIP, OCI_MANIFEST
from unionfs.registry import auth, manifest
from unionfs.registry.auth import RegistryError
from unionfs.registry.client import Client
from unionfs.registry.digest import DigestMismatch, VerifyingReader

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def test_parse_manifest_and_index() -> None:
    m = manifest.parse(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": manifest.DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "digest": D1, "size": 3},
                "layers": [{"mediaType": LAYER_GZIP, "digest": D2, "size": 5}],
            }
        ).encode(),
        None,
        "x",
    )
    assert isinstance(m, manifest.Manifest)
    assert [d.digest for d in m.blobs] == [D2, D1]
    idx = manifest.parse(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {"mediaType": OCI_MANIFEST, "digest": D1, "size": 1,
                     "platform": {"os": "linux", "architecture": "arm64"}},
                    {"mediaType": OCI_MANIFEST, "digest": D2, "size": 1,
                     "platform": {"os": "linux", "architecture": "amd64"}},
                ],
            }
        ).encode(),
        manifest.OCI_INDEX,
        "x",
    )
    assert isinstance(idx, manifest.Index)
    assert manifest.pick_platform(idx).digest == D2
    with pytest.raises(UserError, match="linux/amd64, linux/arm64"):
        manifest.pick_platform(idx, "linux", "s390x")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"schemaVersion": 1, "fsLayers": []}',
        b'{"mediaType": "x/y"}',
        b'{"mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {}, "layers": []}',
        json.dumps({  # a layer of a media type that is no layer
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "c", "digest": "sha256:" + "1" * 64, "size": 1},
            "layers": [{"mediaType": "text/plain", "digest": "sha256:" + "2" * 64, "size": 1}],
        }).encode(),
    ],
)
def test_bad_manifests_are_user_errors(body: bytes) -> None:
    with pytest.raises(UserError):
        manifest.parse(body, None, "m")


def write_auth(path: Path, entries: dict[str, str]) -> None:
    path.write_text(
        json.dumps(
            {
                "auths": {
                    k: {"auth": base64.b64encode(v.encode()).decode()} for k, v in entries.items()
                }
            }
        )
    )


def test_credentials_sources_and_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    for var in ("REGISTRY_AUTH_FILE", auth.ENV_USER, auth.ENV_PASSWORD):
        monkeypatch.delenv(var, raising=False)
    assert auth.find_credentials("h:1", "r") is None
    (tmp_path / "cfg" / "unionfs").mkdir(parents=True)
    write_auth(tmp_path / "cfg" / "unionfs" / "auth.json", {"h:1": "def:pw1"})
    assert auth.find_credentials("h:1", "r") == auth.Credentials("def", "pw1")
    env_file = tmp_path / "env.json"
    write_auth(env_file, {"h:1/team": "team:pw2", "https://h:1": "host:pw3"})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(env_file))
    assert auth.find_credentials("h:1", "team/app") == auth.Credentials("team", "pw2")
    assert auth.find_credentials("h:1", "other") == auth.Credentials("host", "pw3")
    monkeypatch.setenv(auth.ENV_USER, "envuser")
    monkeypatch.setenv(auth.ENV_PASSWORD, "envpw")
    assert auth.find_credentials("h:1", "r") == auth.Credentials("envuser", "envpw")
    explicit = tmp_path / "explicit.json"
    write_auth(explicit, {"h:1": "exp:pw4"})
    assert auth.find_credentials("h:1", "r", str(explicit)) == auth.Credentials("exp", "pw4")
    with pytest.raises(UserError, match="does not exist"):
        auth.find_credentials("h:1", "r", str(tmp_path / "nope.json"))


def test_credentials_never_shown(tmp_path: Path) -> None:
    creds = auth.Credentials("user", "hunter2-secret")
    assert "hunter2" not in repr(creds) and "hunter2" not in str(creds)
    bad = tmp_path / "bad.json"
    bad.write_text('{"auths": {"h:1": {"auth": "!!notbase64"}}}')
    with pytest.raises(UserError) as info:
        auth.find_credentials("h:1", "r", str(bad))
    assert "notbase64" not in info.value.message


def test_parse_challenge() -> None:
    ch = auth.parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push"'
    )
    assert ch is not None and ch.scheme == "bearer"
    assert ch.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }
    basic = auth.parse_challenge('Basic realm="x"')
    assert basic is not None and basic.scheme == "basic"


def read_all(r: VerifyingReader) -> bytes:
    out = b""
    while chunk := r.read(4):
        out += chunk
    return out


def test_verifying_reader_detects_mismatch_and_truncation() -> None:
    data = b"hello world" * 100
    good = "sha256:" + hashlib.sha256(data).hexdigest()
    r = VerifyingReader(iter([data[:7], data[7:]]), good, len(data), what="b")
    assert r.read(3) + r.read() == data and r.read() == b""
    with pytest.raises(DigestMismatch, match="cut short"):
        read_all(VerifyingReader(iter([data[:50]]), good, len(data), what="b"))
    with pytest.raises(DigestMismatch, match="does not match"):
        read_all(VerifyingReader(iter([data.upper()]), good, len(data), what="b"))
    with pytest.raises(DigestMismatch, match="longer"):
        read_all(VerifyingReader(iter([data + b"x"]), good, len(data), what="b"))


def test_bearer_token_flow_sends_credentials_only_to_the_realm() -> None:
    """A 401 with a Bearer challenge -> GET realm?service&scope with Basic credentials ->
    the token on the retried request (and on later ones with the same scope)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/token":
            assert request.headers["Authorization"] == auth.Credentials("u", "p").basic_header()
            assert request.url.params.get_list("scope") == ["repository:a/b:pull"]
            assert request.url.params["service"] == "reg"
            return httpx.Response(200, json={"token": "TOKEN123"})
        if request.headers.get("Authorization") != "Bearer TOKEN123":
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://auth.test/token",service="reg",'
                    'scope="repository:a/b:pull"'
                },
            )
        return httpx.Response(200)

    client = Client(
        "reg.test", credentials=auth.Credentials("u", "p"), transport=httpx.MockTransport(handler)
    )
    with client:
        assert client.blob_exists("a/b", D1)
        assert client.blob_exists("a/b", D2)
    paths = [(r.url.host, r.url.path) for r in seen]
    assert paths == [
        ("reg.test", "/v2/"),
        ("reg.test", f"/v2/a/b/blobs/{D1}"),
        ("auth.test", "/token"),
        ("reg.test", f"/v2/a/b/blobs/{D1}"),
        ("reg.test", f"/v2/a/b/blobs/{D2}"),
    ]
    assert all(
        "Basic" not in r.headers.get("Authorization", "") for r in seen if r.url.host == "reg.test"
    )


def test_bearer_token_refused_is_one_line() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(401)
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="https://a.test/token"'}
        )

    with (
        Client(
            "reg.test",
            credentials=auth.Credentials("u", "wrong"),
            transport=httpx.MockTransport(handler),
        ) as client,
        pytest.raises(RegistryError) as info,
    ):
        client.blob_exists("a/b", D1)
    assert "refused the credentials" in info.value.message and "wrong" not in info.value.message


def test_an_expired_bearer_token_is_fetched_again() -> None:
    tokens = iter(["T1", "T2"])
    valid = {"current": ""}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            valid["current"] = next(tokens)
            return httpx.Response(200, json={"access_token": valid["current"]})
        if (
            request.headers.get("Authorization") != f"Bearer {valid['current']}"
            or not valid["current"]
        ):
            return httpx.Response(
                401, headers={"WWW-Authenticate": 'Bearer realm="https://a.test/token"'}
            )
        return httpx.Response(200)

    with Client("reg.test", transport=httpx.MockTransport(handler)) as client:
        assert client.blob_exists("a/b", D1)
        valid["current"] = "expired-by-the-server"
        assert client.blob_exists("a/b", D2)
