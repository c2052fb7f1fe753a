"""Owner mapping options (uidmapping=, gidmapping=, squash_to_*): parsing and both
directions of the translation, pure. The semantics are fuse-overlayfs 1.10's, checked here
by mounting it: with ``uidmapping=0:1000:1:1:110000:65536`` a file stored as 0 shows as
1000, one stored as 1000 shows as 110999, and chown to an unmapped id stores 65534."""

from __future__ import annotations

import pytest

from unionfs import idmap
from unionfs.errors import UserError
from unionfs.mountopts import parse

PODMAN = "0:1000:1:1:110000:65536"


def owners(*items: str) -> idmap.Owners:
    return parse([",".join(["lowerdir=/a", *items])]).owners


def test_no_option_is_the_identity() -> None:
    got = owners()
    assert got.identity
    assert got.shown(0, 5) == (0, 5)
    assert got.stored_uid(7) == 7


def test_mapping_shows_stored_ids_as_the_namespace_sees_them() -> None:
    got = owners(f"uidmapping={PODMAN}", f"gidmapping={PODMAN}")
    assert got.shown(0, 0) == (1000, 1000)
    assert got.shown(1000, 1) == (110999, 110000)
    assert got.shown(70000, 0) == (idmap.OVERFLOW_ID, 1000)  # beyond every range


def test_mapping_stores_shown_ids_back() -> None:
    got = owners(f"uidmapping={PODMAN}")
    assert got.stored_uid(1000) == 0
    assert got.stored_uid(110999) == 1000
    assert got.stored_uid(5) == idmap.OVERFLOW_ID  # unmapped: the overflow id, as fuse-overlayfs
    assert got.stored_gid(5) == 5  # no gidmapping: gids unchanged


def test_podman_leading_colon_form() -> None:
    assert owners(f"uidmapping=:{PODMAN}") == owners(f"uidmapping={PODMAN}")


def test_squash_changes_only_what_is_shown() -> None:
    got = owners("squash_to_root")
    assert got.shown(1000, 1000) == (0, 0)
    assert got.stored_uid(1000) == 1000
    assert owners("squash_to_uid=7", "squash_to_root").shown(1, 1) == (7, 0)
    assert owners("squash_to_root", "squash_to_gid=9").shown(1, 1) == (0, 9)


@pytest.mark.parametrize(
    "item",
    ["uidmapping=0:1000", "uidmapping=0:x:1", "gidmapping=", "uidmapping=0:0:0",
     "squash_to_uid=-1", "squash_to_gid=root"],
)  # fmt: skip
def test_malformed_values_are_one_line(item: str) -> None:
    with pytest.raises(UserError) as info:
        owners(item)
    assert item.split("=")[0] in info.value.message
    assert "\n" not in info.value.message
