"""The ImageStore API on temp dirs (no mounts): blobs verified, the registry client's flow
(add_blob + add_image), layers stored once, rmi keeping what others use."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from store.storeutil import layer_tar, oci_layout
from unionfs.errors import UserError
from unionfs.store import ImageStore, rmi
from unionfs.store.blobs import sha256_bytes

BASE = layer_tar([("etc", "dir", ""), ("etc/motd", "file", "base\n"), ("bin", "dir", ""),
                  ("bin/tool", "file", "#!/bin/sh\n")])  # fmt: skip
TOP = layer_tar([("etc", "dir", ""), ("etc/.wh.motd", "file", ""), ("etc/new", "file", "n\n")])


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    s = ImageStore(str(tmp_path / "store"), lambda _m: None)
    yield s
    s.close()


def copy_in(store: ImageStore, layout: Path, digests: dict[str, str]) -> None:
    """What a registry pull does: every blob into the store, verified against its digest."""
    for digest in digests.values():
        with open(layout / "blobs/sha256" / digest[7:], "rb") as f:
            assert store.add_blob(f, digest) == digest


def test_add_blob_refuses_a_mismatch_and_leaves_nothing(store: ImageStore) -> None:
    wrong = sha256_bytes(b"something else")
    with pytest.raises(UserError, match="digest mismatch"):
        store.add_blob(io.BytesIO(b"content"), wrong)
    assert os.listdir(store.blobs.dir) == []
    good = store.add_blob(io.BytesIO(b"content"), sha256_bytes(b"content"))
    assert store.has_blob(good) and Path(store.blob_path(good)).read_bytes() == b"content"


def test_invalid_digest_never_becomes_a_path(store: ImageStore) -> None:
    with pytest.raises(UserError, match="invalid digest"):
        store.blob_path("sha256:../../etc/passwd")


def test_registry_flow_add_image_then_image_manifest(store: ImageStore, tmp_path: Path) -> None:
    digests = oci_layout(tmp_path / "lay", [BASE, TOP])
    copy_in(store, tmp_path / "lay", digests)
    image = store.add_image(digests["manifest"], "localhost:5000/demo")
    assert image.names == ("localhost:5000/demo:latest",)
    digest, data = store.image_manifest("localhost:5000/demo")
    assert digest == digests["manifest"] and sha256_bytes(data) == digest
    top, base = store.lowers(image)
    assert Path(base, "etc/motd").read_text() == "base\n"
    assert Path(top, "etc/new").read_text() == "n\n"
    assert store.meta.setting("style") in ("kernel", "rootless")
    assert store.resolve(image.record.id[:5]).digest == digest


def test_add_image_refuses_a_missing_blob_and_records_nothing(
    store: ImageStore, tmp_path: Path
) -> None:
    digests = oci_layout(tmp_path / "lay", [BASE, TOP])
    del digests["layer1"]
    copy_in(store, tmp_path / "lay", digests)
    with pytest.raises(UserError, match="missing"):
        store.add_image(digests["manifest"], "demo")
    assert store.images() == [] and store.meta.names() == {}


def test_identical_layers_are_stored_once(store: ImageStore, tmp_path: Path) -> None:
    one = oci_layout(tmp_path / "one", [BASE])
    two = oci_layout(tmp_path / "two", [BASE, TOP])
    copy_in(store, tmp_path / "one", one)
    copy_in(store, tmp_path / "two", two)
    a = store.add_image(one["manifest"], "one")
    b = store.add_image(two["manifest"], "two")
    assert a.record.diff_ids[0] == b.record.diff_ids[0]
    assert len([n for n in os.listdir(store.layers_dir) if not n.startswith(".")]) == 2


def test_rmi_keeps_layers_another_image_uses(store: ImageStore, tmp_path: Path) -> None:
    one = oci_layout(tmp_path / "one", [BASE])
    two = oci_layout(tmp_path / "two", [BASE, TOP])
    copy_in(store, tmp_path / "one", one)
    copy_in(store, tmp_path / "two", two)
    store.add_image(one["manifest"], "one")
    b = store.add_image(two["manifest"], "two")
    assert rmi.remove_image(store, "two", False, list) == ["Untagged: localhost/two:latest",
                                                f"Deleted: {b.record.id}"]  # fmt: skip
    base_dir = store.layer_path(b.record.diff_ids[0])
    assert os.path.isdir(base_dir) and store.has_blob(one["layer0"])
    assert not os.path.exists(store.layer_path(b.record.diff_ids[1]))
    assert not store.has_blob(two["layer1"]) and not store.has_blob(two["manifest"])
    rmi.remove_image(store, "one", False, list)
    assert not os.path.exists(base_dir) and os.listdir(store.blobs.dir) == []


def test_rmi_of_one_name_keeps_the_image(store: ImageStore, tmp_path: Path) -> None:
    one = oci_layout(tmp_path / "one", [BASE])
    copy_in(store, tmp_path / "one", one)
    store.add_image(one["manifest"], "one")
    store.tag("one", "other:v2")
    assert rmi.remove_image(store, "other:v2", False, list) == ["Untagged: localhost/other:v2"]
    assert store.resolve("one").names == ("localhost/one:latest",)
    with pytest.raises(UserError, match="no such image"):
        store.resolve("other:v2")


def test_import_picks_linux_amd64_from_a_nested_index(store: ImageStore, tmp_path: Path) -> None:
    import json

    from store.storeutil import blob
    from unionfs.store import importer

    lay = tmp_path / "lay"
    amd = oci_layout(lay, [BASE], tag="x")
    arm = oci_layout(tmp_path / "arm", [TOP], tag="x")
    for name in os.listdir(tmp_path / "arm/blobs/sha256"):
        os.replace(tmp_path / "arm/blobs/sha256" / name, lay / "blobs/sha256" / name)
    mtype = "application/vnd.oci.image.manifest.v1+json"

    def entry(digest: str, arch: str) -> dict[str, object]:
        size = (lay / "blobs/sha256" / digest[7:]).stat().st_size
        return {"mediaType": mtype, "digest": digest, "size": size,
                "platform": {"os": "linux", "architecture": arch}}  # fmt: skip

    both = [entry(arm["manifest"], "arm64"), entry(amd["manifest"], "amd64")]
    nested = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
              "manifests": both}  # fmt: skip
    digest, size = blob(lay, json.dumps(nested).encode())
    (lay / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}))  # fmt: skip
    image = importer.import_image(store, str(lay), None, False)
    assert image.digest == amd["manifest"] and image.names == ("localhost/lay:multi",)
    assert store.has_blob(digest) is False  # the index itself is not kept: no image names it


def test_warnings_go_to_the_callback_the_store_was_given(tmp_path: Path) -> None:
    from unionfs.store import importer

    oci_layout(tmp_path / "lay", [BASE])
    (tmp_path / "lay/oci-layout").unlink()
    said: list[str] = []
    with ImageStore(str(tmp_path / "store"), said.append) as store:
        importer.import_image(store, str(tmp_path / "lay"), "warned", False)
    assert len(said) == 1 and "no oci-layout file" in said[0]
