"""The flags of a remount, from the options mount(8) hands the helper (pure)."""

from __future__ import annotations

from unionfs.cli.remount import is_remount, remount_flags
from unionfs.runtime import mountflags as ms


def test_a_remount_is_recognised_among_other_options() -> None:
    assert is_remount(["ro,nosuid,relatime,remount,user_id=0"])
    assert not is_remount(["lowerdir=/a,ro"])


def test_remount_flags_keep_the_mounts_own_and_ignore_the_filesystems() -> None:
    flags = remount_flags(["ro,nosuid,relatime,remount,user_id=0,group_id=0,allow_other,"
                           "default_permissions,lowerdir=/ignored"])  # fmt: skip
    assert flags == ms.MS_REMOUNT | ms.MS_RDONLY | ms.MS_NOSUID | ms.MS_RELATIME


def test_later_words_win() -> None:
    assert remount_flags(["remount,ro,rw"]) == ms.MS_REMOUNT
    assert remount_flags(["remount,relatime,noatime"]) == (
        ms.MS_REMOUNT | ms.MS_RELATIME | ms.MS_NOATIME
    )
