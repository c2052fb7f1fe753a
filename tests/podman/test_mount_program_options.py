"""The ``-o`` strings podman (containers/storage 1.43) hands its overlay mount program (pure)."""

from __future__ import annotations

import pytest

from unionfs.cli.mount import parse_helper_args
from unionfs.errors import UserError
from unionfs.mountopts import MountOptions, parse, split_options

G = "/var/lib/containers/storage/overlay"


def refused(text: str) -> str:
    with pytest.raises(UserError) as info:
        parse([text])
    return info.value.message


def test_a_container_mount_as_podman_sends_it() -> None:
    text = f"lowerdir={G}/l/AAA:{G}/l/BBB,upperdir={G}/c1/diff,workdir={G}/c1/work,,volatile"
    assert parse([text]) == MountOptions((f"{G}/l/AAA", f"{G}/l/BBB"), f"{G}/c1/diff",
                                         f"{G}/c1/work")  # fmt: skip


def test_a_trailing_empty_entry_is_ignored() -> None:
    text = f"lowerdir={G}/l/AAA,upperdir={G}/c1/diff,workdir={G}/c1/work,"
    assert parse([text]).upperdir == f"{G}/c1/diff"


def test_an_image_mount_has_no_upper_and_is_read_only() -> None:
    opts = parse([f"lowerdir={G}/i1/diff:{G}/i1/empty"])
    assert opts.upperdir is None and opts.readonly


@pytest.mark.parametrize(
    "item",
    ["volatile", "fsync=0", "xattr_permissions=0", 'context="system_u:object_r:t:s0:c1,c2"'],
)
def test_switches_podman_may_add_are_accepted(item: str) -> None:
    assert parse([f",,lowerdir=/a,{item},"]) == MountOptions(("/a",))


def test_a_quoted_context_keeps_its_commas_and_splits_the_rest() -> None:
    items = split_options('lowerdir=/a,context="u:r:t:s0:c1,c2",,volatile,')
    assert items == ["lowerdir=/a", 'context="u:r:t:s0:c1,c2"', "volatile"]


def test_five_hundred_lowers_in_tens_of_kilobytes() -> None:
    lowers = [f"{G}/l/{i:026d}" for i in range(500)]
    text = "lowerdir=" + ":".join(lowers) + f",upperdir={G}/c/diff,workdir={G}/c/work,,volatile"
    assert len(text) > 20_000
    assert parse([text]).lowerdirs == tuple(lowers)


@pytest.mark.parametrize("value", ["0:0:4294967295", ":0:0:65536", ":0:0:1:1000:1000:64536"])
def test_an_identity_uid_or_gid_map_shows_every_mapped_id_as_itself(value: str) -> None:
    owners = parse([f"lowerdir=/a,uidmapping={value},gidmapping={value}"]).owners
    assert owners.shown(0, 0) == (0, 0)
    assert owners.shown(1500, 1500) == (1500, 1500)


@pytest.mark.parametrize(
    "item",
    ["uidmapping=:0:1:1001:1001:0:1:1002:1002:64535",  # --userns=keep-id
     "gidmapping=:0:1000:1", "squash_to_uid=1000", "squash_to_gid=1000", "squash_to_root"],
)  # fmt: skip
def test_what_rootless_podman_sends_for_owners_is_accepted(item: str) -> None:
    assert not parse([f"lowerdir=/a,{item}"]).owners.identity


@pytest.mark.parametrize("value", ["0:0", ":a:b:c", "0:0:1:2"])
def test_a_malformed_map_is_refused(value: str) -> None:
    assert "malformed uidmapping" in refused(f"lowerdir=/a,uidmapping={value}")


def test_xattr_permissions_other_than_0_are_refused() -> None:
    assert refused("lowerdir=/a,xattr_permissions=2") == (
        "option 'xattr_permissions' is not supported yet"
    )
    assert "malformed" in refused("lowerdir=/a,xattr_permissions=yes")


def test_the_argv_podman_uses_is_exactly_dash_o_opts_target() -> None:
    args = parse_helper_args(["-o", "lowerdir=/a,,volatile", "/mnt/merged"])
    assert (args.options, args.mountpoint, args.source) == (
        ["lowerdir=/a,,volatile"],
        "/mnt/merged",
        None,
    )
