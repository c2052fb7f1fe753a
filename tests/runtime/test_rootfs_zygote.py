"""The container root's mount and the mount zygote: a run in a user namespace of its own
(rootless: one per container) starts no zygote that would outlive its one mount."""

from __future__ import annotations

from unionfs.runtime import rootfs
from unionfs.zygote import client


def test_a_run_in_its_own_user_namespace_mounts_without_a_zygote_unless_asked() -> None:
    assert rootfs.ZYGOTE_ENV == client.ENV
    assert rootfs.mount_env({"A": "1"}, private_userns=False) is None  # ours, as it is
    assert rootfs.mount_env({"A": "1"}, private_userns=True) == {"A": "1", client.ENV: "0"}
    assert rootfs.mount_env({client.ENV: "1"}, private_userns=True) is None  # asked for
