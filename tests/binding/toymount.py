"""Mount the toy pyfuse3 file system (toyfs317.py) in a child process, always unmounted after.

Used by tests/binding and tools/binding_requests.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mountutil import EXIT_QUIET, MOUNT_TIMEOUT, force_unmount, log_problems
from patience import Deadline, exit_of

TOYFS = Path(__file__).with_name("toyfs317.py")  # toyfs.py + the libfuse 3.17 features


class Toy:
    """A live toyfs mount: *mnt* shows *backing*."""

    def __init__(self, mnt: Path, backing: Path) -> None:
        self.mnt = mnt
        self.backing = backing

    def stats(self) -> dict[str, Any]:
        return json.loads(os.getxattr(self.mnt, "user.toyfs.stats"))

    def counts(self) -> dict[str, int]:
        return dict(self.stats()["counts"])

    def invalidate(self, rel: str) -> None:
        os.setxattr(self.mnt, "user.toyfs.invalidate", rel.encode())


@contextmanager
def toy_mount(backing: Path, mnt: Path, features: Sequence[str] = ()) -> Iterator[Toy]:
    errfile = mnt.with_name(mnt.name + ".stderr")
    cmd = [sys.executable, str(TOYFS), str(backing), str(mnt)]
    for feature in features:
        cmd += ["--feature", feature]
    with open(errfile, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    mounted = killed = False
    try:
        deadline = Deadline(MOUNT_TIMEOUT)
        while not os.path.ismount(mnt):
            assert proc.poll() is None, f"toyfs exited: {errfile.read_text()}"
            assert not deadline.expired(), f"not mounted: {errfile.read_text()}"
            time.sleep(0.01)
        mounted = True
        yield Toy(mnt, backing)
    finally:
        force_unmount(mnt)
        if not exit_of(proc, EXIT_QUIET):
            killed = True
            proc.kill()
            proc.wait()
        text = errfile.read_text(errors="replace")
        if mounted and (killed or proc.returncode != 0 or log_problems(text)):
            raise AssertionError(f"toyfs: exit {proc.returncode}, killed={killed}\n{text}")
