"""Image names by the reference grammar, as podman names them: malformed ones refused in
one line before anything is written; a short name is ``localhost/NAME``; a short name
finds the one image whose full name ends with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store.conftest import Run
from store.storeutil import listing, oci_layout, rootfs, tar_dir

from unionfs.store import ImageStore

BAD = ["UPPER:x", "x:", "a//b", "foo:bar:baz", "bad name", "x@sha256:" + "a" * 64,
       "sha256:" + "b" * 64]  # fmt: skip


@pytest.fixture
def image(uf: Run, tmp_path: Path) -> str:
    uf("import", str(rootfs(tmp_path / "rootfs")), "base:1")
    return "base:1"


def test_a_malformed_name_is_refused_and_nothing_written(
    uf: Run, image: str, store_root: Path, tmp_path: Path
) -> None:
    """Every malformed name, by every verb that names an image (one store for all of
    them: each refusal must leave it as it was, so the next one starts from the same)."""
    before = (listing(store_root), uf("images", "--format", "{{.Repository}}:{{.Tag}}").stdout)
    uf("create", "--name", "c", image)
    for name in BAD:
        for argv in (("tag", image, name), ("import", str(tmp_path / "rootfs"), name),
                     ("commit", "c", name)):  # fmt: skip
            proc = uf(*argv, ok=False)
            assert proc.returncode == 2, (argv, proc.stderr)
            lines = proc.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("unionfs: invalid image name"), \
                (argv, lines)  # fmt: skip
    uf("rm", "c")
    after = (listing(store_root), uf("images", "--format", "{{.Repository}}:{{.Tag}}").stdout)
    assert after == before


def test_an_archive_with_a_malformed_name_is_refused(uf: Run, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    oci_layout(layout, [b""], tag="latest")
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"]["io.containers.image.name"] = "UPPER/x:1"
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "UPPER/x:1"
    (layout / "index.json").write_text(json.dumps(index))
    proc = uf("load", "-i", str(tar_dir(layout, tmp_path / "bad.tar")), ok=False)
    assert proc.returncode == 2 and "invalid image name 'UPPER/x:1'" in proc.stderr
    assert uf("images", "-q").stdout == ""


def test_a_short_name_is_a_localhost_name(uf: Run, image: str) -> None:
    assert uf("images", "--format", "{{.Repository}}:{{.Tag}}").stdout == "localhost/base:1\n"
    uf("tag", "base:1", "other")
    names = uf("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert names == ["localhost/base:1", "localhost/other:latest"]
    for ref in ("base:1", "localhost/base:1", "other", "localhost/other:latest"):
        assert uf("inspect", "--format", "{{.RepoTags}}", ref).stdout.startswith("[localhost/")


def test_a_short_name_finds_the_one_image_it_ends(uf: Run, image: str) -> None:
    uf("tag", image, "quay.io/team/tool:2")
    image_id = uf("images", "-q", "--no-trunc").stdout.split()[0]
    for ref in ("tool:2", "team/tool:2", "quay.io/team/tool:2"):
        assert uf("inspect", "--format", "sha256:{{.Id}}", ref).stdout.strip() == image_id
    uf("tag", "base:1", "docker.io/other/tool:2")  # the same image: still one answer
    assert uf("inspect", "--format", "{{.Id}}", "tool:2").returncode == 0
    assert uf("inspect", "tool:3", ok=False).stderr.strip() == "unionfs: no such image or " \
        "container: tool:3"  # fmt: skip


def test_a_short_name_two_images_end_with_is_ambiguous(uf: Run, tmp_path: Path) -> None:
    uf("import", str(rootfs(tmp_path / "a", {"a": b"1"})), "quay.io/a/tool:1")
    uf("import", str(rootfs(tmp_path / "b", {"b": b"2"})), "docker.io/b/tool:1")
    proc = uf("rmi", "tool:1", ok=False)
    assert proc.returncode == 1
    assert proc.stderr == "unionfs: short name 'tool:1' matches docker.io/b/tool:1 and " \
        "quay.io/a/tool:1: give the full name\n"  # fmt: skip


def test_names_stored_before_localhost_was_added_are_still_found(
    uf: Run, image: str, store_root: Path
) -> None:
    with ImageStore(str(store_root)) as store:
        digest = store.resolve(image).digest
        with store.meta.write() as txn:
            store.meta.put_name(txn, "legacy:latest", digest)
            store.meta.put_name(txn, "UPPER:x", digest)  # written by a version that allowed it
    assert uf("inspect", "--format", "{{.Id}}", "legacy").returncode == 0
    assert uf("rmi", "UPPER:x").stdout == "Untagged: UPPER:x\n"
