"""``-o passthrough``: open files of the upper are read and written by the kernel straight
from the upper's file (no read or write request reaches the daemon), a full upper fails
write(2) itself, mmap maps the upper's file, and a writer of a file whose lower copy is open
for reading gets its copy-up, never an EIO from the kernel's io-mode rules."""

from __future__ import annotations

import errno
import json
import mmap
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mountutil import TEST_OPTS_ENV, build_stack, force_unmount, fresh_dir, tree, unionfs_mount

LOWER = tree({"f": b"lower data\n", "big": bytes(range(256)) * 4096, "d": {"g": b"g\n"}})


def requests(profile: Path) -> dict[str, int]:
    return {name: row["requests"] for name, row in json.loads(profile.read_text()).items()}


@contextmanager
def mounted(
    base: Path, monkeypatch: pytest.MonkeyPatch, opts: str, upper_base: Path | None = None
) -> Iterator[tuple[Path, Path, Path]]:
    """The stack of LOWER mounted with *opts*, profiled: (mountpoint, upper, profile)."""
    (base / "layers").mkdir()
    lowers = build_stack(base / "layers", [LOWER], kernel=True)
    upper, work = fresh_dir(upper_base or base, "upper"), fresh_dir(upper_base or base, "work")
    profile = base / "profile.json"
    monkeypatch.setenv("UNIONFS_PROFILE", str(profile))
    monkeypatch.delenv(TEST_OPTS_ENV, raising=False)  # *opts* alone
    with unionfs_mount(lowers, fresh_dir(base, "mnt"), upper, work, [opts] if opts else []) as m:
        yield m, upper, profile


@pytest.mark.parametrize("opts", ["", "passthrough"])
def test_upper_files_are_read_and_written_without_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opts: str
) -> None:
    data = os.urandom(1 << 20)
    with mounted(tmp_path, monkeypatch, opts) as (mnt, upper, profile):
        (mnt / "new").write_bytes(data)
        assert (mnt / "new").read_bytes() == data
        with open(mnt / "big", "r+b") as f:  # copied up, then passed through
            f.write(b"HEAD")
        with open(mnt / "new", "r+b") as f, mmap.mmap(f.fileno(), 4096) as m:
            m[:5] = b"HELLO"  # a shared mapping of the upper's file
        assert (mnt / "new").read_bytes()[:6] == b"HELLO" + data[5:6]
        assert (mnt / "new").stat().st_size == 1 << 20
    assert (upper / "new").read_bytes() == b"HELLO" + data[5:]
    assert (upper / "big").read_bytes()[:6] == b"HEAD" + bytes([4, 5])
    counts = requests(profile)
    if opts:
        assert (counts.get("read", 0), counts.get("write", 0)) == (0, 0)
    else:
        assert counts["read"] > 0 and counts["write"] > 0


def test_a_writer_while_the_lower_copy_is_open_for_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader keeps the inode in the page cache: the writer gets its copy-up and direct
    I/O (not EIO), the reader follows the copy as under kernel overlayfs; once both are
    closed the next writer is passed through, and no stale page is read after it."""
    with mounted(tmp_path, monkeypatch, "passthrough") as (mnt, upper, profile):
        lower = tmp_path / "layers"
        reader = os.open(mnt / "f", os.O_RDONLY)
        try:
            assert os.pread(reader, 100, 0) == b"lower data\n"
            writer = os.open(mnt / "f", os.O_WRONLY)
            try:
                assert os.pwrite(writer, b"UPPER", 0) == 5
                assert os.pread(reader, 100, 0) == b"UPPER data\n"
                with open(mnt / "f", "rb") as third:
                    assert third.read() == b"UPPER data\n"
            finally:
                os.close(writer)
        finally:
            os.close(reader)
        before = json.dumps(sorted(p.name for p in lower.rglob("*")))
        with open(mnt / "f", "ab") as appender, open(mnt / "f", "rb") as sharer:
            appender.write(b"more\n")
            appender.flush()
            assert sharer.read() == b"UPPER data\nmore\n"
        assert (mnt / "f").read_bytes() == b"UPPER data\nmore\n"  # cached again, fresh
        with open(mnt / "f", "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
            assert m[:] == b"UPPER data\nmore\n"
    assert (upper / "f").read_bytes() == b"UPPER data\nmore\n"
    assert json.dumps(sorted(p.name for p in lower.rglob("*"))) == before
    assert b"lower data\n" in {p.read_bytes() for p in lower.rglob("f")}  # never written
    assert requests(profile)["write"] == 1  # the first writer's, the only one not passed


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "unionfs-passthrough", str(path)],
        check=True,
    )
    try:
        yield path
    finally:
        force_unmount(path)


def test_a_full_upper_fails_write_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As on kernel overlayfs: write(2) gets ENOSPC, and what it said it wrote is stored."""
    chunk = b"x" * (64 << 10)
    with (
        small_tmpfs(tmp_path / "tmpfs", "1m") as room,
        mounted(tmp_path, monkeypatch, "passthrough", upper_base=room) as (mnt, upper, _),
    ):
        fd = os.open(mnt / "out", os.O_WRONLY | os.O_CREAT, 0o644)
        written, write_error = 0, None
        try:
            for _ in range(32):  # 2 MiB into 1 MiB
                written += os.write(fd, chunk)
        except OSError as exc:
            write_error = exc.errno
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        assert write_error == errno.ENOSPC
        assert (upper / "out").stat().st_size == written < 2 << 20


def test_lower_files_pass_through_on_a_mount_without_an_upper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is ever copied up there, so a lower file may be an inode's backing."""
    (tmp_path / "layers").mkdir()
    lowers = build_stack(tmp_path / "layers", [LOWER], kernel=True)
    profile = tmp_path / "profile.json"
    monkeypatch.setenv("UNIONFS_PROFILE", str(profile))
    monkeypatch.delenv(TEST_OPTS_ENV, raising=False)
    atime = os.stat(lowers[0] / "big").st_atime_ns
    with unionfs_mount(lowers, fresh_dir(tmp_path, "mnt"), extra_opts=["passthrough"]) as mnt:
        assert (mnt / "big").read_bytes() == bytes(range(256)) * 4096
        with open(mnt / "f", "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
            assert m[:] == b"lower data\n"
    assert requests(profile).get("read", 0) == 0
    assert os.stat(lowers[0] / "big").st_atime_ns == atime
