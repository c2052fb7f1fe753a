"""The lazy layers of a mount opened in a thread (``lazy.opening``): the mount does not
wait for them; a call about one of their files waits until they are open, a call about
another layer never does; layers that could not be opened serve no byte (EIO), never a
placeholder's zeros; the prefetch starts once they are open, and not after a stop."""

from __future__ import annotations

import errno
import threading
import time
import typing

import pytest

from unionfs.lazy.opening import OpeningMount
from unionfs.lazy.serving import LazyMount

WAIT = 60.0  # generous: only a broken implementation ever waits this long


class FakeMount:
    def __init__(self) -> None:
        self.prefetching = threading.Event()
        self.stopped = False

    def pending(self, layer: str, path: bytes) -> bool:
        return path == b"wanted"

    def read(self, layer: str, path: bytes, offset: int, size: int) -> bytes:
        return b"data"[offset : offset + size]

    def fill(self, layer: str, path: bytes) -> None:
        pass

    def start_prefetch(self) -> None:
        self.prefetching.set()

    def stop(self) -> None:
        self.stopped = True


def opening(release: threading.Event, fake: FakeMount | None,
            started: threading.Event | None = None) -> OpeningMount:  # fmt: skip
    def open_() -> LazyMount:
        if started is not None:
            started.set()
        assert release.wait(WAIT)
        if fake is None:
            raise OSError(errno.ECONNREFUSED, "the registry is not there")
        return typing.cast(LazyMount, fake)

    return OpeningMount(["/lazy/tree"], open_)


def test_the_layers_open_while_the_mount_goes_on_and_their_calls_wait() -> None:
    release, fake, started = threading.Event(), FakeMount(), threading.Event()
    mount = opening(release, fake, started)  # returns while open_ is still blocked
    assert started.wait(WAIT)
    assert not mount.pending("/other/tree", b"wanted")  # another layer: no wait at all
    answers: list[bool] = []
    asker = threading.Thread(target=lambda: answers.append(mount.pending("/lazy/tree", b"wanted")))
    asker.start()
    asker.join(0.2)
    assert asker.is_alive() and answers == []  # waits for the layers to be open
    release.set()
    asker.join(WAIT)
    assert answers == [True]
    assert not mount.pending("/lazy/tree", b"other")
    assert mount.read("/lazy/tree", b"wanted", 1, 2) == b"at"
    mount.stop()
    assert fake.stopped


def test_layers_that_cannot_be_opened_serve_no_byte(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    release.set()
    mount = opening(release, None)
    assert mount.pending("/lazy/tree", b"any")  # unknown: never read as a placeholder
    with pytest.raises(OSError) as err:
        mount.read("/lazy/tree", b"any", 0, 10)
    assert err.value.errno == errno.EIO and "registry is not there" in str(err.value)
    with pytest.raises(OSError):
        mount.fill("/lazy/tree", b"any")
    assert "cannot be opened" in caplog.text
    mount.stop()


def test_the_prefetch_starts_once_open_and_never_after_a_stop() -> None:
    release, fake = threading.Event(), FakeMount()
    mount = opening(release, fake)
    mount.start_prefetch()  # returns at once; the prefetch waits for the layers
    assert not fake.prefetching.is_set()
    release.set()
    assert fake.prefetching.wait(WAIT)
    mount.stop()

    release, fake = threading.Event(), FakeMount()
    mount = opening(release, fake)
    mount.start_prefetch()
    stopper = threading.Thread(target=mount.stop)
    stopper.start()
    deadline = time.monotonic() + WAIT
    while not mount._stopped and time.monotonic() < deadline:  # stop has begun: then open
        time.sleep(0.01)
    release.set()
    stopper.join(WAIT)
    assert not fake.prefetching.is_set() and fake.stopped
