"""Push and pull against a real ``docker-registry``: the blobs come back byte for byte, and
only what the other side lacks moves (checked in the registry's own access log)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from skopeoutil import skopeo

from registry.conftest import PASSWORD, USER
from registry.regutil import Registry, blob_files, build_image, random_bytes, snapshot
from unionfs.registry import manifest
from unionfs.registry.auth import RegistryError
from unionfs.registry.blobdir import OciLayout
from unionfs.registry.client import Client
from unionfs.registry.reference import parse_reference
from unionfs.registry.sources import BlobSources
from unionfs.registry.transfer import Summary, connect, pull, push

KIB = 1024


def base_layers() -> list[dict[str, bytes]]:
    return [
        {"etc/os-release": b"NAME=test\n", "bin/tool": random_bytes(300 * KIB, 1)},
        {"usr/lib/libx.so": random_bytes(200 * KIB, 2)},
    ]


def push_layout(reg: Registry, layout: Path, tag: str, target: str, **kw: object) -> Summary:
    ref = parse_reference(f"{reg.host}/{target}")
    with connect(ref, tls_verify=False) as client:
        return push(client, OciLayout(str(layout)), tag, ref, **kw)


def pull_layout(reg: Registry, source: str, dest: Path, name: str = "pulled") -> Summary:
    ref = parse_reference(f"{reg.host}/{source}")
    with connect(ref, tls_verify=False) as client:
        return pull(client, ref, OciLayout(str(dest)), name)


def blob_puts(requests: list[tuple[str, str, int]]) -> list[str]:
    return [uri for method, uri, _ in requests if method == "PUT" and "/blobs/uploads/" in uri]


def test_push_then_pull_gives_the_same_blobs(registry: Registry, tmp_path: Path) -> None:
    src = tmp_path / "src"
    digest = build_image(src, "v1", base_layers())
    mark = registry.mark()
    summary = push_layout(registry, src, "v1", "pp/img:v1", chunk_size=128 * KIB)
    assert summary.moved == 3 and summary.skipped == 0
    log = registry.requests(mark)
    assert any(m == "PATCH" for m, _, _ in log), "big layers go up in chunks"
    assert ("PUT", "/v2/pp/img/manifests/v1", 201) in log

    dest = tmp_path / "dest"
    pulled = pull_layout(registry, "pp/img:v1", dest, "mine")
    assert pulled.manifest_digest == digest
    assert blob_files(dest) == blob_files(src)
    assert OciLayout(str(dest)).image_manifest("mine")[0] == digest

    again = pull_layout(registry, "pp/img:v1", dest, "mine")
    assert again.moved == 0 and again.skipped == 3


def test_second_image_sharing_base_layers_uploads_only_its_own(
    registry: Registry, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    build_image(layout, "a", [*base_layers(), {"app/a": random_bytes(50 * KIB, 3)}])
    build_image(layout, "b", [*base_layers(), {"app/b": random_bytes(60 * KIB, 4)}])
    push_layout(registry, layout, "a", "shared/app:a")
    mark = registry.mark()
    summary = push_layout(registry, layout, "b", "shared/app:b")
    assert summary.moved == 2 and summary.skipped == 2
    log = registry.requests(mark)
    # Only the new top layer and the new config were uploaded: two POST+PUT pairs.
    assert len(blob_puts(log)) == 2
    assert sum(1 for m, u, _ in log if m == "POST" and u.endswith("/blobs/uploads/")) == 2
    man_b = json.loads(OciLayout(str(layout)).image_manifest("b")[1])
    base_digests = [d["digest"] for d in man_b["layers"][:2]]
    for d in base_digests:
        assert ("HEAD", f"/v2/shared/app/blobs/{d}", 200) in log
        assert not any(d in u for m, u, _ in log if m in ("PUT", "PATCH", "POST"))
    # The registry's storage holds each base blob once (content addressed).
    stored = {p.parent.name for p in registry.storage.rglob("data") if "blobs" in p.parts}
    assert set(d.split(":")[1] for d in base_digests) <= stored


def test_push_to_another_repository_mounts_instead_of_uploading(
    registry: Registry, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    build_image(layout, "v1", base_layers())
    sources = BlobSources(str(tmp_path / "sources.json"))
    push_layout(registry, layout, "v1", "mnt/one:v1", sources=sources)
    mark = registry.mark()
    summary = push_layout(registry, layout, "v1", "mnt/two:v1", sources=sources)
    assert summary.mounted == 3 and summary.moved == 0
    log = registry.requests(mark)
    mounts = [(u, s) for m, u, s in log if m == "POST" and "mount=" in u]
    assert len(mounts) == 3 and all(
        s == 201 and ("from=mnt%2Fone" in u or "from=mnt/one" in u) for u, s in mounts
    )
    assert blob_puts(log) == []
    assert pull_layout(registry, "mnt/two:v1", tmp_path / "dest").moved == 3


def test_pull_picks_linux_amd64_from_an_index_and_reads_docker_manifests(
    registry: Registry, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    amd = build_image(layout, "amd", [{"f": b"amd64"}], docker=True)
    arm = build_image(layout, "arm", [{"f": b"arm64"}], arch="arm64")
    push_layout(registry, layout, "amd", f"multi/img@{amd}")
    push_layout(registry, layout, "arm", f"multi/img@{arm}")
    entries = []
    for tag, arch in (("arm", "arm64"), ("amd", "amd64")):
        d, data = OciLayout(str(layout)).image_manifest(tag)
        media = json.loads(data)["mediaType"]
        entries.append(
            {
                "mediaType": media,
                "digest": d,
                "size": len(data),
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": manifest.OCI_INDEX, "manifests": entries}
    ).encode()
    with Client(registry.host, tls_verify=False) as client:
        client.put_manifest("multi/img", "latest", index, manifest.OCI_INDEX)
    dest = tmp_path / "dest"
    summary = pull_layout(registry, "multi/img", dest)
    assert summary.manifest_digest == amd
    layout_blobs = blob_files(layout)
    got = blob_files(dest)
    assert {h: layout_blobs[h] for h in got} == got
    assert json.loads(got[amd.split(":")[1]])["mediaType"] == manifest.DOCKER_MANIFEST


def test_pull_an_image_skopeo_pushed(registry: Registry, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    digest = build_image(layout, "v3", base_layers())
    subprocess.run(
        skopeo(
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"oci:{layout}:v3",
            f"docker://{registry.host}/bysko/img:v3",
        ),
        check=True,
        capture_output=True,
    )
    dest = tmp_path / "dest"
    summary = pull_layout(registry, "bysko/img:v3", dest)
    man = json.loads(OciLayout(str(layout)).image_manifest("v3")[1])
    wanted = [d["digest"] for d in man["layers"]] + [man["config"]["digest"]]
    got = blob_files(dest)
    src = blob_files(layout)
    for d in wanted:
        assert got[d.split(":")[1]] == src[d.split(":")[1]]
    assert summary.manifest_digest == digest  # skopeo kept it


def test_skopeo_inspects_what_we_pushed(registry: Registry, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    digest = build_image(layout, "v4", base_layers())
    push_layout(registry, layout, "v4", "forsko/img:v4")
    out = subprocess.run(
        skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/forsko/img:v4"),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    info = json.loads(out)
    man = json.loads(OciLayout(str(layout)).image_manifest("v4")[1])
    assert info["Digest"] == digest
    assert info["Layers"] == [d["digest"] for d in man["layers"]]
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    # And skopeo can copy it back out, byte-identical blobs.
    back = tmp_path / "back"
    subprocess.run(
        skopeo(
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            f"docker://{registry.host}/forsko/img:v4",
            f"oci:{back}:v4",
        ),
        check=True,
        capture_output=True,
    )
    assert blob_files(back) == blob_files(layout)


def test_missing_tag_is_one_line_and_leaves_the_destination_alone(
    registry: Registry, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    build_image(dest, "keep", [{"k": b"keep"}])
    before = snapshot(dest)
    with pytest.raises(RegistryError) as info:
        pull_layout(registry, "nosuch/img:nope", dest)
    assert "no such image" in info.value.message and "\n" not in info.value.message
    assert info.value.status == 404
    assert snapshot(dest) == before


def test_registry_down_is_one_line(tmp_path: Path) -> None:
    from registry.regutil import free_port

    dest = tmp_path / "dest"
    ref = parse_reference(f"127.0.0.1:{free_port()}/x/y:z")
    with connect(ref, tls_verify=False) as client, pytest.raises(RegistryError) as info:
        pull(client, ref, OciLayout(str(dest)), "n")
    assert "cannot reach registry 127.0.0.1:" in info.value.message
    assert "\n" not in info.value.message
    assert not dest.exists()


def write_authfile(path: Path, host: str, user: str, password: str) -> None:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": token}}}))


def test_basic_auth_with_an_authfile(auth_registry: Registry, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_image(layout, "v1", base_layers())
    good = tmp_path / "auth.json"
    write_authfile(good, auth_registry.host, USER, PASSWORD)
    ref = parse_reference(f"{auth_registry.host}/private/img:v1")
    with connect(ref, tls_verify=False, authfile=str(good)) as client:
        push(client, OciLayout(str(layout)), "v1", ref)
    with connect(ref, tls_verify=False, authfile=str(good)) as client:
        pull(client, ref, OciLayout(str(tmp_path / "dest")), "v1")
    assert blob_files(tmp_path / "dest") == blob_files(layout)

    bad = tmp_path / "bad.json"
    write_authfile(bad, auth_registry.host, USER, "wrong-password")
    empty = tmp_path / "empty.json"
    empty.write_text('{"auths": {}}')
    for authfile, why in ((bad, "credentials refused"), (empty, "no credentials found")):
        dest = tmp_path / f"dest-{why[:2]}"
        with (
            connect(ref, tls_verify=False, authfile=str(authfile)) as client,
            pytest.raises(RegistryError) as info,
        ):
            pull(client, ref, OciLayout(str(dest)), "v1")
        assert info.value.status == 401 and why in info.value.message
        assert "wrong-password" not in info.value.message and PASSWORD not in info.value.message
        assert not dest.exists()


def test_bearer_token_auth_against_a_token_server(token_registry: Registry, tmp_path: Path) -> None:
    """docker-registry with ``auth: token``: the client answers the Bearer challenge at the
    realm with its Basic credentials, for push and pull scopes, and the registry accepts
    the signed token."""
    layout = tmp_path / "layout"
    build_image(layout, "v1", base_layers())
    authfile = tmp_path / "auth.json"
    write_authfile(authfile, token_registry.host, USER, PASSWORD)
    ref = parse_reference(f"{token_registry.host}/tok/img:v1")
    with connect(ref, tls_verify=False, authfile=str(authfile)) as client:
        push(client, OciLayout(str(layout)), "v1", ref)
    with connect(ref, tls_verify=False, authfile=str(authfile)) as client:
        pull(client, ref, OciLayout(str(tmp_path / "dest")), "v1")
    assert blob_files(tmp_path / "dest") == blob_files(layout)
    assert token_registry.token is not None
    issued = [s for scopes in token_registry.token.issued for s in scopes]
    assert "repository:tok/img:pull,push" in issued and "repository:tok/img:pull" in issued

    wrong = tmp_path / "wrong.json"
    write_authfile(wrong, token_registry.host, USER, "bad-password")
    with (
        connect(ref, tls_verify=False, authfile=str(wrong)) as client,
        pytest.raises(RegistryError) as info,
    ):
        pull(client, ref, OciLayout(str(tmp_path / "d2")), "v1")
    assert "refused the credentials" in info.value.message
    assert "bad-password" not in info.value.message
    assert not (tmp_path / "d2").exists()


def test_https_with_a_self_signed_certificate(tls_registry: Registry, tmp_path: Path) -> None:
    """--tls-verify=false speaks https without checking the certificate (and never falls
    back to http when https answers); verification on refuses it in one line."""
    layout = tmp_path / "layout"
    build_image(layout, "v1", base_layers())
    mark = tls_registry.mark()
    push_layout(tls_registry, layout, "v1", "tls/img:v1")
    pull_layout(tls_registry, "tls/img:v1", tmp_path / "dest")
    assert blob_files(tmp_path / "dest") == blob_files(layout)
    assert ("PUT", "/v2/tls/img/manifests/v1", 201) in tls_registry.requests(mark)
    ref = parse_reference(f"{tls_registry.host}/tls/img:v1")
    with connect(ref, tls_verify=True) as client, pytest.raises(RegistryError) as info:
        pull(client, ref, OciLayout(str(tmp_path / "d2")), "v1")
    assert "TLS to registry" in info.value.message and "--tls-verify=false" in info.value.message
    assert "\n" not in info.value.message and not (tmp_path / "d2").exists()
