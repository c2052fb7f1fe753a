"""The io-mode bookkeeping of ``-o passthrough`` (``unionfs.fuse.passthrough``): one backing
per inode shared by its opens, none while it has cached opens, released with the last."""

from __future__ import annotations

import errno

import pytest

from unionfs.fuse.mount import passthrough_lacking
from unionfs.fuse.passthrough import CACHED, Backings
from unionfs.mountopts import parse


class Kernel:
    """Stands in for the session: hands out backing ids, records releases."""

    def __init__(self, refuse: int | None = None) -> None:
        self.next = 1
        self.registered: list[int] = []  # descriptors
        self.released: list[int] = []
        self.refuse = refuse

    def register(self, fd: int) -> int:
        if self.refuse is not None:
            raise OSError(self.refuse, "refused")
        self.registered.append(fd)
        self.next += 1
        return self.next - 1

    def release(self, backing: int) -> None:
        self.released.append(backing)


def test_opens_of_one_inode_share_one_backing_released_with_the_last() -> None:
    kernel = Kernel()
    b = Backings(kernel.register, kernel.release)
    assert b.passthrough(10, 5, lambda: 100) == 1
    assert b.passthrough(11, 5, lambda: 101) == 1  # the inode's own: no new registration
    assert kernel.registered == [100]
    b.released(10)
    assert kernel.released == [] and b.backing_of(5) == 1
    b.released(11)
    assert kernel.released == [1] and b.backing_of(5) is None
    b.released(11)  # twice, or a handle never counted: nothing
    assert kernel.released == [1]


def test_no_backing_while_the_inode_has_cached_opens() -> None:
    kernel = Kernel()
    b = Backings(kernel.register, kernel.release)
    assert b.cached(20, 7) is True
    assert b.backing_of(7) == CACHED
    assert b.passthrough(21, 7, lambda: 100) is None  # the kernel would fail it: EIO
    assert kernel.registered == []
    b.released(20)
    assert b.passthrough(22, 7, lambda: 100) == 1


def test_a_cached_open_after_passthrough_drops_the_kernels_pages() -> None:
    kernel = Kernel()
    b = Backings(kernel.register, kernel.release)
    b.passthrough(1, 3, lambda: 100)
    b.released(1)
    assert b.cached(2, 3) is False  # written past the page cache: its pages may be stale
    b.released(2)
    assert b.cached(4, 3) is True


def test_a_refused_backing_leaves_the_open_to_us() -> None:
    kernel = Kernel(refuse=errno.ELOOP)
    b = Backings(kernel.register, kernel.release)
    assert b.passthrough(1, 3, lambda: 100) is None
    assert b.passthrough(2, 3, lambda: 100) is None
    assert b.backing_of(3) is None and b.refusals == {errno.ELOOP: 2}


def test_option_is_parsed_and_refused_where_it_cannot_work() -> None:
    assert parse(["lowerdir=/a,upperdir=/u,workdir=/w,passthrough"]).passthrough
    assert not parse(["lowerdir=/a"]).passthrough
    assert "6.9" in (passthrough_lacking(release="6.8.12-generic", euid=0) or "")
    assert "root" in (passthrough_lacking(release="6.18.4", euid=1000) or "")


@pytest.mark.parametrize("release", ["6.9.0", "6.18.44-fc-v1300", "7.0"])
def test_option_is_accepted_on_a_new_enough_kernel_as_root(release: str) -> None:
    assert passthrough_lacking(release=release, euid=0) is None
