"""The command line: bad input fails cleanly; every way of mounting mounts; umount ends it.

A failed mount must exit non-zero with exactly one line on stderr, no traceback, and leave
nothing mounted. Mounts that succeed by mistake are unmounted here all the same.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mountutil import (
    force_unmount,
    fstype,
    log_problems,
    mount_options,
    mounts,
    unionfs_cmd,
    unionfs_mount,
)
from patience import exit_of, scaled, wait_until

CONSOLE_SCRIPT = Path(sys.executable).with_name("unionfs")  # not Debian's /usr/bin/unionfs
MOUNT_HELPER = Path("/usr/sbin/mount.fuse.unionfs")
GONE_TIMEOUT = 10.0  # hang guards, stretched by load (patience.py)
MOUNT_TIMEOUT = 60.0


def mount_count(mnt: Path) -> int:
    return sum(1 for point, _ in mounts() if point == str(mnt))


@contextmanager
def cleanup_new_mounts(mnt: Path) -> Iterator[None]:
    """Unmount whatever the body mounted at *mnt* (and only that), and wait for its daemon."""
    before = mount_count(mnt)
    try:
        yield
    finally:
        while mount_count(mnt) > before:
            count = mount_count(mnt)
            force_unmount(mnt)
            if mount_count(mnt) == count:
                subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
        if before == 0:
            wait_for_no_daemon(mnt)


def daemons_of(mnt: Path) -> list[int]:
    """Pids of processes (not us) whose command line names *mnt*."""
    needle = os.fsencode(str(mnt))
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if needle in args:
            found.append(int(entry))
    return found


def wait_for_no_daemon(mnt: Path) -> list[int]:
    wait_until(lambda: not daemons_of(mnt), GONE_TIMEOUT)
    return daemons_of(mnt)


def ended(proc: subprocess.Popen[bytes]) -> bytes:
    """The stderr of a daemon whose mount is gone, once it has exited (killed only when it
    is hung, which then fails the caller's check of its exit code)."""
    if not exit_of(proc):
        proc.kill()
    return proc.communicate()[1]


def run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=scaled(timeout), stdin=subprocess.DEVNULL
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], mnt: Path, mounted: int) -> None:
    assert result.returncode != 0, f"succeeded: {result}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"want one line on stderr, got {lines}"
    assert "Traceback" not in result.stderr
    assert mount_count(mnt) == mounted, "a failed mount left something mounted"


@pytest.fixture
def lower(newdir: Callable[..., Path]) -> Path:
    path = newdir("lower")
    (path / "hello").write_bytes(b"hello\n")
    return path


@pytest.fixture
def mnt(newdir: Callable[..., Path]) -> Path:
    return newdir("mnt")


def try_mount(opts: str, mnt: Path, *flags: str) -> None:
    mounted = mount_count(mnt)
    with cleanup_new_mounts(mnt):
        result = run(unionfs_cmd("mount", *flags, "-o", opts, str(mnt)))
        assert_clean_failure(result, mnt, mounted)


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [(), ("-f",)], ids=["background", "foreground"])
def test_missing_lowerdir_fails_cleanly(tmp_path: Path, mnt: Path, flags: tuple[str, ...]) -> None:
    try_mount(f"lowerdir={tmp_path / 'does-not-exist'}", mnt, *flags)


def test_mount_without_lowerdir_option_fails_cleanly(
    newdir: Callable[..., Path], mnt: Path
) -> None:
    try_mount(f"upperdir={newdir('up')},workdir={newdir('work')}", mnt)


def test_lowerdir_that_is_a_file_fails_cleanly(lower: Path, mnt: Path) -> None:
    try_mount(f"lowerdir={lower / 'hello'}", mnt)


def test_missing_upperdir_fails_cleanly(
    lower: Path, newdir: Callable[..., Path], tmp_path: Path, mnt: Path
) -> None:
    try_mount(f"lowerdir={lower},upperdir={tmp_path / 'no-up'},workdir={newdir('work')}", mnt)


def test_upperdir_without_workdir_fails_cleanly(
    lower: Path, newdir: Callable[..., Path], mnt: Path
) -> None:
    try_mount(f"lowerdir={lower},upperdir={newdir('up')}", mnt)


def test_workdir_on_another_filesystem_fails_cleanly(
    lower: Path, newdir: Callable[..., Path], mnt: Path
) -> None:
    other = newdir("tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(other)], check=True)
    try:
        (other / "work").mkdir()
        try_mount(f"lowerdir={lower},upperdir={newdir('up')},workdir={other / 'work'}", mnt)
    finally:
        if subprocess.run(["umount", str(other)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(other)], check=False)


def test_upperdir_that_is_also_a_lowerdir_fails_cleanly(
    lower: Path, newdir: Callable[..., Path], mnt: Path
) -> None:
    try_mount(f"lowerdir={lower},upperdir={lower},workdir={newdir('work')}", mnt)


def test_upperdir_inside_a_lowerdir_fails_cleanly(
    lower: Path, newdir: Callable[..., Path], mnt: Path
) -> None:
    (lower / "up").mkdir()
    try_mount(f"lowerdir={lower},upperdir={lower / 'up'},workdir={newdir('work')}", mnt)


def test_missing_mountpoint_fails_cleanly(lower: Path, tmp_path: Path) -> None:
    try_mount(f"lowerdir={lower}", tmp_path / "no-mnt")


def test_mounting_over_a_unionfs_mount_fails_cleanly(
    lower: Path, mnt: Path, tmp_path: Path
) -> None:
    with unionfs_mount([lower], mnt, log=tmp_path / "first.log"):
        try_mount(f"lowerdir={lower}", mnt)
        assert os.listdir(mnt) == ["hello"]


@pytest.mark.parametrize(
    "opts",
    ["lowerdir={l},bogus=1", "lowerdir={l}::{l}", "lowerdir=", "lowerdir={l}:"],
    ids=["unknown-option", "empty-layer", "empty-lowerdir", "trailing-colon"],
)
def test_malformed_options_fail_cleanly(lower: Path, mnt: Path, opts: str) -> None:
    try_mount(opts.format(l=lower), mnt)


# -- ways to mount ---------------------------------------------------------------------------


def test_escaped_colon_in_lowerdir_names_one_dir(
    newdir: Callable[..., Path], mnt: Path, lower: Path
) -> None:
    odd = newdir("colon") / "x:y"
    odd.mkdir()
    (odd / "from_colon_dir").write_bytes(b"c")
    assert "\\:" in mount_options([odd, lower])
    with unionfs_mount([odd, lower], mnt):
        assert sorted(os.listdir(mnt)) == ["from_colon_dir", "hello"]


def test_debug_flag_logs_requests(lower: Path, mnt: Path, tmp_path: Path) -> None:
    log = tmp_path / "debug.log"
    with unionfs_mount([lower], mnt, log=log, extra_args=["-d"]):
        before = log.stat().st_size if log.exists() else 0
        assert (mnt / "hello").read_bytes() == b"hello\n"
        os.listdir(mnt)
        after = log.stat().st_size
    assert after > before, "-d logged nothing for a lookup, an open, a read and a readdir"


def test_background_mount_serves_until_umount(lower: Path, mnt: Path, tmp_path: Path) -> None:
    log = tmp_path / "bg.log"
    with cleanup_new_mounts(mnt):
        result = run(unionfs_cmd("mount", "--log", str(log), "-o", f"lowerdir={lower}", str(mnt)))
        assert result.returncode == 0, result.stderr
        assert fstype(mnt) == "fuse.unionfs"
        assert (mnt / "hello").read_bytes() == b"hello\n"
        assert daemons_of(mnt), "no process names the mount point: cannot check it ends"
        result = run(unionfs_cmd("umount", str(mnt)))
        assert result.returncode == 0, result.stderr
        assert mount_count(mnt) == 0
        assert wait_for_no_daemon(mnt) == [], "the daemon outlived its mount"
    assert log_problems(log.read_text(errors="replace")) == []


def test_readonly_mount_without_upperdir_is_read_only(lower: Path, mnt: Path) -> None:
    with unionfs_mount([lower], mnt):
        with pytest.raises(OSError) as info:
            (mnt / "hello").write_bytes(b"x")
        assert info.value.errno == errno.EROFS


@pytest.mark.parametrize(
    "form",
    [
        ["unionfs", "{mnt}", "-o", "{opts}"],
        ["-o", "{opts}", "{mnt}"],
    ],
    ids=["source-mnt-o", "o-mnt"],
)
def test_mount_helper_forms_mount(lower: Path, mnt: Path, form: list[str]) -> None:
    args = [a.format(mnt=mnt, opts=f"lowerdir={lower}") for a in form]
    with cleanup_new_mounts(mnt):
        result = run([str(CONSOLE_SCRIPT), *args])
        assert result.returncode == 0, result.stderr
        assert fstype(mnt) == "fuse.unionfs"
        assert os.listdir(mnt) == ["hello"]
        assert run(unionfs_cmd("umount", str(mnt))).returncode == 0
        assert mount_count(mnt) == 0
        assert wait_for_no_daemon(mnt) == []


def test_mount_t_fuse_unionfs_mounts(lower: Path, mnt: Path) -> None:
    assert MOUNT_HELPER.exists(), f"{MOUNT_HELPER} is missing: run ./dev.sh setup"
    with cleanup_new_mounts(mnt):
        opts = f"lowerdir={lower}"
        result = run(["mount", "-t", "fuse.unionfs", "unionfs", str(mnt), "-o", opts])
        assert result.returncode == 0, result.stderr
        assert fstype(mnt) == "fuse.unionfs"
        assert (mnt / "hello").read_bytes() == b"hello\n"
        assert run(["umount", str(mnt)]).returncode == 0
        assert mount_count(mnt) == 0
        assert wait_for_no_daemon(mnt) == []


def test_umount_of_a_directory_that_is_not_mounted_fails_cleanly(mnt: Path) -> None:
    result = run(unionfs_cmd("umount", str(mnt)))
    assert_clean_failure(result, mnt, 0)


@pytest.mark.parametrize("flags", [(), ("-f",)], ids=["background", "foreground"])
def test_relative_paths_are_taken_from_the_working_directory(
    newdir: Callable[..., Path], flags: tuple[str, ...]
) -> None:
    cwd = newdir("cwd")
    (cwd / "low").mkdir()
    (cwd / "low/rel").write_bytes(b"r")
    (cwd / "mnt").mkdir()
    mnt = cwd / "mnt"
    cmd = unionfs_cmd("mount", *flags, "-o", "lowerdir=low", "mnt")
    with cleanup_new_mounts(mnt):
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: fstype(mnt) is not None or proc.poll() is not None, MOUNT_TIMEOUT)
            assert fstype(mnt) == "fuse.unionfs", f"not mounted; exit {proc.poll()}"
            assert os.listdir(mnt) == ["rel"]
        finally:
            force_unmount(mnt)
            stderr = ended(proc)
        assert proc.returncode == 0, stderr


def test_mountpoint_and_layer_with_spaces_in_their_names(newdir: Callable[..., Path]) -> None:
    base = newdir("spaces")
    low, mnt = base / "low er", base / "mount point"
    low.mkdir()
    mnt.mkdir()
    (low / "f").write_bytes(b"f")
    with unionfs_mount([low], mnt):
        assert fstype(mnt) == "fuse.unionfs"
        assert os.listdir(mnt) == ["f"]


def test_lowerdir_given_through_a_symlink_shows_its_target(
    lower: Path, newdir: Callable[..., Path], mnt: Path
) -> None:
    link = newdir("link") / "to-lower"
    link.symlink_to(lower)
    with unionfs_mount([link], mnt):
        assert os.listdir(mnt) == ["hello"]


def test_mount_t_fuse_unionfs_accepts_fstab_style_options(lower: Path, mnt: Path) -> None:
    assert MOUNT_HELPER.exists(), f"{MOUNT_HELPER} is missing: run ./dev.sh setup"
    with cleanup_new_mounts(mnt):
        opts = f"ro,nosuid,nodev,noatime,lowerdir={lower}"
        result = run(["mount", "-t", "fuse.unionfs", "unionfs", str(mnt), "-o", opts])
        assert result.returncode == 0, result.stderr
        assert os.listdir(mnt) == ["hello"]
        assert run(["umount", str(mnt)]).returncode == 0
        assert wait_for_no_daemon(mnt) == []


def test_foreground_without_log_file_logs_to_stderr(lower: Path, mnt: Path) -> None:
    cmd = unionfs_cmd("mount", "-f", "-d", "-o", f"lowerdir={lower}", str(mnt))
    with cleanup_new_mounts(mnt):
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            mounted = wait_until(lambda: os.path.ismount(mnt) or proc.poll() is not None,
                                 MOUNT_TIMEOUT)  # fmt: skip
            assert mounted and os.path.ismount(mnt), f"not mounted; exit {proc.poll()}"
            assert (mnt / "hello").read_bytes() == b"hello\n"
        finally:
            force_unmount(mnt)
            stderr = ended(proc)
    assert proc.returncode == 0
    text = stderr.decode(errors="replace")
    assert text.strip(), "-f -d without --log wrote nothing to stderr"
    assert log_problems(text) == []
