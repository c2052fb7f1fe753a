"""Containers on a store, without mounts: a container holds its image against rmi; an
ordinary user's store turns extraction's owner warnings into one notice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store.storeutil import layer_tar, oci_layout

from unionfs.containers import lifecycle, userstore
from unionfs.errors import UserError
from unionfs.store import ImageStore, rmi

BASE = layer_tar([("etc", "dir", ""), ("etc/motd", "file", "base\n")])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    s = ImageStore(str(tmp_path / "store"), lambda _m: None)
    yield s
    s.close()


def test_rmi_refuses_an_image_a_container_uses(store: ImageStore, tmp_path: Path) -> None:
    from unionfs.store import importer

    oci_layout(tmp_path / "one", [BASE])
    importer.import_image(store, str(tmp_path / "one"), "one", False)
    state = lifecycle.create(store, "one", "c-rmi")
    with pytest.raises(UserError, match="in use by container c-rmi"):
        rmi.remove_image(store, "one", False, lambda: lifecycle.uses(store))
    lifecycle.states(store).delete(state.id)
    rmi.remove_image(store, "one", False, lambda: lifecycle.uses(store))
    assert store.images() == []


def test_owner_warnings_become_one_notice_when_only_the_users_id_is_mapped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    said: list[str] = []
    warn = userstore.owner_warnings(said.append, "no ranges: stored as yours")
    warn("owners are not kept (EPERM for a)")
    warn("skipped device node dev/null: EPERM")
    warn("owners are not kept (EPERM for b)")
    assert said == ["skipped device node dev/null: EPERM"]
    assert capsys.readouterr().err == "unionfs: no ranges: stored as yours\n"


def test_owner_warnings_pass_through_when_every_id_is_mapped() -> None:
    said: list[str] = []
    userstore.owner_warnings(said.append, None)("owners are not kept (EPERM for a)")
    assert said == ["owners are not kept (EPERM for a)"]


def test_a_container_of_an_image_is_mounted_sealed(
    store: ImageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's layers are never written once stored: the mount is told so (``sealed``)
    and does not walk them to find out whether they changed."""
    from unionfs.runtime import rootfs
    from unionfs.store import importer

    oci_layout(tmp_path / "one", [BASE])
    importer.import_image(store, str(tmp_path / "one"), "one", False)
    state = lifecycle.create(store, "one", "c-sealed")
    seen: list[tuple[str, ...]] = []
    monkeypatch.setattr(rootfs, "mount", lambda *args: seen.append(args[5]))
    lifecycle.mount(store, "c-sealed", ("ro",))
    assert seen == [("ro", "sealed")]
    lifecycle.states(store).delete(state.id)
