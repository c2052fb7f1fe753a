"""Running one FUSE session for a stack: init, serve until unmounted or signalled, close.

pyfuse3 allows one session per process, so this is called once, in the process that will
serve (the CLI forks that process before any thread exists).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyfuse3
import trio

from unionfs import idmap, livemounts
from unionfs.fuse import edge, features, room, vfsflags
from unionfs.fuse.lazyhook import LazyData
from unionfs.fuse.ops import UnionOperations
from unionfs.union.atime import RELATIME, AtimePolicy
from unionfs.union.stack import Stack

log = logging.getLogger("unionfs.mount")

# Among the options ``start`` gets: serve open files by FUSE passthrough (``-o
# passthrough``); taken out before the rest go to libfuse.
PASSTHROUGH = "passthrough"
PASSTHROUGH_KERNEL = (6, 9)  # FUSE_PASSTHROUGH (and its io modes) came with Linux 6.9


def passthrough_lacking(release: str | None = None, euid: int | None = None) -> str | None:
    """Why ``-o passthrough`` cannot work here, in one line, or None: the binding lacks it
    (``features``), the kernel is older than 6.9, or we are not root (registering a
    backing file needs CAP_SYS_ADMIN in the initial user namespace). Whether the kernel
    was built with it shows only once mounted (``UnionOperations.init`` says so)."""
    if "passthrough" not in features.available():
        return "option 'passthrough' needs a pyfuse3 built with libfuse 3.17 (./dev.sh setup)"
    release = os.uname().release if release is None else release
    numbers = [int(part) for part in release.split("-")[0].split(".")[:2] if part.isdigit()]
    if tuple(numbers) < PASSTHROUGH_KERNEL:
        return f"option 'passthrough' needs Linux 6.9 or newer (this is {release})"
    if (os.geteuid() if euid is None else euid) != 0:
        return "option 'passthrough' needs root (CAP_SYS_ADMIN registers backing files)"
    return None


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


@dataclass(slots=True)
class Session:
    """The one mount this process serves (pyfuse3 allows one)."""

    ops: UnionOperations
    mountpoint: str
    mount: livemounts.Mount | None  # as mountinfo showed it right after mounting
    atime: AtimePolicy
    announced: int | None = None  # the descriptor holding our livemounts record


def start(stack: Stack, mountpoint: str, options: set[str],
          owners: idmap.Owners = idmap.IDENTITY, record: livemounts.Record | None = None,
          atime: AtimePolicy = RELATIME, lazy: LazyData | None = None) -> Session:  # fmt: skip
    """Mount at *mountpoint* (absolute, resolved: once mounted, nothing may look it up
    before ``serve`` runs, or the lookup waits for us forever). On return the mount is live
    (requests queue until ``serve`` runs). With *record*, the mount is announced
    (``livemounts``) until ``serve`` returns. *atime*: the mount's atime flags."""
    # Modes arrive masked by the caller's umask (by the kernel, or by ``create`` under
    # FUSE_DONT_MASK where no default ACL takes its place); ours must not mask them again.
    os.umask(0)
    ops = UnionOperations(stack, owners, atime)
    ops.lazy = lazy
    if PASSTHROUGH in options:  # ours, not libfuse's (``mountopts``)
        options = options - {PASSTHROUGH}
        ops.passthrough_on()
    pyfuse3.init(ops, mountpoint, options)
    session = Session(ops, mountpoint, livemounts.mounted_at(mountpoint), atime)
    if record is not None and session.mount is not None:
        session.announced = livemounts.announce(session.mount.dev, record)
    if stack.has_upper and ops.backings is None:
        bdi = None if session.mount is None else Path("/sys/class/bdi") / session.mount.dev
        limit = room.dirty_limit(bdi)
        ops.room.set_dirty_limit(limit)
        log.info("write-back cache while the upper has %d MiB free (%d MiB may be dirty)",
                 ops.room.reserve >> 20, limit >> 20)  # fmt: skip
    return session


def _follow_flags(session: Session) -> None:
    """In a thread of its own: give the mount its atime flags, then follow its flags as
    remounts change them (``vfsflags``). The mount is live before this thread runs: a
    remount that came first is followed, not overwritten."""
    toucher = session.ops.atime
    if session.mount is None or toucher is None:
        return
    made = (session.mount.options, session.mount.readonly)
    if os.geteuid() == 0 and vfsflags.flags_of(session.mount.mount_id) == made:
        vfsflags.set_atime_flags(session.mountpoint, session.atime)

    def changed(policy: AtimePolicy) -> None:
        log.info("mount flags changed: atime %s%s%s", policy.mode,
                 ", nodiratime" if policy.nodiratime else "",
                 ", read-only" if policy.readonly else "")  # fmt: skip
        toucher.policy = policy

    vfsflags.follow(session.mount.mount_id, made, lambda: toucher.policy, changed)


def serve(session: Session) -> None:
    """Serve requests until the mount goes away or SIGTERM/SIGINT/SIGHUP arrives."""
    ops = session.ops
    unmount = False
    threading.Thread(target=_follow_flags, args=(session,), name="vfsflags", daemon=True).start()

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
        ops.inodes.close()
        if ops.atime is not None:
            ops.atime.close()  # the strictatime clone of the upper's mount
        pyfuse3.close(unmount=unmount)
        if session.announced is not None and session.mount is not None:
            livemounts.withdraw(session.mount.dev, session.announced)
        edge.dump_profile()
