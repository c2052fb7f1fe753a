"""The test session and the mount zygote (``unionfs.zygote``): off for every test but the
zygote's own (UNIONFS_ZYGOTE=0 in the session's environment, handed on to other users'
runs), and every zygote the session started, found by its mark, stopped at the end."""

from __future__ import annotations

import os
import signal

ENV = "UNIONFS_ZYGOTE"
MARK = "UNIONFS_TEST_SESSION"  # in the environment of whatever the session starts


def session_env() -> dict[str, str]:
    """What this session's processes carry: the zygote's switch (off unless the caller
    of pytest chose) and the session's mark."""
    return {ENV: os.environ.get(ENV, "0"), MARK: os.environ.get(MARK, str(os.getpid()))}


def zygotes_marked(mark: str) -> list[int]:
    """Live zygotes (of any user) whose environment carries ``MARK=mark``."""
    want = f"{MARK}={mark}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if b"unionfs.zygote.server" not in f.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/environ", "rb") as f:
                if want in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue
    return found


def stop_marked(mark: str) -> list[int]:
    """SIGTERM each zygote with *mark* (by pid); the pids signalled."""
    pids = zygotes_marked(mark)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    return pids
