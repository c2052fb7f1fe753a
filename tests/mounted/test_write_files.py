"""Writing files on a mount: open flags, unlinked open files, the write-back cache, long
names and long paths. Each behaviour runs on kernel overlayfs and on unionfs over the same
stack; the outcomes step by step and the trees left behind must be equal.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from mountutil import Dir, File, Symlink, Whiteout, tree
from writeutil import Mounted, Outcome, on_both, outcome, summary, writable

LAYERS = [
    tree(
        {
            "f": File(b"lower f\n" * 100, mode=0o640, uid=1000, gid=1000),
            "d": {"a": b"a"},
            "s": Symlink(b"f"),
            "dangling": Symlink(b"nowhere"),
            "gone": Whiteout(),
            "empty": b"",
        }
    ),
    tree({"gone": b"hidden", "d": {"b": b"b"}}),
]

RW = os.O_RDWR


def read_all(path: Path) -> Outcome:
    return outcome(lambda: path.read_bytes())


def opened(path: Path, flags: int, mode: int = 0o600) -> Outcome:
    """Open, fstat, close: the summary, or the errno."""

    def run() -> object:
        fd = os.open(path, flags, mode)
        try:
            return summary(os.fstat(fd))
        finally:
            os.close(fd)

    return outcome(run)


# -- open flags ----------------------------------------------------------------------------


def open_flag_steps(m: Mounted) -> list[Outcome]:
    p = m.path
    out = [
        opened(p("f"), os.O_WRONLY | os.O_TRUNC),
        read_all(p("f")),
        opened(p("d/a"), os.O_RDONLY | os.O_TRUNC),
        read_all(p("d/a")),
        opened(p("empty"), os.O_WRONLY | os.O_TRUNC),
        opened(p("d/b"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o777),  # mode ignored
        opened(p("d/b"), os.O_WRONLY | os.O_CREAT | os.O_EXCL),
        opened(p("d"), os.O_WRONLY | os.O_CREAT | os.O_EXCL),
        opened(p("s"), os.O_WRONLY | os.O_CREAT | os.O_EXCL),
        opened(p("dangling"), os.O_WRONLY | os.O_CREAT | os.O_EXCL),
        opened(p("gone"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640),
        opened(p("d"), os.O_WRONLY),
        opened(p("s"), os.O_WRONLY | os.O_NOFOLLOW),
    ]

    def append() -> object:
        fd = os.open(p("d/b"), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"X")
            os.pwrite(fd, b"Y", 0)  # Linux: O_APPEND wins over the offset
            os.ftruncate(fd, 1)
            os.write(fd, b"Z")
            return summary(os.fstat(fd))
        finally:
            os.close(fd)

    out += [outcome(append), read_all(p("d/b"))]

    def excl_then_write() -> object:
        fd = os.open(p("d/new"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o604)
        try:
            os.write(fd, b"fresh")
            return os.pread(fd, 10, 0), summary(os.fstat(fd))
        finally:
            os.close(fd)

    out += [outcome(excl_then_write), opened(p("d/new"), os.O_CREAT | os.O_EXCL | os.O_RDWR)]
    return out


def test_o_trunc_o_append_o_excl_as_on_the_kernel(tmp_path: Path) -> None:
    problems = on_both(tmp_path, LAYERS, open_flag_steps)
    assert not problems, "\n".join(problems)


# -- unlinked open files ---------------------------------------------------------------------


def unlinked_steps(m: Mounted) -> list[Outcome]:
    p = m.path
    out: list[Outcome] = []
    for rel in ("f", "d/a"):
        fd = os.open(p(rel), RW)
        try:
            os.unlink(p(rel))
            out.append(outcome(lambda fd=fd: summary(os.fstat(fd))))
            out.append(outcome(lambda fd=fd: os.pwrite(fd, b"after unlink", 3)))
            out.append(outcome(lambda fd=fd: os.pread(fd, 100, 0)))
            out.append(outcome(lambda fd=fd: (os.ftruncate(fd, 5), summary(os.fstat(fd)))))
            out.append(outcome(lambda fd=fd: (os.fchmod(fd, 0o600), summary(os.fstat(fd)))))
            out.append(read_all(p(rel)))
            p(rel).write_bytes(b"a new file of that name")
            out.append(outcome(lambda fd=fd: os.pread(fd, 100, 0)))
            out.append(outcome(lambda fd=fd: os.fstat(fd).st_nlink))
        finally:
            os.close(fd)
    # a file replaced by a rename stays open too
    p("d/x").write_bytes(b"x content")
    fd = os.open(p("d/x"), RW)
    try:
        os.rename(p("d/b"), p("d/x"))
        out.append(outcome(lambda: (os.pread(fd, 100, 0), summary(os.fstat(fd)))))
        out.append(outcome(lambda: os.write(fd, b"!")))
        out.append(read_all(p("d/x")))
    finally:
        os.close(fd)
    return out


def test_unlinked_open_file_stays_usable_with_nlink_0(tmp_path: Path) -> None:
    problems = on_both(tmp_path, LAYERS, unlinked_steps)
    assert not problems, "\n".join(problems)


def test_unlinked_open_file_fstat_shows_nlink_0(tmp_path: Path) -> None:
    with writable(tmp_path, LAYERS) as m, open(m.path("f"), "r+b") as f:
        os.unlink(m.path("f"))
        f.write(b"still here")
        f.flush()
        assert os.fstat(f.fileno()).st_nlink == 0
        f.seek(0)
        assert f.read(10) == b"still here"


# -- the write-back cache ------------------------------------------------------------------


def test_write_then_stat_shows_size_and_mtime(tmp_path: Path) -> None:
    with writable(tmp_path, LAYERS) as m:
        os.utime(m.path("f"), ns=(1, 10**18))
        begin = time.time_ns() - 10_000_000  # clocks: the upper's granularity is coarse
        with open(m.path("f"), "r+b") as f:
            for i in range(256):
                f.write(bytes([i]) * 4096)
            f.flush()
            st = os.stat(m.path("f"))
            assert st.st_size == 256 * 4096
            assert begin <= st.st_mtime_ns <= time.time_ns() + 10_000_000
            os.ftruncate(f.fileno(), 5000)
            assert os.stat(m.path("f")).st_size == 5000
        shown = os.stat(m.path("f"))
        assert shown.st_size == 5000
        new = m.path("d/new")
        with open(new, "wb") as f:
            f.write(b"n" * 100_000)
            assert os.fstat(f.fileno()).st_size == 100_000
        after_close = os.stat(new)
    up = os.stat(m.upper / "f")
    assert (up.st_size, up.st_mtime_ns) == (shown.st_size, shown.st_mtime_ns)
    up_new = os.stat(m.upper / "d" / "new")
    assert (up_new.st_size, up_new.st_mtime_ns) == (100_000, after_close.st_mtime_ns)


# -- long names and long paths -------------------------------------------------------------


def long_name_steps(m: Mounted) -> list[Outcome]:
    out = []
    for n in (255, 256, 4000):
        name = "n" * n
        d = m.path("d")
        out += [
            opened(d / name, os.O_CREAT | os.O_WRONLY),
            outcome(lambda name=name: os.mkdir(m.path("d") / ("m" + name[1:]))),
            outcome(lambda name=name: os.symlink("t", m.path("d") / ("s" + name[1:]))),
            outcome(lambda name=name: os.mkfifo(m.path("d") / ("p" + name[1:]))),
            outcome(lambda name=name: os.rename(m.path("d/a"), m.path("d") / ("r" + name[1:]))),
            outcome(lambda name=name: os.link(m.path("f"), m.path("d") / ("l" + name[1:]))),
            outcome(lambda name=name: os.lstat(m.path("d") / name)),
        ]
    return [o if o[0] == "err" else ("ok", None) for o in out]


def test_names_over_255_bytes_give_enametoolong(tmp_path: Path) -> None:
    problems = on_both(tmp_path, LAYERS, long_name_steps)
    assert not problems, "\n".join(problems)


COMPONENT = "c" * 200


def deep_steps(m: Mounted) -> list[Outcome]:
    """Nested 200-byte names until the path passes 4,000 bytes, built and read through
    directory descriptors; then the whole relative path in one call; then the lower one."""
    out: list[Outcome] = []
    root = os.open(m.mnt, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = os.dup(root)
        rel = ""
        while len(rel) < 4000:
            out.append(outcome(lambda fd=fd: os.mkdir(COMPONENT, dir_fd=fd)))
            nxt = os.open(COMPONENT, os.O_PATH | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
            rel = f"{rel}/{COMPONENT}" if rel else COMPONENT
        leaf = os.open("leaf", os.O_CREAT | os.O_RDWR, 0o644, dir_fd=fd)
        os.write(leaf, b"at the bottom")
        os.close(leaf)
        os.close(fd)
        full = rel + "/leaf"
        out.append(("len", len(full)))

        def whole() -> object:
            f = os.open(full, os.O_RDWR | os.O_APPEND, dir_fd=root)
            try:
                os.write(f, b"!")
                return os.pread(f, 100, 0), summary(os.fstat(f))
            finally:
                os.close(f)

        out.append(outcome(whole))
        out.append(outcome(lambda: os.rename(full, rel + "/moved", src_dir_fd=root,
                                             dst_dir_fd=root)))  # fmt: skip
        # the deep path that is in the lower layer: read it, then copy it up by appending
        lower_rel = "deep/" + "/".join([COMPONENT] * 19) + "/low"

        def lower_deep() -> object:
            f = os.open(lower_rel, os.O_RDWR | os.O_APPEND, dir_fd=root)
            try:
                before = os.pread(f, 100, 0)
                os.write(f, b"+")
                return before, os.pread(f, 100, 0)
            finally:
                os.close(f)

        out.append(("len", len(lower_rel)))
        out.append(outcome(lower_deep))
        d = os.open(os.path.dirname(lower_rel), os.O_RDONLY | os.O_DIRECTORY, dir_fd=root)
        try:
            out.append(outcome(lambda: sorted(os.listdir(d))))
            out.append(outcome(lambda: os.unlink("low", dir_fd=d)))
        finally:
            os.close(d)
        out.append(outcome(lambda: os.lstat(lower_rel, dir_fd=root)))
    finally:
        os.close(root)
    return out


def deep_layers() -> list[Dir]:
    node: Dir = tree({"low": b"in the lower layer"})
    for _ in range(19):
        node = Dir({COMPONENT.encode(): node})
    top = tree({"deep": node})
    return [top, *LAYERS]


def test_paths_near_path_max_work_as_on_the_kernel(tmp_path: Path) -> None:
    problems = on_both(tmp_path, deep_layers(), deep_steps)
    assert not problems, "\n".join(problems)


def test_deep_path_file_lands_in_the_upper(tmp_path: Path) -> None:
    with writable(tmp_path, deep_layers()) as m:
        results = deep_steps(m)
        assert all(r[0] != "err" for r in results[:-1]), results
        assert results[-1] == ("err", "ENOENT")
    found = {}
    for dirpath, _, files, dir_fd in os.fwalk(m.upper):  # paths past PATH_MAX: by fd
        for name in files:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            data = None
            if stat.S_ISREG(st.st_mode):
                fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
                data = os.read(fd, 100)
                os.close(fd)
            found[name] = (len(dirpath), stat.S_IFMT(st.st_mode), st.st_rdev, data)
    assert sorted(found) == ["low", "moved"]
    assert found["moved"][1:] == (stat.S_IFREG, 0, b"at the bottom!")
    assert found["moved"][0] > 4000
    assert found["low"][1:] == (stat.S_IFCHR, 0, None)


# -- hard links, the root, and opens that fail ------------------------------------------------


def hard_link_steps(m: Mounted) -> list[Outcome]:
    p = m.path
    p("d/up").write_bytes(b"upper file")
    out = []
    for name, other in (("f", "f2"), ("d/up", "d/up2")):
        out += [
            outcome(lambda name=name, other=other: os.link(p(name), p(other))),
            outcome(lambda other=other: os.unlink(p(other))),
            read_all(p(name)),
            outcome(lambda name=name: summary(os.lstat(p(name)))),
            outcome(lambda name=name: os.chmod(p(name), 0o600)),
            outcome(lambda name=name: os.setxattr(p(name), "user.k", b"v")),
            outcome(lambda name=name: p(name).write_bytes(b"rewritten")),
        ]
    return out


def test_removing_one_name_of_a_hard_link_leaves_the_other_usable(tmp_path: Path) -> None:
    problems = on_both(tmp_path, LAYERS, hard_link_steps)
    assert not problems, "\n".join(problems)


def root_steps(m: Mounted) -> list[Outcome]:
    return [
        outcome(lambda: os.utime(m.mnt, ns=(5, 1_000_000_000))),
        outcome(lambda: os.stat(m.mnt).st_mtime_ns),
        outcome(lambda: os.chmod(m.mnt, 0o751)),
        outcome(lambda: os.chown(m.mnt, 1000, 1000)),
        outcome(lambda: os.setxattr(m.mnt, "user.root", b"r")),
        outcome(lambda: summary(os.stat(m.mnt))),
    ]


def test_attributes_of_the_mount_root_change_as_on_the_kernel(tmp_path: Path) -> None:
    problems = on_both(tmp_path, LAYERS, root_steps)
    assert not problems, "\n".join(problems)


def rdonly_trunc_steps(m: Mounted) -> list[Outcome]:
    return [
        opened(m.path("d/a"), os.O_RDONLY | os.O_TRUNC),
        read_all(m.path("d/a")),
        outcome(lambda: os.stat(m.path("d/a")).st_size),
    ]


def test_o_rdonly_o_trunc_of_a_lower_file_as_on_the_kernel(tmp_path: Path) -> None:
    """Linux truncates on O_TRUNC whatever the access mode; a failed open must at least
    leave the file as it was."""
    problems = on_both(tmp_path, LAYERS, rdonly_trunc_steps)
    assert not problems, "\n".join(problems)
