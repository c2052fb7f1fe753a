"""The thread that follows a mount's flags (``fuse/vfsflags.py``), on a tmpfs of its own:
a remount is followed even when it comes before the thread's first look at mountinfo,
and the daemon's own setting of its atime flags is not taken for a remount."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from patience import scaled

from unionfs import livemounts
from unionfs.fuse import vfsflags
from unionfs.union.atime import AtimePolicy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")


def _follow_in_thread(mount_id: int, since: vfsflags.Flags, current: AtimePolicy
                      ) -> tuple[threading.Thread, list[AtimePolicy], threading.Event]:  # fmt: skip
    seen: list[AtimePolicy] = []
    heard = threading.Event()

    def changed(policy: AtimePolicy) -> None:
        seen.append(policy)
        heard.set()

    thread = threading.Thread(target=vfsflags.follow,
                              args=(mount_id, since, lambda: current, changed), daemon=True)
    thread.start()
    return thread, seen, heard


@pytest.fixture
def tmpfs(tmp_path: Path) -> tuple[Path, int]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "relatime", "vfsflags-test", str(mnt)],
                   check=True)  # fmt: skip
    try:
        mount = livemounts.mounted_at(str(mnt))
        assert mount is not None
        yield mnt, mount.mount_id
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_remount_before_the_first_look_is_followed(tmpfs: tuple[Path, int]) -> None:
    mnt, mount_id = tmpfs
    made = vfsflags.flags_of(mount_id)
    assert made is not None
    subprocess.run(["mount", "-o", "remount,noatime", str(mnt)], check=True)
    thread, seen, heard = _follow_in_thread(mount_id, made, AtimePolicy("relatime"))
    assert heard.wait(scaled(30)), "the remount was not followed"
    subprocess.run(["umount", str(mnt)], check=True)
    thread.join(scaled(30))
    assert not thread.is_alive()
    assert seen == [AtimePolicy("noatime")]


def test_flags_that_keep_the_policy_are_not_a_change(tmpfs: tuple[Path, int]) -> None:
    mnt, mount_id = tmpfs
    made = vfsflags.flags_of(mount_id)
    assert made is not None
    # the daemon setting strictatime itself, its policy from the start
    assert vfsflags.set_atime_flags(str(mnt), AtimePolicy("strictatime"))
    thread, seen, heard = _follow_in_thread(mount_id, made, AtimePolicy("strictatime"))
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    assert heard.wait(scaled(30)), "the read-only remount was not followed"
    subprocess.run(["umount", str(mnt)], check=True)
    thread.join(scaled(30))
    assert seen == [AtimePolicy("strictatime", readonly=True)]
