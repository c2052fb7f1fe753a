"""The binding features that need libfuse 3.17 (third_party/libfuse) reach the kernel and do
what it promises: KILLPRIV_V2, O_TMPFILE, passthrough and no-export. The toy file system
(toyfs317.py) counts the requests it gets; a writer without CAP_FSETID runs under setpriv."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pyfuse3
import pytest
from mountutil import force_unmount
from toymount import Toy, toy_mount

ToyFactory = Callable[..., AbstractContextManager[Toy]]
CAPABILITY_CHECK = "getxattr:security.capability"
NO_FSETID = ["setpriv", "--inh-caps=-fsetid", "--bounding-set=-fsetid", "--"]
_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_ADMIN)")


def without_fsetid(code: str) -> None:
    """Run Python *code* as root without CAP_FSETID: the kernel then asks for the kill."""
    subprocess.run([*NO_FSETID, sys.executable, "-c", code], check=True)


def kills(t: Toy) -> dict[str, list[bool]]:
    return dict(t.stats()["kills"])


def link_fd(fd: int, target: Path) -> None:
    if _libc.linkat(fd, b"", AT_FDCWD, os.fsencode(target), AT_EMPTY_PATH) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "toy-libfuse", str(path)], check=True
    )
    try:
        yield path
    finally:
        force_unmount(path)


@pytest.mark.parametrize("v2", [False, True])
def test_killpriv_v2_ends_the_capability_check_before_every_write(
    toy: ToyFactory, v2: bool
) -> None:
    with toy(*(["killpriv_v2"] if v2 else [])) as t:
        (t.backing / "f").write_bytes(b"")
        fd = os.open(t.mnt / "f", os.O_WRONLY)
        try:
            for i in range(20):
                os.pwrite(fd, b"x", i)
        finally:
            os.close(fd)
        counts = t.counts()
        offered = t.stats()["kernel_capabilities"]
    assert "handle_killpriv_v2" in offered
    assert counts["write"] == 20
    # Without v2 the kernel asks before each write; with it once, then the inode is S_NOSEC.
    assert counts[CAPABILITY_CHECK] == (1 if v2 else 20)


def test_killpriv_v2_delivers_the_kill_flags(toy: ToyFactory) -> None:
    with toy("killpriv_v2") as t:
        f, name = t.backing / "f", str(t.mnt / "f")
        f.write_bytes(b"abc")
        os.chmod(f, 0o6755)
        with open(name, "r+b") as w:  # root has CAP_FSETID: nothing to clear
            w.write(b"A")
        assert kills(t)["write"][-1] is False
        assert stat.S_IMODE(f.stat().st_mode) == 0o6755
        without_fsetid(f"import os; fd = os.open({name!r}, os.O_WRONLY); os.write(fd, b'B')")
        assert kills(t)["write"][-1] is True
        assert stat.S_IMODE(f.stat().st_mode) == 0o755  # the toy cleared both bits

        os.chmod(f, 0o6755)
        without_fsetid(f"import os; os.close(os.open({name!r}, os.O_WRONLY | os.O_TRUNC))")
        assert kills(t)["open"][-1] is True
        os.close(os.open(name, os.O_WRONLY | os.O_TRUNC))
        assert kills(t)["open"][-1] is False

        without_fsetid(f"import os; os.truncate({name!r}, 5)")
        assert kills(t)["setattr"][-1] is True
        os.truncate(name, 3)
        assert kills(t)["setattr"][-1] is False


@pytest.mark.parametrize("handler", [False, True])
def test_o_tmpfile_and_linkat(toy: ToyFactory, handler: bool) -> None:
    with toy(*(["tmpfile"] if handler else [])) as t:
        if not handler:
            for _ in range(2):  # ENOSYS once; the kernel stops asking
                with pytest.raises(OSError) as info:
                    os.open(t.mnt, os.O_TMPFILE | os.O_RDWR, 0o600)
                assert info.value.errno == errno.EOPNOTSUPP
            assert t.counts()["tmpfile"] == 1
            return
        fd = os.open(t.mnt, os.O_TMPFILE | os.O_RDWR, 0o600)
        try:
            os.write(fd, b"anonymous")
            assert os.fstat(fd).st_nlink == 0
            assert os.listdir(t.mnt) == []
            link_fd(fd, t.mnt / "named")
        finally:
            os.close(fd)
        assert (t.mnt / "named").read_bytes() == b"anonymous"
        counts = t.counts()
    assert (counts["tmpfile"], counts["link"]) == (1, 1)
    assert (t.backing / "named").read_bytes() == b"anonymous"


@needs_root
@pytest.mark.parametrize("passthrough", [False, True])
def test_passthrough_reads_and_writes_bypass_the_daemon(toy: ToyFactory, passthrough: bool) -> None:
    data = os.urandom(1 << 20)
    with toy(*(["passthrough"] if passthrough else [])) as t:
        (t.mnt / "f").write_bytes(data)
        assert (t.mnt / "f").read_bytes() == data
        with open(t.mnt / "f", "r+b") as f, mmap.mmap(f.fileno(), 4096) as m:
            m[:5] = b"HELLO"  # mmap of a passthrough file maps the backing file
        counts, stats = t.counts(), t.stats()
    assert (t.backing / "f").read_bytes() == b"HELLO" + data[5:]
    if passthrough:
        assert stats["passthrough_errors"] == []
        assert (counts.get("read", 0), counts.get("write", 0)) == (0, 0)
    else:
        assert counts["read"] > 0 and counts["write"] > 0


@needs_root
@pytest.mark.parametrize("features", [("passthrough",), ("writeback",)])
def test_full_backing_fs_fails_write_under_passthrough_not_under_writeback(
    newdir: Callable[..., Path], features: tuple[str, ...]
) -> None:
    """The upper of a root mount is full: with passthrough write(2) itself gets ENOSPC, as on
    kernel overlayfs; with the write-back cache write(2) succeeds and the data is lost, the
    error coming only at fsync."""
    chunk = b"x" * (64 << 10)
    with (
        small_tmpfs(newdir("tmpfs"), "1m") as backing,
        toy_mount(backing, newdir("mnt"), features) as t,
    ):
        fd = os.open(t.mnt / "f", os.O_WRONLY | os.O_CREAT, 0o644)
        written, write_error, fsync_error = 0, None, None
        try:
            for _ in range(32):  # 2 MiB into 1 MiB
                written += os.write(fd, chunk)
        except OSError as exc:
            write_error = exc.errno
        try:
            os.fsync(fd)
        except OSError as exc:
            fsync_error = exc.errno
        finally:
            os.close(fd)
        stored = (backing / "f").stat().st_size
    if "passthrough" in features:
        assert (write_error, fsync_error) == (errno.ENOSPC, None)
        assert written == stored
    else:
        assert (write_error, fsync_error) == (None, errno.ENOSPC)
        assert written == 2 << 20 > stored


def test_passthrough_and_writeback_cache_exclude_each_other(tmp_path: Path) -> None:
    class Both(pyfuse3.Operations):
        enable_passthrough = True
        enable_writeback_cache = True

    with pytest.raises(ValueError, match="exclude each other"):
        pyfuse3.init(Both(), str(tmp_path))
