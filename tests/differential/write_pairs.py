"""The two mounts of the write-path differential tests, and the operations applied to both.

Each ``op_*`` returns an operation to run on a mount (by its root descriptor); ``Pair``
holds a kernel overlayfs mount and a unionfs mount over identical lowers and compares them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

from hypothesis import strategies as st
from mountutil import (
    Dir,
    File,
    Symlink,
    Whiteout,
    build_stack,
    kernel_overlay,
    remove_tree,
    unionfs_mount,
)
from treecmp import Snapshot, diff_trees, drop_unstatable, marker_leaks, snapshot
from writeutil import (
    NotRegular,
    Outcome,
    Parent,
    fallocate,
    open_file,
    outcome,
    summary,
)

from unionfs.safecalls import renameat2
from unionfs.union.copyup import copy_up
from unionfs.union.readdir import list_dir
from unionfs.union.stack import Features, Stack

Op = Callable[[int], object]

FRESH = [b"new", b"n2", b"z" * 255]
IDS = [-1, 0, 1000, 65534]
XATTR_NAMES = [
    b"user.a",
    b"user.b",
    b"user.new",
    b"user." + b"k" * 200,
    b"trusted.t",
    b"trusted.overlay.opaque",  # the overlay's own: refused through the mount
]
LINK_TARGETS = [b"new", b"../a", b"/etc/passwd", b"dangling", b"x" * 300]
MODES = st.one_of(
    st.sampled_from([0o644, 0o600, 0o755, 0o4755, 0o2775, 0o1777]), st.integers(0, 0o7777)
)
# big blobs: a short pattern repeated, so hypothesis need not draw every byte
BLOBS = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=4), st.integers(1, 70000)),
)
FALLOCATE_MODES = [0, 0, 0x01, 0x01 | 0x02, 0x10]  # plain, KEEP_SIZE, PUNCH_HOLE, ZERO_RANGE
NODES = [
    (stat.S_IFCHR | 0o644, 0),  # a whiteout's form: the kernel refuses it (EPERM)
    (stat.S_IFCHR | 0o666, os.makedev(1, 3)),
    (stat.S_IFBLK | 0o600, os.makedev(7, 0)),
    (stat.S_IFSOCK | 0o640, 0),
]
HOLD_FLAGS = [os.O_RDONLY, os.O_RDWR, os.O_WRONLY, os.O_RDWR | os.O_APPEND,
              os.O_RDONLY | os.O_TRUNC]  # fmt: skip
OFFSETS = st.one_of(st.integers(0, 100), st.integers(0, 300_000))


# -- the operations, each a function of a mount's root descriptor --------------------------


def op_create(path: bytes, mode: int, flags: int, data: bytes) -> Op:
    def run(root: int) -> object:
        fd = open_file(root, path, os.O_CREAT | os.O_WRONLY | flags, mode)
        try:
            written = os.write(fd, data) if data else 0
            return written, summary(os.fstat(fd))
        finally:
            os.close(fd)

    return run


def op_write(path: bytes, offset: int, data: bytes, append: bool) -> Op:
    def run(root: int) -> object:
        fd = open_file(root, path, os.O_WRONLY | (os.O_APPEND if append else 0))
        try:
            written = os.write(fd, data) if append else os.pwrite(fd, data, offset)
            return written, summary(os.fstat(fd))
        finally:
            os.close(fd)

    return run


def op_read(path: bytes, offset: int, size: int) -> Op:
    def run(root: int) -> object:
        fd = open_file(root, path, os.O_RDONLY)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)

    return run


def op_truncate(path: bytes, size: int, through_fd: bool) -> Op:
    def run(root: int) -> object:
        if through_fd:
            fd = open_file(root, path, os.O_WRONLY)
            try:
                os.ftruncate(fd, size)
                return summary(os.fstat(fd))
            finally:
                os.close(fd)
        with Parent(root, path) as p:
            if p.name and stat.S_ISLNK(p.lstat().st_mode):
                raise NotRegular("symlink")
            os.truncate(p.proc, size)
            return summary(os.stat(p.proc))

    return run


def op_stat(path: bytes) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            return summary(os.lstat(p.proc) if p.name else os.stat(p.proc))

    return run


def op_listdir(path: bytes) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            fd = os.open(p.proc, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                names = os.listdir(fd)
                # kernel overlayfs lists the whiteouts of a directory it does not merge
                # (lookup then hides them): keep only what a lookup finds, on both mounts.
                shown = []
                for name in names:
                    try:
                        os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    shown.append(os.fsencode(name))
                return sorted(shown)
            finally:
                os.close(fd)

    return run


def op_chmod(path: bytes, mode: int) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            if p.name and stat.S_ISLNK(p.lstat().st_mode):
                raise NotRegular("symlink")  # Linux cannot chmod a symlink itself
            os.chmod(p.proc, mode)
            return summary(os.stat(p.proc))

    return run


def op_chown(path: bytes, uid: int, gid: int) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.chown(p.proc, uid, gid, follow_symlinks=bool(not p.name))
            return summary(os.lstat(p.proc) if p.name else os.stat(p.proc))

    return run


def op_chown_unchanged(path: bytes) -> Op:
    """chown(path, -1, -1) of the entry itself: whether its ctime moved (POSIX allows
    either; Linux moves it, and so must the overlay)."""

    def run(root: int) -> object:
        with Parent(root, path) as p:
            before = p.lstat()
            time.sleep(0.02)  # past the coarse clock's tick, whatever the filesystem's grain
            os.chown(p.name, -1, -1, dir_fd=p.fd, follow_symlinks=False)
            after = p.lstat()
            return after.st_ctime_ns > before.st_ctime_ns, after.st_uid, after.st_gid

    return run


def said_as(p: Parent, uid: int, gid: int, act: Callable[[bytes], str]) -> str:
    """What ``act(p.name)`` says in a forked process of *uid* and *gid* alone (no other
    group), working in *p*'s directory."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(r)
            os.fchdir(p.fd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.write(w, act(p.name).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as answer:
        said = answer.read().decode()
    os.waitpid(pid, 0)
    return said


def op_as_user(path: bytes, uid: int, gid: int, action: str) -> Op:
    """*action* on *path* by a process of *uid* and *gid* alone (no other group), then the
    mode the entry shows: "write" (one byte), "ftruncate", "truncate", "open-trunc"
    (open with O_TRUNC), "fallocate" (8 bytes more), "copy-range" (one byte from itself,
    copy_file_range) or "chown-1" (chown to -1, -1)."""

    def run(root: int) -> object:
        with Parent(root, path) as p:
            said = said_as(p, uid, gid, lambda name: _act(name, action))
            return said, oct(stat.S_IMODE(p.lstat().st_mode))

    return run


def _act(name: bytes, action: str) -> str:
    try:
        if action == "chown-1":
            os.chown(name, -1, -1, follow_symlinks=False)
        elif action == "truncate":
            os.truncate(name, 1)
        else:
            trunc = os.O_TRUNC if action == "open-trunc" else 0
            fd = os.open(name, os.O_WRONLY | trunc)
            try:
                if action == "write":
                    os.write(fd, b"x")
                elif action == "ftruncate":
                    os.ftruncate(fd, 2)
                elif action == "fallocate":
                    os.posix_fallocate(fd, 0, os.fstat(fd).st_size + 8)
                elif action == "copy-range":
                    source = os.open(name, os.O_RDONLY)
                    try:
                        os.copy_file_range(source, fd, 1, 0, 1)
                    finally:
                        os.close(source)
            finally:
                os.close(fd)
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return "ok"


def op_utime(path: bytes, atime: int, mtime: int) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.utime(p.proc, ns=(atime, mtime), follow_symlinks=bool(not p.name))
            st = os.lstat(p.proc) if p.name else os.stat(p.proc)
            return st.st_mtime_ns, st.st_atime_ns

    return run


def op_setxattr(path: bytes, name: bytes, value: bytes) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.setxattr(p.proc, name, value, follow_symlinks=bool(not p.name))
            return os.getxattr(p.proc, name, follow_symlinks=bool(not p.name))

    return run


def op_removexattr(path: bytes, name: bytes) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.removexattr(p.proc, name, follow_symlinks=bool(not p.name))
            return sorted(os.listxattr(p.proc, follow_symlinks=bool(not p.name)))

    return run


def op_getxattr(path: bytes, name: bytes) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            return os.getxattr(p.proc, name, follow_symlinks=bool(not p.name))

    return run


def op_mkdir(path: bytes, mode: int) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.mkdir(p.name, mode, dir_fd=p.fd)
            return summary(p.lstat())

    return run


def op_rmdir(path: bytes) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.rmdir(p.name, dir_fd=p.fd)

    return run


def op_unlink(path: bytes) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.unlink(p.name, dir_fd=p.fd)

    return run


def _remove_tree_at(dir_fd: int, name: str) -> int:
    try:
        st_ = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return 0  # a whiteout kernel overlayfs lists in a directory it does not merge
    if not stat.S_ISDIR(st_.st_mode):
        os.unlink(name, dir_fd=dir_fd)
        return 1
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        removed = sum(_remove_tree_at(fd, child) for child in sorted(os.listdir(fd)))
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
    return removed + 1


def op_remove_tree(path: bytes) -> Op:
    """``rm -rf``: children first, then the directory; the number of entries removed."""

    def run(root: int) -> object:
        with Parent(root, path) as p:
            return _remove_tree_at(p.fd, os.fsdecode(p.name))

    return run


def op_rename(src: bytes, dst: bytes, flags: int) -> Op:
    def run(root: int) -> object:
        with Parent(root, src) as a, Parent(root, dst) as b:
            renameat2(a.fd, a.name, b.fd, b.name, flags)
            return summary(b.lstat())

    return run


def op_link(src: bytes, dst: bytes) -> Op:
    def run(root: int) -> object:
        with Parent(root, src) as a, Parent(root, dst) as b:
            os.link(a.name, b.name, src_dir_fd=a.fd, dst_dir_fd=b.fd, follow_symlinks=False)
            return summary(a.lstat()), summary(b.lstat())

    return run


def op_symlink(path: bytes, target: bytes) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.symlink(target, p.name, dir_fd=p.fd)
            return summary(p.lstat()), os.readlink(p.name, dir_fd=p.fd)

    return run


def op_mkfifo(path: bytes, mode: int) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.mkfifo(p.name, mode, dir_fd=p.fd)
            return summary(p.lstat())

    return run


def op_fallocate(path: bytes, mode: int, offset: int, length: int) -> Op:
    def run(root: int) -> object:
        fd = open_file(root, path, os.O_RDWR)
        try:
            fallocate(fd, mode, offset, length)
            return summary(os.fstat(fd)), os.pread(fd, 16, offset)
        finally:
            os.close(fd)

    return run


def op_mknod(path: bytes, mode: int, device: int) -> Op:
    def run(root: int) -> object:
        with Parent(root, path) as p:
            os.mknod(p.name, mode, device, dir_fd=p.fd)
            st = p.lstat()
            return summary(st), st.st_rdev

    return run


def op_open(path: bytes, flags: int) -> Op:
    def run(root: int) -> object:
        fd = open_file(root, path, flags)
        try:
            return summary(os.fstat(fd))
        finally:
            os.close(fd)

    return run


def op_open_unlink_io(path: bytes, offset: int, data: bytes) -> Op:
    """Open, unlink, then write, read and fstat through the descriptor that is left."""

    def run(root: int) -> object:
        fd = open_file(root, path, os.O_RDWR)
        try:
            with Parent(root, path) as p:
                os.unlink(p.name, dir_fd=p.fd)
            before = os.fstat(fd).st_size
            written = os.pwrite(fd, data, offset)
            back = os.pread(fd, len(data) + 10, offset)
            head = os.pread(fd, 100, 0)
            return before, written, back, head, summary(os.fstat(fd))
        finally:
            os.close(fd)

    return run


def step(op: Op, root: int) -> Outcome:
    try:
        return outcome(lambda: op(root))
    except NotRegular as exc:
        return ("not done", str(exc))


def listings(top: bytes) -> dict[bytes, object]:
    """Every directory's listing below *top* as readdir shows it now: each name with the
    kind its d_type says, whether its d_ino is the number lstat shows, and a symlink's target
    (which the kernel keeps too). Names that lstat
    cannot find are left out (kernel overlayfs lists the whiteouts of a directory it does
    not merge). Read after every step, so a listing the kernel kept must have followed."""
    found: dict[bytes, object] = {}
    pending = [b""]
    while pending:
        rel = pending.pop()
        here = os.path.join(top, rel) if rel else top
        try:
            with os.scandir(here) as it:
                dirents = list(it)
        except OSError as exc:
            found[rel] = f"failed: {errno.errorcode.get(exc.errno or 0)}"
            continue
        shown = []
        for d in dirents:
            try:
                st_ino = os.lstat(d.path).st_ino
            except FileNotFoundError:
                continue
            kind = "dir" if d.is_dir(follow_symlinks=False) else "link" if d.is_symlink() else (
                "file" if d.is_file(follow_symlinks=False) else "other")  # fmt: skip
            target = os.readlink(d.path) if kind == "link" else None  # the kernel keeps it
            shown.append((d.name, kind, d.inode() == st_ino, target))
            if kind == "dir":
                pending.append(os.path.join(rel, d.name) if rel else d.name)
        found[rel] = sorted(shown)
    return found


# -- two mounts of one stack ---------------------------------------------------------------


# The kernel's defaults (unionfs's own default is redirect_dir=on), and every feature on.
DEFAULT_FEATURES = "redirect_dir=off,metacopy=off,index=off"
ALL_FEATURES = "redirect_dir=on,metacopy=on,index=on"


def without_hard_links(layers: list[Dir]) -> list[Dir]:
    """*layers* with every lower hard link group dissolved (each name its own file)."""

    def strip(d: Dir) -> None:
        for node in d.children.values():
            if isinstance(node, File):
                node.link = None
            elif isinstance(node, Dir):
                strip(node)

    for layer in layers:
        strip(layer)
    return layers


class Pair:
    """Kernel overlayfs and unionfs over two copies of *layers*, each with its own upper,
    both mounted with the overlay feature options *features*.

    ``apply`` runs one operation on both and fails on the first difference. ``finish``
    compares the trees, unmounts, and checks unionfs's upper under kernel overlayfs.
    """

    def __init__(
        self, base: Path, layers: list[Dir], unionfs_forms: bool, features: str = DEFAULT_FEATURES,
        unionfs_extra: str = "",
    ) -> None:
        self.base = base
        self.features = features
        self.unionfs_extra = unionfs_extra  # options of the unionfs mount alone (passthrough)
        self.dirs: dict[str, Path] = {}
        for side in ("k", "u", "r"):
            for part in ("", "/upper", "/work", "/mnt"):
                path = base / (side + part)
                path.mkdir()
                self.dirs[side + part] = path
        self.k_lowers = build_stack(base / "k", layers, kernel=True)
        self.u_lowers = build_stack(base / "u", layers, kernel=not unionfs_forms)
        self.mounts = contextlib.ExitStack()
        self.held: list[tuple[int, int]] = []
        self.kroot = self.uroot = -1
        self.check_reads = True  # read every listing after every step (``check_listings``)
        self.log: list[str] = []

    def mount(self) -> None:
        d = self.dirs
        unionfs_opts = ",".join(filter(None, (self.features, self.unionfs_extra)))
        self.mounts.enter_context(
            kernel_overlay(self.k_lowers, d["k/mnt"], d["k/upper"], d["k/work"], self.features)
        )
        self.mounts.enter_context(
            unionfs_mount(self.u_lowers, d["u/mnt"], d["u/upper"], d["u/work"], [unionfs_opts])
        )
        self.kroot = os.open(d["k/mnt"], os.O_PATH | os.O_DIRECTORY)
        self.mounts.callback(os.close, self.kroot)
        self.uroot = os.open(d["u/mnt"], os.O_PATH | os.O_DIRECTORY)
        self.mounts.callback(os.close, self.uroot)

    def current_tree(self) -> dict[bytes, str]:
        """Every path the kernel mount shows now (relative): "dir", "file" or "other"."""
        top = os.fsencode(self.dirs["k/mnt"])
        found = {b"": "dir"}
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, top) if dirpath != top else b""
            for name in dirnames:
                found[os.path.join(rel, name) if rel else name] = "dir"
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    regular = stat.S_ISREG(os.lstat(path).st_mode)
                except FileNotFoundError:
                    regular = False  # a whiteout the kernel lists (it is not a name)
                found[os.path.join(rel, name) if rel else name] = "file" if regular else "other"
        return found

    def apply(self, what: str, op: Op) -> Outcome:
        kernel = step(op, self.kroot)
        union = step(op, self.uroot)
        self.log.append(f"{what} -> {kernel}")
        assert kernel == union, (
            f"{what}: kernel={kernel!r} unionfs={union!r}\nsteps so far:\n  "
            + "\n  ".join(self.log)
        )
        if self.check_reads:
            self.check_listings(what)
        return kernel

    def check_listings(self, what: str) -> None:
        """Every listing unionfs shows now is the kernel's (the kernel keeps listings it
        read before this step: each kind of change must drop the ones it changed)."""
        kernel = listings(os.fsencode(self.dirs["k/mnt"]))
        union = listings(os.fsencode(self.dirs["u/mnt"]))
        problems = [
            f"{show!r}: kernel={kernel.get(path)!r} unionfs={union.get(path)!r}"
            for path in sorted(set(kernel) | set(union))
            if kernel.get(path) != union.get(path)
            for show in [path or b"/"]
        ]
        assert not problems, (
            f"listings after {what}:\n  " + "\n  ".join(problems)
            + "\nsteps so far:\n  " + "\n  ".join(self.log)
        )  # fmt: skip

    def apply_held(self, what: str, index: int, call: Callable[[int], object]) -> Outcome:
        kfd, ufd = self.held[index]
        kernel = outcome(lambda: call(kfd))
        union = outcome(lambda: call(ufd))
        self.log.append(f"held[{index}] {what} -> {kernel}")
        assert kernel == union, f"held[{index}] {what}: kernel={kernel!r} unionfs={union!r}"
        return kernel

    def hold(self, path: bytes, flags: int) -> None:
        kernel = step(lambda root: open_file(root, path, flags), self.kroot)
        union = step(lambda root: open_file(root, path, flags), self.uroot)
        self.log.append(f"hold {path!r} flags={flags:o} -> {kernel[0]}")
        if kernel[0] == union[0] == "ok":
            assert isinstance(kernel[1], int) and isinstance(union[1], int)
            self.held.append((kernel[1], union[1]))
            return
        for side in (kernel, union):
            if side[0] == "ok":
                assert isinstance(side[1], int)
                os.close(side[1])
        assert kernel == union, f"hold {path!r}: kernel={kernel!r} unionfs={union!r}"

    def release_held(self) -> None:
        for kfd, ufd in self.held:
            _close_quietly(kfd)
            _close_quietly(ufd)
        self.held.clear()

    def finish(self) -> None:
        """Compare the trees, unmount, then remount unionfs's upper under the kernel."""
        problems: list[str] = []
        try:
            self.release_held()
            kernel_view = drop_unstatable(snapshot(self.dirs["k/mnt"]))
            union_view = snapshot(self.dirs["u/mnt"])
        except OSError as exc:
            problems.append(f"reading the trees failed: {exc!r}")
        else:
            problems += diff_trees(kernel_view, union_view)
            # kernel 6.7+ shows trusted.overlay.* xattrs a user set (stored escaped as
            # trusted.overlay.overlay.*): a marker only leaks where the kernel shows none
            allowed = set(marker_leaks(kernel_view))
            problems += [
                f"marker shown: {leak}" for leak in marker_leaks(union_view) if leak not in allowed
            ]
        try:
            self.mounts.close()  # unmounts; fails on ERROR/Traceback in the unionfs log
        except AssertionError as exc:
            problems.append(str(exc))
        assert not problems, self._report("unionfs differs from kernel overlayfs", problems)
        again = self.kernel_over_unionfs_upper()
        problems = diff_trees(again, union_view, labels=("kernel on unionfs upper", "unionfs"))
        assert not problems, self._report(
            "kernel overlayfs over unionfs's upper differs from what unionfs showed", problems
        )

    def kernel_over_unionfs_upper(self) -> Snapshot:
        d = self.dirs
        # The kernel does not read unionfs's hard link index: link every name that shows
        # an indexed copy into the upper (as copying it up would), so the upper alone
        # holds every link, then drop the index's own link, which the kernel would count
        # (see unionfs.union.hardlinks).
        index = d["u/work"] / "unionfs-index"
        if index.exists():
            link_up_indexed_names(self.u_lowers, d["u/upper"], d["u/work"])
            shutil.rmtree(index)
        opts = self.features
        with kernel_overlay(self.k_lowers, d["r/mnt"], d["u/upper"], d["r/work"], opts):
            return drop_unstatable(snapshot(d["r/mnt"]))

    def _report(self, title: str, problems: list[str]) -> str:
        return f"{title}:\n" + "\n".join(problems) + "\nsteps:\n  " + "\n  ".join(self.log)

    def run(self, steps: list[tuple[str, Op]]) -> None:
        """Mount, apply every (title, op) step to both, compare, and close."""
        try:
            self.mount()
            for what, op in steps:
                self.apply(what, op)
            self.finish()
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.release_held()
            self.mounts.close()
        finally:
            remove_tree(self.base)  # refuses while anything below is still mounted


def link_up_indexed_names(lowers: list[Path], upper: Path, work: Path) -> None:
    """Copy up (link up) every name of the merged tree that shows an indexed copy of a
    lower hard link: afterwards the upper holds all of them, without the index."""
    stack = Stack.from_dirs([str(p) for p in lowers], str(upper), str(work),
                            features=Features("on", metacopy=True, index=True))  # fmt: skip
    try:
        pending = [stack.root()]
        while pending:
            for _, res in list_dir(stack, pending.pop()):
                if res.is_dir:
                    pending.append(res)
                elif res.index_copy is not None:
                    copy_up(stack, res)
    finally:
        stack.close()


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def rich_stack() -> list[Dir]:
    """Two layers with a merged directory, an opaque one, whiteouts, hard links, a big file,
    and a symlink out of the stack: a fresh copy for every example that draws it."""
    return [
        Dir(
            {
                b"d": Dir({b"top": File(b"top", xattrs={"user.a": b"1"}), b"sub": Dir()}),
                b"f": File(b"lower file\n" * 100, mode=0o640, uid=1000, gid=65534),
                b"gone": Whiteout("wh"),
                b"o": Dir({b"x": File(b"x")}, opaque="user"),
                b"s": Symlink(b"/etc"),
                b"big": File(b"0123456789abcdef" * 20000),
            }
        ),
        Dir(
            {
                b"d": Dir({b"below": File(b"below"), b"sub": Dir({b"deep": File(b"deep")})}),
                b"gone": Dir({b"hidden": File(b"hidden")}),
                b"o": Dir({b"y": File(b"y")}),
                b"h1": File(b"linked", link=1),
                b"h2": File(b"", link=1),
                b"ld": Dir({b"lf": File(b"lf", mode=0o4755, uid=1000)}, mode=0o2775, gid=1000),
            }
        ),
    ]


# -- the state machine -----------------------------------------------------------------------
