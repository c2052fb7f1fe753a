"""One worker of the soak test: random operations on a mount for a bounded time, each one
checked against the worker's own model of its subtree.

Run as ``python soak.py MNT WORKER SEED SECONDS``; it waits for a line on stdin (so every
worker starts together), then prints one JSON report. Worker *i* owns ``w<i>/``: it alone
changes it, so every outcome there is predictable (the model says what the kernel's VFS
answers, errno included) and the subtree must end as the model says. It also races the
other workers in ``shared/``, where outcomes are not predictable: there only errnos that
the race itself can cause are allowed, and every file must hold one whole record.
``lower_tree(i)`` is what the layers hold of ``w<i>/`` (the test builds it; the model
starts from it).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import re
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

POOL = [f"n{k}" for k in range(10)] + ["f0", "f1", "f2", "f3", "f4"]
SHARED_POOL = [f"s{k}" for k in range(12)]
RECORD = re.compile(rb"w\d+:\d+\n")
MODES = [0o600, 0o640, 0o644, 0o700, 0o755, 0o664]
MAX_FINDINGS = 25
# What racing workers in one shared directory can legitimately cause.
SHARED_ERRNOS = {
    "put": {"EISDIR"},
    "take": {"ENOENT", "EISDIR"},
    "move": {"ENOENT", "EISDIR", "ENOTDIR", "ENOTEMPTY"},
    "link": {"ENOENT", "EEXIST", "EPERM"},
    "mkdir": {"EEXIST"},
    "rmdir": {"ENOENT", "ENOTEMPTY", "ENOTDIR"},
    "list": set(),
    "read": {"ENOENT", "EISDIR"},
}


def lower_tree(worker: int) -> tuple[dict[str, bytes | None], dict[str, bytes | None]]:
    """The lower layers' part of ``w<worker>/``: (top layer, bottom layer), each a map of
    relative paths to file contents (None: a directory; ``b"WHITEOUT"``: a whiteout)."""
    w = f"w{worker}"
    bottom: dict[str, bytes | None] = {
        w: None,
        f"{w}/lowdir": None,
        f"{w}/lowdir/a": b"lower a\n" * 50,
        f"{w}/lowdir/b": b"lower b\n",
        f"{w}/deep": None,
        f"{w}/deep/er": None,
        f"{w}/deep/er/x": b"x" * 5000,
        **{f"{w}/f{k}": f"lower file {k} of {w}\n".encode() * (k + 1) for k in range(4)},
    }
    top: dict[str, bytes | None] = {
        w: None,
        f"{w}/lowdir": None,
        f"{w}/lowdir/c": b"top c\n",
        f"{w}/f4": b"top file\n",
        f"{w}/f3": b"WHITEOUT",
    }
    return top, bottom


def errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def digest(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


@dataclass
class Inode:
    data: bytearray
    mode: int = 0o644


@dataclass
class Model:
    """``names``: file path -> inode number (hard links share one); ``dirs``: directories."""

    inodes: dict[int, Inode] = field(default_factory=dict)
    names: dict[str, int] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    next_ino: int = 1

    @classmethod
    def of_lowers(cls, worker: int) -> Model:
        model = cls()
        top, bottom = lower_tree(worker)
        for layer in (bottom, top):  # the top one wins
            for path, content in layer.items():
                if content is None:
                    model.dirs.add(path)
                elif content == b"WHITEOUT":
                    model.names.pop(path, None)
                else:
                    model.new_file(path, content)
        return model

    def new_file(self, path: str, content: bytes, mode: int = 0o644) -> None:
        self.inodes[self.next_ino] = Inode(bytearray(content), mode)
        self.names[path] = self.next_ino
        self.next_ino += 1

    def nlink(self, ino: int) -> int:
        return sum(1 for i in self.names.values() if i == ino)

    def children(self, directory: str) -> list[str]:
        prefix = directory + "/"
        found = {
            p[len(prefix) :].split("/", 1)[0]
            for p in [*self.names, *self.dirs]
            if p.startswith(prefix)
        }
        return sorted(found)

    def exists(self, path: str) -> str | None:
        return "file" if path in self.names else "dir" if path in self.dirs else None


class Worker:
    def __init__(self, mnt: str, worker: int, seed: int) -> None:
        self.mnt = mnt
        self.worker = worker
        self.root = f"w{worker}"
        self.rng = random.Random(seed)
        self.model = Model.of_lowers(worker)
        self.findings: list[str] = []
        self.counts: dict[str, int] = {}
        self.opno = 0

    def p(self, rel: str) -> str:
        return os.path.join(self.mnt, rel)

    # -- choosing ---------------------------------------------------------------------------
    def a_dir(self) -> str:
        return self.rng.choice(sorted(self.model.dirs))

    def a_file(self) -> str | None:
        names = sorted(self.model.names)
        return self.rng.choice(names) if names else None

    def a_name(self, directory: str | None = None) -> str:
        return f"{directory or self.a_dir()}/{self.rng.choice(POOL)}"

    def data(self) -> bytes:
        return self.rng.randbytes(self.rng.choice([0, 1, 100, 4096, 5000, 20000]))

    # -- checking ---------------------------------------------------------------------------
    def check(self, op: str, expected: object, run: Callable[[], object]) -> None:
        self.counts[op] = self.counts.get(op, 0) + 1
        try:
            got: object = ("ok", run())
        except OSError as exc:
            got = ("err", errname(exc))
        if got != expected:
            self.findings.append(
                f"w{self.worker} op {self.opno} {op}: expected {expected!r}, got {got!r}"
            )

    def file_state(self, path: str) -> tuple[int, str, int, str]:
        """(size, content digest, link count, mode) of *path* through the mount."""
        st = os.stat(self.p(path), follow_symlinks=False)
        with open(self.p(path), "rb") as f:
            data = f.read()
        return st.st_size, digest(data), st.st_nlink, oct(stat.S_IMODE(st.st_mode))

    def modelled(self, path: str) -> tuple[int, str, int, str]:
        ino = self.model.names[path]
        inode = self.model.inodes[ino]
        return len(inode.data), digest(inode.data), self.model.nlink(ino), oct(inode.mode)

    # -- the operations on the worker's own subtree ----------------------------------------
    def op_create(self) -> None:
        path, data = self.a_name(), self.data()
        kind = self.model.exists(path)
        if kind == "dir":
            self.check("create", ("err", "EISDIR"), lambda: self._write_new(path, data))
            return
        if kind == "file":
            self.model.inodes[self.model.names[path]].data[:] = data
        else:
            self.model.new_file(path, data)
        self.check("create", ("ok", self.modelled(path)), lambda: self._write_new(path, data))

    def _write_new(self, path: str, data: bytes) -> tuple[int, str, int, str]:
        fd = os.open(self.p(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return self.file_state(path)

    def op_write(self) -> None:
        path = self.a_file()
        if path is None:
            return
        inode = self.model.inodes[self.model.names[path]]
        off, data = self.rng.randrange(len(inode.data) + 1), self.data()[:6000]
        inode.data[off : off + len(data)] = data

        def run() -> tuple[int, str, int, str]:
            fd = os.open(self.p(path), os.O_WRONLY)
            try:
                os.pwrite(fd, data, off)
            finally:
                os.close(fd)
            return self.file_state(path)

        self.check("write", ("ok", self.modelled(path)), run)

    def op_truncate(self) -> None:
        path = self.a_file()
        if path is None:
            return
        inode = self.model.inodes[self.model.names[path]]
        size = self.rng.choice([0, 1, len(inode.data) // 2, len(inode.data) + 3000])
        inode.data[:] = bytes(inode.data[:size]).ljust(size, b"\0")

        def run() -> tuple[int, str, int, str]:
            os.truncate(self.p(path), size)
            return self.file_state(path)

        self.check("truncate", ("ok", self.modelled(path)), run)

    def op_read(self) -> None:
        path = self.rng.choice([*sorted(self.model.names), self.a_name()])
        if path in self.model.names:
            self.check("read", ("ok", self.modelled(path)), lambda: self.file_state(path))
        elif path in self.model.dirs:
            self.check("read", ("err", "EISDIR"), lambda: self.file_state(path))
        else:
            self.check("read", ("err", "ENOENT"), lambda: self.file_state(path))

    def op_unlink(self) -> None:
        path = self.a_name() if self.rng.random() < 0.3 else self.a_file()
        if path is None:
            return
        kind = self.model.exists(path)
        expected = ("ok", None) if kind == "file" else ("err", "EISDIR" if kind else "ENOENT")
        if kind == "file":
            del self.model.names[path]
        self.check("unlink", expected, lambda: os.unlink(self.p(path)))

    def op_unlink_held(self) -> None:
        """Hold a file (O_PATH, or open read-write), delete it, create another file in the
        same directory at once (on ext4 it gets the freed inode number), check both."""
        path = self.a_file()
        if path is None:
            return
        rw = self.rng.random() < 0.5
        ino = self.model.names.pop(path)
        held = self.model.inodes[ino]
        new, data = self.a_name(path.rpartition("/")[0]), self.data()
        if self.model.exists(new) == "dir":
            new = path  # the freed name itself: always free now
        if new in self.model.names:
            self.model.inodes[self.model.names[new]].data[:] = data
        else:
            self.model.new_file(new, data)
        after = bytearray(held.data)
        after[0:4] = b"HELD"
        expected_held = (len(after), digest(after)) if rw else len(held.data)
        expected = ("ok", (self.modelled(new), expected_held))
        held.data[:] = after if rw else held.data

        def run() -> object:
            step = "open"
            try:
                fd = os.open(self.p(path), os.O_RDWR if rw else os.O_PATH)
            except OSError as exc:
                return step, errname(exc)
            result: object
            try:
                step = "unlink"
                os.unlink(self.p(path))
                step = "create another"
                state = self._write_new(new, data)
                if rw:
                    step = "write the held file"
                    os.pwrite(fd, b"HELD", 0)
                    step = "read the held file"
                    size = os.fstat(fd).st_size
                    result = state, (size, digest(os.pread(fd, size + 1, 0)))
                else:
                    step = "fstat the held file"
                    result = state, os.fstat(fd).st_size
            except OSError as exc:  # which step failed: worth knowing
                result = step, errname(exc)
            try:
                os.close(fd)
            except OSError as exc:
                return "close the held file", errname(exc)
            return result

        self.check("unlink_held", expected, run)

    def op_rename(self) -> None:
        if self.rng.random() < 0.75:
            src = self.a_file()
            if src is None:
                return
            dst = self.a_name()
            kind = self.model.exists(dst)
            if kind == "dir":
                # The VFS: a target that is an ancestor of the source is ENOTEMPTY.
                err = "ENOTEMPTY" if src.startswith(dst + "/") else "EISDIR"
                self.check("rename", ("err", err), lambda: os.rename(self.p(src), self.p(dst)))
                return
            if self.model.names.get(dst) != self.model.names[src]:  # else: the same file
                self.model.names[dst] = self.model.names.pop(src)
            self.check("rename", ("ok", None), lambda: os.rename(self.p(src), self.p(dst)))
            return
        dirs = [d for d in sorted(self.model.dirs) if d != self.root]
        if not dirs:
            return
        src = self.rng.choice(dirs)
        parent = self.rng.choice(
            [d for d in sorted(self.model.dirs) if d != src and not d.startswith(src + "/")]
        )
        dst = f"{parent}/{self.rng.choice(POOL)}"
        if self.model.exists(dst):
            return  # the VFS's order of checks for a taken name is not worth modelling
        self._move_dir(src, dst)
        self.check("rename_dir", ("ok", None), lambda: os.rename(self.p(src), self.p(dst)))

    def _move_dir(self, src: str, dst: str) -> None:
        prefix = src + "/"
        self.model.dirs = {
            dst + d[len(src) :] if d == src or d.startswith(prefix) else d for d in self.model.dirs
        }
        self.model.names = {
            dst + n[len(src) :] if n.startswith(prefix) else n: i
            for n, i in self.model.names.items()
        }

    def op_link(self) -> None:
        src = self.a_file()
        if src is None:
            return
        dst = self.a_name()
        if self.model.exists(dst):
            self.check("link", ("err", "EEXIST"), lambda: os.link(self.p(src), self.p(dst)))
            return
        self.model.names[dst] = self.model.names[src]

        def run() -> tuple[int, str, int, str]:
            os.link(self.p(src), self.p(dst))
            return self.file_state(dst)

        self.check("link", ("ok", self.modelled(dst)), run)

    def op_mkdir(self) -> None:
        path = self.a_name()
        if self.model.exists(path):
            self.check("mkdir", ("err", "EEXIST"), lambda: os.mkdir(self.p(path)))
            return
        self.model.dirs.add(path)
        self.check("mkdir", ("ok", None), lambda: os.mkdir(self.p(path)))

    def op_rmdir(self) -> None:
        dirs = [d for d in sorted(self.model.dirs) if d != self.root]
        if not dirs:
            return
        path = self.rng.choice(dirs)
        if self.model.children(path):
            self.check("rmdir", ("err", "ENOTEMPTY"), lambda: os.rmdir(self.p(path)))
            return
        self.model.dirs.discard(path)
        self.check("rmdir", ("ok", None), lambda: os.rmdir(self.p(path)))

    def op_readdir(self) -> None:
        path = self.a_dir()
        self.check(
            "readdir", ("ok", self.model.children(path)), lambda: sorted(os.listdir(self.p(path)))
        )

    def op_chmod(self) -> None:
        path = self.a_file()
        if path is None:
            return
        mode = self.rng.choice(MODES)
        self.model.inodes[self.model.names[path]].mode = mode

        def run() -> tuple[int, str, int, str]:
            os.chmod(self.p(path), mode)
            return self.file_state(path)

        self.check("chmod", ("ok", self.modelled(path)), run)

    def op_utime(self) -> None:
        path = self.rng.choice([*sorted(self.model.names), *sorted(self.model.dirs)])
        when = self.rng.randrange(10**9, 2 * 10**9) * 10**9

        def run() -> int:
            os.utime(self.p(path), ns=(when, when))
            return os.stat(self.p(path)).st_mtime_ns

        self.check("utime", ("ok", when), run)

    # -- the shared directory: races, checked by what a race can cause ---------------------
    def op_shared(self) -> None:
        rng, shared = self.rng, os.path.join(self.mnt, "shared")
        kind = rng.choice(sorted(SHARED_ERRNOS))
        a, b = (os.path.join(shared, rng.choice(SHARED_POOL)) for _ in range(2))
        self.counts["shared_" + kind] = self.counts.get("shared_" + kind, 0) + 1
        try:
            if kind == "put":  # a whole record, renamed into place: never torn
                temp = self.p(f"{self.root}.put")
                with open(temp, "wb") as f:
                    f.write(f"w{self.worker}:{self.opno}\n".encode())
                os.rename(temp, a)
            elif kind == "take":
                os.unlink(a)
            elif kind == "move":
                os.rename(a, b)
            elif kind == "link":
                os.link(a, b)
            elif kind == "mkdir":
                os.mkdir(a)
            elif kind == "rmdir":
                os.rmdir(a)
            elif kind == "list":
                os.listdir(shared)
            else:
                with open(a, "rb") as f:
                    data = f.read()
                if not RECORD.fullmatch(data):
                    self.findings.append(
                        f"w{self.worker} op {self.opno} shared read: not one "
                        f"record: {len(data)} bytes, {data[:24]!r}..."
                    )
        except OSError as exc:
            if errname(exc) not in SHARED_ERRNOS[kind]:
                self.findings.append(f"w{self.worker} op {self.opno} shared {kind}: {errname(exc)}")

    # -- running ----------------------------------------------------------------------------
    OPS = {  # name: weight
        "create": 6,
        "write": 5,
        "truncate": 2,
        "read": 4,
        "unlink": 3,
        "unlink_held": 3,
        "rename": 4,
        "link": 2,
        "mkdir": 3,
        "rmdir": 2,
        "readdir": 3,
        "chmod": 2,
        "utime": 1,
        "shared": 6,
    }

    def run(self, seconds: float) -> None:
        names = sorted(self.OPS)
        weights = [self.OPS[n] for n in names]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(self.findings) < MAX_FINDINGS:
            getattr(self, "op_" + self.rng.choices(names, weights)[0])()
            self.opno += 1

    def final_differences(self) -> list[str]:
        """The worker's subtree as the mount shows it, against the model."""
        found_dirs: set[str] = set()
        found_files: dict[str, object] = {}
        for dirpath, _dirs, filenames in os.walk(self.p(self.root)):
            rel = os.path.relpath(dirpath, self.mnt)
            found_dirs.add(rel)
            for name in filenames:
                path = f"{rel}/{name}"
                try:
                    found_files[path] = self.file_state(path)
                except OSError as exc:
                    found_files[path] = ("err", errname(exc))
        wanted: dict[str, object] = {path: self.modelled(path) for path in self.model.names}
        me = f"w{self.worker} final"
        out = []
        if found_dirs - self.model.dirs:
            out.append(
                f"{me}: directories only on the mount: {sorted(found_dirs - self.model.dirs)}"
            )
        if self.model.dirs - found_dirs:
            out.append(f"{me}: directories missing: {sorted(self.model.dirs - found_dirs)}")
        for path in sorted(wanted.keys() | found_files.keys()):
            if wanted.get(path) != found_files.get(path):
                out.append(f"{me}: {path}: model {wanted.get(path)}, mount {found_files.get(path)}")
        return out


def main() -> None:
    mnt, worker, seed, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    os.umask(0o022)
    w = Worker(mnt, worker, seed)
    sys.stdin.readline()  # everyone starts together
    try:
        w.run(seconds)
        final = w.final_differences()
    except OSError as exc:  # the mount itself failed us: a finding, reported
        final = [f"w{worker} stopped at op {w.opno}: {exc!r}"]
    json.dump(
        {"worker": worker, "ops": w.opno, "counts": w.counts, "findings": w.findings + final},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
