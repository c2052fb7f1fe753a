"""What a runtime killed with SIGKILL left of its container: the process, the root mount,
the cgroups (recorded in the state by that runtime). ``unionfs rm`` cleans a dead
container up this way before deleting it; ``unionfs start`` before running it again.
Only what the state names is touched; the state directory itself is left to the caller.
"""

from __future__ import annotations

import contextlib
import os
import signal

from unionfs.runtime import cgroups, placement, rootfs
from unionfs.runtime.state import State, is_alive


def kill(state: State) -> None:
    """SIGKILL the container's process, if it is still the one the state names."""
    if state.pid is not None and is_alive(state):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.pid, signal.SIGKILL)


def clean_up(state: State, mountpoint: str) -> None:
    """Kill the process, unmount *mountpoint* (the container's rootfs), remove the cgroups."""
    kill(state)
    rootfs.unmount(mountpoint)
    if state.cgroup:
        cgroups.from_record(dict(state.cgroup)).remove()
    # another runtime (--runtime runc) makes one in every hierarchy, by our name
    placement.named(f"unionfs-{state.id}").remove()
