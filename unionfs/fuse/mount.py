"""Running one FUSE session for a stack: init, serve until unmounted or signalled, close.

pyfuse3 allows one session per process, so this is called once, in the process that will
serve (the CLI forks that process before any thread exists).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Sequence

import pyfuse3
import trio

from unionfs import idmap
from unionfs.fuse import edge, space
from unionfs.fuse.ops import UnionOperations
from unionfs.union.stack import Stack

log = logging.getLogger("unionfs.mount")


def fuse_options(extra: Sequence[str], source: str) -> set[str]:
    """The options handed to libfuse: ours, then the user's."""
    options = {f"fsname={source}", "subtype=unionfs", "default_permissions"}
    if os.geteuid() == 0:
        # Like a kernel overlay mount made by root: every user may use it (the kernel checks
        # permissions, default_permissions), and set-uid files and device nodes work, which
        # libfuse would otherwise turn off (nosuid, nodev).
        if "allow_root" not in extra:
            options.add("allow_other")
        if "nosuid" not in extra:
            options.add("suid")
        if "nodev" not in extra:
            options.add("dev")
    for item in extra:
        if item.startswith("fsname="):
            options.discard(f"fsname={source}")
        if item == "rw":
            continue
        options.add(item)
    return options


def start(stack: Stack, mountpoint: str, options: set[str],
          owners: idmap.Owners = idmap.IDENTITY) -> UnionOperations:  # fmt: skip
    """Mount; on return the mount is live (requests queue until ``serve`` runs)."""
    # Modes arrive already masked by the caller's umask (the kernel applies it); ours
    # must not mask them a second time.
    os.umask(0)
    ops = UnionOperations(stack, owners)
    pyfuse3.init(ops, mountpoint, options)
    if stack.has_upper:
        limit = space.dirty_limit(space.bdi_of(mountpoint))
        ops.space.set_dirty_limit(limit)
        log.info("write-back cache while the upper has %d MiB free (%d MiB may be dirty)",
                 ops.space.reserve >> 20, limit >> 20)  # fmt: skip
    return ops


def serve(ops: UnionOperations) -> None:
    """Serve requests until the mount goes away or SIGTERM/SIGINT/SIGHUP arrives."""
    unmount = False

    async def main() -> None:
        nonlocal unmount
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                nonlocal unmount
                profiling = (signal.SIGUSR1,) if edge.PROFILE is not None else ()
                with trio.open_signal_receiver(
                    signal.SIGTERM, signal.SIGINT, signal.SIGHUP, *profiling
                ) as signals:
                    async for signum in signals:
                        if signum == signal.SIGUSR1:
                            edge.dump_profile()
                            continue
                        log.info("signal %d: unmounting", signum)
                        unmount = True
                        pyfuse3.terminate()
                        return

            nursery.start_soon(watch_signals)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        ops.handles.close_all()
        pyfuse3.close(unmount=unmount)
        edge.dump_profile()
