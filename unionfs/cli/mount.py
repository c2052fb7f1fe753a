"""``unionfs mount``: check the layers, mount, and serve in the background (or with ``-f``).

Everything a user can get wrong is checked before the mount is attempted, so an error is
one line and nothing is left mounted. In the background mode the command returns only when
the mount is live: the daemon tells the waiting parent "ok" or why it failed through a pipe.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import resource
import stat
import sys
import tempfile
import threading
import typing
from dataclasses import dataclass

from unionfs import idmap, layercheck, livemounts, mountopts
from unionfs.errors import UserError
from unionfs.index import mounting as indexing
from unionfs.safepath import DirFdCache
from unionfs.union.atime import AtimePolicy
from unionfs.union.stack import Features, Stack

if typing.TYPE_CHECKING:
    from unionfs.lazy.serving import LazyMount

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "mount",
        help="mount a stack of layer directories",
        description="Mount lowerdir layers (leftmost on top) with an optional upperdir; "
        "or, given only a container's name, mount the container and print where; or, with "
        "no arguments, list the unionfs mounts (containers' and others) with their layers.",
    )
    _add_mount_arguments(p)
    p.add_argument("mountpoint", metavar="MOUNTPOINT|CONTAINER", nargs="?")
    p.add_argument("--format", metavar="FORMAT",
                   help="listing: json, or a Go template ({{.ID}} {{.Mountpoint}} "
                   "{{.LowerDir}} {{.UpperDir}}...)")  # fmt: skip
    p.add_argument("--notruncate", "--no-trunc", action="store_true",
                   help="listing: full ids and layer lists")  # fmt: skip


def _add_mount_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPTS",
                   help="lowerdir=L1:L2,upperdir=U,workdir=W and FUSE options")  # fmt: skip
    p.add_argument("-f", "--foreground", action="store_true", help="serve in the foreground")
    p.add_argument("-d", "--debug-requests", action="store_true", help="log every request")
    p.add_argument("--log", metavar="FILE", help="write the daemon's log to FILE")


class _HelperParser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise UserError(f"{message} (usage: unionfs [SOURCE] MOUNTPOINT -o lowerdir=...)", 2)


def parse_helper_args(argv: list[str]) -> argparse.Namespace:
    """``[SOURCE] MNT -o OPTS [-f] [-d]`` as fuse-overlayfs, podman and mount(8) call it."""
    p = _HelperParser(prog="unionfs", add_help=False, exit_on_error=False)
    _add_mount_arguments(p)
    for flag in ("-n", "-s", "-v"):  # mount(8) helper flags: no mtab, sloppy, verbose
        p.add_argument(flag, action="store_true")
    p.add_argument("-t", dest="fstype")
    p.add_argument("--debug", action="store_true")
    p.add_argument("paths", nargs="+")
    try:
        args, unknown = p.parse_known_args(argv)
    except argparse.ArgumentError as exc:
        raise UserError(str(exc), exit_code=2) from None
    if unknown:
        raise UserError(f"unknown argument {unknown[0]!r}", exit_code=2)
    if len(args.paths) > 2:
        raise UserError("usage: unionfs [SOURCE] MOUNTPOINT -o lowerdir=...", exit_code=2)
    args.source = args.paths[0] if len(args.paths) == 2 else None
    args.mountpoint = args.paths[-1]
    return args


@dataclass(frozen=True, slots=True)
class Layout:
    lowers: tuple[str, ...]
    upper: str | None
    work: str | None
    mountpoint: str
    owners: idmap.Owners = idmap.IDENTITY
    warnings: tuple[str, ...] = ()  # one line each, for stderr


def _directory(kind: str, path: str) -> str:
    """*path* resolved (symlinks followed, as podman's l/ links need), checked to be a dir."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{kind} {path!r} does not exist") from None
    except OSError as exc:
        raise UserError(f"{kind} {path!r}: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise UserError(f"{kind} {path!r} is not a directory")
    return os.path.realpath(path)


def _inside(path: str, other: str) -> bool:
    """True when *path* is *other* or below it."""
    return path == other or path.startswith(other.rstrip("/") + "/")


def check_lowers(opts: mountopts.MountOptions) -> tuple[str, ...]:
    return tuple(_directory("lowerdir", d) for d in opts.lowerdirs)


def check_layout(opts: mountopts.MountOptions, mountpoint: str) -> Layout:
    lowers = check_lowers(opts)
    upper = work = None
    if opts.upperdir is not None:
        upper = _directory("upperdir", opts.upperdir)
        assert opts.workdir is not None
        work = _directory("workdir", opts.workdir)
        for lower, given in zip(lowers, opts.lowerdirs, strict=True):
            # A lower at or inside the upper is layercheck's (ELOOP, as the kernel); an
            # upper inside a lower the kernel takes, but that lower would change under us.
            if upper != lower and _inside(upper, lower):
                raise UserError(f"upperdir {opts.upperdir!r} is inside lowerdir {given!r}")
        if _inside(work, upper) or _inside(upper, work):
            raise UserError("workdir and upperdir must be separate, neither inside the other")
        if os.stat(work).st_dev != os.stat(upper).st_dev:
            raise UserError(f"workdir {opts.workdir!r} is not on the same filesystem as upperdir")
        _check_writable("upperdir", upper)
        _check_writable("workdir", work)
    layers = [layercheck.Layer("lowerdir", g, p) for g, p in zip(opts.lowerdirs, lowers,
                                                                   strict=True)]  # fmt: skip
    if upper is not None and work is not None:
        assert opts.upperdir is not None and opts.workdir is not None
        layers += [layercheck.Layer("upperdir", opts.upperdir, upper),
                   layercheck.Layer("workdir", opts.workdir, work)]  # fmt: skip
        layercheck.on_unionfs(layers[-2])
        layercheck.on_unionfs(layers[-1])
    layercheck.overlaps(layers)
    warnings = layercheck.check_in_use(layers, opts.index)
    if upper is not None and opts.index:
        assert opts.upperdir is not None
        layercheck.check_origin(upper, opts.upperdir, lowers[0])
    mnt = _directory("mountpoint", mountpoint)
    if livemounts.fstype_at(mnt) == "fuse.unionfs":
        raise UserError(f"mountpoint {mountpoint!r} is already a unionfs mount")
    return Layout(lowers, upper, work, mnt, opts.owners, tuple(warnings))


def mark_layers(layout: Layout, index: bool) -> list[int]:
    """Mark the upper and work directories in use for this process's lifetime (see
    ``layercheck``); with index=on, refuse them if another mount marked them meanwhile."""
    if layout.upper is None or layout.work is None:
        return []
    marks = layercheck.mark_in_use([layout.upper, layout.work])
    if index and any(layercheck.marked_by_others(fd) for fd in marks):
        for fd in marks:
            os.close(fd)
        raise UserError("upperdir or workdir is in use by another mount (EBUSY; index=off "
                        "allows it)")  # fmt: skip
    return marks


def _check_writable(kind: str, path: str) -> None:
    try:
        fd, name = tempfile.mkstemp(prefix=".unionfs-probe-", dir=path)
    except OSError as exc:
        raise UserError(f"{kind} {path!r} is not writable: {exc.strerror}") from None
    os.close(fd)
    os.unlink(name)


def _setup_logging(args: argparse.Namespace) -> None:
    if args.log:
        fd = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    level = logging.DEBUG if args.debug_requests else logging.INFO
    logging.basicConfig(stream=sys.stderr, level=level, format=LOG_FORMAT, force=True)


def raise_open_file_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit. The daemon holds a descriptor for each file
    its clients have open, so its limit is all of theirs together; a shell's usual soft
    limit (1,024) would make it about a thousand for every user of the mount (issue 16.6).
    Nothing here uses select(), which is what the low soft default protects."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(args: argparse.Namespace) -> int:
    if args.mountpoint is None and not args.options:
        from unionfs.cli import mountlist  # `unionfs mount`: what is mounted

        return mountlist.run(args)
    if args.mountpoint is None:
        raise UserError("mount: give the mount point (see --help)", exit_code=2)
    if mountopts.is_remount(args.options):
        from unionfs.cli import remount  # imports the runtime's mount(2): only for a remount

        return remount.remount(args.options, args.mountpoint, os.path.realpath(args.mountpoint))
    if not args.options and getattr(args, "source", None) is None:
        from unionfs.cli.storecli import mount_container  # `unionfs mount C`, as podman

        return mount_container(args.mountpoint)
    raise_open_file_limit()
    opts = mountopts.parse(args.options)
    layout = check_layout(opts, args.mountpoint)
    if args.foreground:
        _setup_logging(args)
    else:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="unionfs: %(message)s")
    for warning in layout.warnings:
        print(f"unionfs: {warning}", file=sys.stderr)
    # The check of the layers (a walk of each hand-given one) waits on the disk while the
    # FUSE stack is imported (~0.1 s of CPU): the two overlap on a second core. The index
    # reads the markers of both namespaces; userxattr reads user.overlay.* alone.
    checked = _Prepared("off" if opts.userxattr else opts.indexdir, layout.lowers,
                        check=not opts.sealed)  # fmt: skip
    from unionfs.fuse import mount as fusemount

    source = getattr(args, "source", None) or "unionfs"
    fuse_options = fusemount.fuse_options(opts.fuse_options, source)
    if opts.upperdir is None:
        fuse_options.add("ro")
    if opts.passthrough:
        if (lacking := fusemount.passthrough_lacking()) is not None:
            raise UserError(lacking)
        fuse_options.add(fusemount.PASSTHROUGH)
    mode, nodiratime = opts.atime_mode
    if mode == "noatime":
        fuse_options.add("noatime")  # libfuse (and fusermount3) know this one
    atime = AtimePolicy(mode, nodiratime, "ro" in fuse_options)
    index = checked.result()
    features = Features(opts.redirect_dir, opts.metacopy, opts.index, opts.userxattr)
    if args.foreground:
        marks = mark_layers(layout, opts.index)  # held until this process ends
        stack = _stack(layout, index, features)
        lazy = _lazy(layout.lowers)
        try:
            session = fusemount.start(stack, layout.mountpoint, fuse_options, layout.owners,
                                      _record(layout), atime, lazy)
        except RuntimeError as exc:
            raise UserError(f"cannot mount {args.mountpoint}: {exc}") from None
        _serve(session, layout, source, lazy)
        for fd in marks:
            os.close(fd)
        return 0
    return _daemonize(args, index, layout, fuse_options, features, atime)


def preload() -> None:
    """Import what a mount imports once it starts (the zygote does, before it forks)."""
    from unionfs.fuse import mount as fusemount  # noqa: F401


class _Prepared:
    """``indexing.prepare`` of a mount's lowers, run in a thread; ``result`` waits for it
    (and raises what it raised). Joined before the daemon forks: no thread crosses it."""

    def __init__(self, indexdir: str | None, lowers: tuple[str, ...], check: bool) -> None:
        self._index: str | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(indexdir, lowers, check),
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def _run(self, indexdir: str | None, lowers: tuple[str, ...], check: bool) -> None:
        try:
            self._index = indexing.prepare(indexdir, lowers, check=check)
        except BaseException as exc:
            self._error = exc

    def result(self) -> str | None:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._index


def _stack(layout: Layout, index: str | None, features: Features) -> Stack:
    cache = DirFdCache()
    lowers = indexing.lowers(index, layout.lowers, cache)
    return Stack.assemble(lowers, layout.upper, layout.work, cache, features=features)


def _record(layout: Layout) -> livemounts.Record:
    work = None if layout.work is None else os.path.realpath(layout.work)
    return livemounts.Record(os.getpid(), layout.lowers, layout.upper, work)


def _daemonize(
    args: argparse.Namespace, index: str | None, layout: Layout, options: set[str],
    features: Features, atime: AtimePolicy,
) -> int:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 4096):
            chunks.append(chunk)
        os.close(read_end)
        os.waitpid(pid, 0)
        message = b"".join(chunks).decode(errors="replace").strip()
        if message == "ok":
            return 0
        raise UserError(message or f"cannot mount {args.mountpoint}: the daemon died")

    # The first child: a new session, then the daemon as its child, so that the daemon is
    # no process group leader, has no terminal and outlives whoever called us (podman).
    code = 1
    try:
        os.close(read_end)
        os.setsid()
        code = 0 if os.fork() > 0 else _daemon(args, index, layout, options, features, atime,
                                               write_end)
    finally:
        os._exit(code)


def _daemon(args: argparse.Namespace, index: str | None, layout: Layout, options: set[str],
            features: Features, atime: AtimePolicy, report: int) -> int:  # fmt: skip
    from unionfs.fuse import mount as fusemount

    # Descriptors our caller let us inherit (podman passes some) must not stay open for the
    # daemon's lifetime: whoever holds the other end of a pipe would wait for us.
    os.closerange(3, report)
    os.closerange(report + 1, os.sysconf("SC_OPEN_MAX"))
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    # Until the mount is live, libfuse's complaints go to a file we can relay.
    with tempfile.TemporaryFile() as early:
        os.dup2(early.fileno(), 2)
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format=LOG_FORMAT, force=True)
        try:
            marks = mark_layers(layout, features.index)  # held for the daemon's lifetime
            lazy = _lazy(layout.lowers)
            session = fusemount.start(_stack(layout, index, features), layout.mountpoint,
                                      options, layout.owners, _record(layout), atime, lazy)
        except UserError as exc:
            os.write(report, exc.message.encode())
            os.close(report)
            return 1
        except Exception as exc:
            early.seek(0)
            said = [ln for ln in early.read().decode(errors="replace").splitlines() if ln.strip()]
            reason = said[-1] if said else str(exc)
            os.write(report, f"cannot mount {args.mountpoint}: {reason}".encode())
            os.close(report)
            return 1
    os.dup2(devnull, 2)
    os.close(devnull)
    _setup_logging(args)
    os.write(report, b"ok")
    os.close(report)
    with contextlib.suppress(Exception):
        os.chdir("/")
    _serve(session, layout, getattr(args, "source", None) or "unionfs", lazy)
    for fd in marks:
        os.close(fd)
    return 0


def _lazy(lowers: tuple[str, ...]) -> LazyMount | None:
    """The lazy layers among *lowers* (the registry client is imported only for them; the
    lazy package at all only when a lower is some layer's ``tree``)."""
    if not any(os.path.basename(p) == "tree" for p in lowers):
        return None
    from unionfs.lazy import layout as lazylayout

    if not any(lazylayout.layer_dir(p) for p in lowers):
        return None
    from unionfs.lazy import mounting

    return mounting.open_mount(lowers)


def _serve(session: object, layout: Layout, source: str, lazy: LazyMount | None) -> None:
    """Serve until unmounted, recorded meanwhile for ``unionfs mount``'s listing; lazy
    layers are prefetched meanwhile (in a thread, started once the mount is live)."""
    from unionfs.fuse import mount as fusemount

    if lazy is not None:
        lazy.start_prefetch()

    pid = os.getpid()
    record = livemounts.Listing(layout.mountpoint, layout.lowers, layout.upper, layout.work,
                                source, pid, livemounts.process_start(pid))  # fmt: skip
    path = livemounts.register(record)
    try:
        fusemount.serve(session)  # type: ignore[arg-type]
    finally:
        livemounts.unregister(path)
        if lazy is not None:
            lazy.stop()
