"""The index under a real mount: same tree with it and without it, no syscall on the layers
for lookups and listings, no rebuild at the second mount, and a mount that works (directly
from the layers, with one warning) when the index cannot be written.

Every mount is ``unionfs mount -f`` in a child process (``mountutil.unionfs_mount``), with
``-o indexdir=`` set to this test's own directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mountutil import (
    Dir,
    File,
    Symlink,
    Whiteout,
    build_stack,
    daemon_pid,
    fresh_dir,
    tree,
    unionfs_mount,
)
from patience import exit_of, settled, wait_until
from treecmp import diff_trees, marker_leaks, snapshot

from unionfs.index import verify

from .indexutil import open_index, registry, tiny_tmpfs

TOP = tree(
    {
        "keep": b"top",
        "gone_chr": Whiteout("chr"),
        "gone_wh": Whiteout("wh"),
        "opq_trusted": Dir({b"t": File(b"t")}, opaque="trusted"),
        "opq_user": Dir({b"u": File(b"u")}, opaque="user"),
        "opq_wh": Dir({b"w": File(b"w")}, opaque="wh"),
        "merged": Dir({b"top": File(b"t"), b"shadow": File(b"top")}, xattrs={"user.l": b"top"}),
        "exe": File(b"#!/bin/sh\n", mode=0o755, xattrs={"user.k": b"v"}),
        "link": Symlink(b"keep"),
        "hard1": File(b"hard", link=1),
        "hard2": File(b"hard", link=1),
    }
)
MIDDLE = tree(
    {
        "gone_chr": b"hidden",
        "gone_wh": {"x": b"hidden dir"},
        "opq_trusted": {"hidden": b"h"},
        "opq_user": {"hidden": b"h"},
        "opq_wh": {"hidden": b"h"},
        "merged": Dir({b"mid": File(b"m"), b"shadow": File(b"mid")}),
        "some": {"lower": {"file": File(b"lower data", xattrs={"user.x": b"1"})}},
        "only_middle": b"m",
    }
)
BOTTOM = tree({"merged": {"bottom": b"b", "sub": {"deep": b"d"}}, "some": {"below": b"b"}})
LAYERS = [TOP, MIDDLE, BOTTOM]


def _layers(tmp_path: Path) -> list[Path]:
    return build_stack(fresh_dir(tmp_path, "layers"), LAYERS, kernel=False)


def _index_on(where: Path) -> list[str]:
    return [f"indexdir={where}"]


INDEX_OFF = ["indexdir=off"]


def test_an_indexed_mount_shows_the_same_tree_as_an_unindexed_one(tmp_path: Path) -> None:
    lowers = _layers(tmp_path)
    where = tmp_path / "index"
    with unionfs_mount(lowers, fresh_dir(tmp_path, "on"), extra_opts=_index_on(where)) as on:
        indexed = snapshot(on)
    with unionfs_mount(lowers, fresh_dir(tmp_path, "off"), extra_opts=INDEX_OFF) as off:
        direct = snapshot(off)
    assert (where / "data.mdb").exists()
    assert diff_trees(direct, indexed, labels=("indexdir=off", "indexed")) == []
    assert marker_leaks(indexed) == []
    assert indexed[b"merged/sub/deep"]["content"] == b"d"
    index = open_index(where, lowers)
    try:
        assert verify.verify(index.view, index.layers) == []
    finally:
        index.close()


def _write_through(mnt: Path) -> None:
    """Changes that make the upper matter: copy-ups, whiteouts, new entries, renames."""
    (mnt / "new").write_bytes(b"created")
    (mnt / "some/lower/file").write_bytes(b"changed")  # a copy-up of a lower file
    os.chmod(mnt / "exe", 0o700)  # a metadata-only copy-up
    (mnt / "only_middle").unlink()  # a whiteout over a lower file
    shutil.rmtree(mnt / "merged/sub")  # a whiteout over a lower directory
    (mnt / "merged/sub").mkdir()  # ... and a new (opaque) directory in its place
    (mnt / "merged/sub/fresh").write_bytes(b"f")
    os.rename(mnt / "keep", mnt / "kept")
    os.setxattr(mnt / "merged", "user.added", b"a")


def test_writes_through_an_indexed_mount_end_as_without_the_index(tmp_path: Path) -> None:
    results = {}
    for label, opts in (("on", _index_on(tmp_path / "index")), ("off", INDEX_OFF)):
        lowers = _layers(tmp_path)
        upper, work = fresh_dir(tmp_path, "upper"), fresh_dir(tmp_path, "work")
        with unionfs_mount(
            lowers, fresh_dir(tmp_path, label), upper=upper, work=work, extra_opts=opts
        ) as mnt:
            _write_through(mnt)
            results[label] = snapshot(mnt)
        with unionfs_mount(lowers, fresh_dir(tmp_path, label), upper=upper, work=work,
                           extra_opts=opts) as mnt:  # fmt: skip
            assert diff_trees(results[label], snapshot(mnt), ("before", "remounted")) == []
    assert diff_trees(results["off"], results["on"], labels=("indexdir=off", "indexed")) == []
    assert results["on"][b"some/lower/file"]["content"] == b"changed"
    assert b"merged/sub/deep" not in results["on"]


# -- no syscall on the layers --------------------------------------------------------------


TRACED = "%file,%stat,%lstat,%fstat,%statfs,getdents64,fgetxattr,flistxattr,read,pread64"


@contextmanager
def traced(pid: int, out: Path) -> Iterator[Path]:
    """strace every thread of *pid* (fd arguments shown as paths, ``-y``) while the body
    runs; the trace is in *out* afterwards."""
    err = out.with_suffix(".err")
    with open(err, "wb") as errfile:
        proc = subprocess.Popen(
            ["strace", "-f", "-y", "-s", "256", "-e", f"trace={TRACED}", "-o", str(out),
             "-p", str(pid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errfile,
        )  # fmt: skip
    try:
        attached = wait_until(lambda: b"attached" in err.read_bytes() or proc.poll() is not None,
                              30)  # fmt: skip
        assert proc.poll() is None, f"strace failed: {err.read_text()}"
        assert attached, "strace did not attach"
        yield out
        settled(pid)  # the daemon has finished answering: its last syscalls are traced
    finally:
        proc.send_signal(signal.SIGINT)
        if not exit_of(proc):
            proc.kill()
            proc.wait()


def _layer_fds(pid: int, roots: list[Path]) -> set[int]:
    """The descriptors *pid* holds now on entries of *roots*, told by device and inode: a
    layer read through a private clone of its mount (as root the daemon reads its lowers
    so, to leave their atimes alone) shows paths relative to that clone in the trace."""
    inodes = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [".", *dirnames, *filenames]:
                st = os.lstat(os.path.join(dirpath, name))
                inodes.add((st.st_dev, st.st_ino))
    found = set()
    for entry in os.listdir(f"/proc/{pid}/fd"):
        try:
            st = os.stat(f"/proc/{pid}/fd/{entry}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in inodes:
            found.add(int(entry))
    return found


def _touching(trace: Path, roots: list[Path], pid: int) -> list[str]:
    """Lines of *trace* whose paths lie in one of *roots*, or that use a descriptor the
    daemon *pid* still holds in one of them (its layer roots and cached directories)."""
    pattern = re.compile("|".join(re.escape(str(r)) + r"(?:[/>\"]|$)" for r in roots))
    fds = _layer_fds(pid, roots)
    numbers = re.compile(r"\b(\d+)<|/proc/self/fd/(\d+)")
    return [
        line
        for line in trace.read_text(errors="replace").splitlines()
        if pattern.search(line)
        or any(int(a or b) in fds for a, b in numbers.findall(line.partition(" ")[2]))
    ]


def _lookups(mnt: Path) -> None:
    """Lookups, attributes, listings, xattrs and a link target of lower entries."""
    os.stat(mnt / "some/lower/file")
    os.lstat(mnt / "merged/sub/deep")
    assert not os.path.lexists(mnt / "gone_chr")
    assert sorted(os.listdir(mnt / "merged")) == ["bottom", "mid", "shadow", "sub", "top"]
    assert sorted(os.listdir(mnt / "opq_wh")) == ["w"]
    assert os.getxattr(mnt / "some/lower/file", "user.x") == b"1"
    assert os.listxattr(mnt / "exe") == ["user.k"]
    assert os.readlink(mnt / "link") == "keep"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_lookups_through_an_indexed_mount_make_no_syscall_on_the_layers(tmp_path: Path) -> None:
    lowers = _layers(tmp_path)
    with unionfs_mount(lowers, fresh_dir(tmp_path, "off"), extra_opts=INDEX_OFF) as mnt:
        pid = daemon_pid(mnt)
        with traced(pid, tmp_path / "off.trace") as trace:
            _lookups(mnt)
        assert _touching(trace, lowers, pid), "the control: without the index the layers are read"
    where = tmp_path / "index"
    with unionfs_mount(lowers, fresh_dir(tmp_path, "on"), extra_opts=_index_on(where)) as mnt:
        pid = daemon_pid(mnt)
        with traced(pid, tmp_path / "on.trace") as trace:
            _lookups(mnt)
        assert _touching(trace, lowers, pid) == []
        with traced(pid, tmp_path / "read.trace") as trace:
            assert (mnt / "some/lower/file").read_bytes() == b"lower data"
        touched = _touching(trace, lowers, pid)
        assert touched, "data comes from the layer"
        assert _touching(trace, [lowers[0], lowers[2]], pid) == [], "only the layer holding it"


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_with_an_upper_lookups_probe_the_upper_and_never_the_lower_layers(
    tmp_path: Path,
) -> None:
    lowers = _layers(tmp_path)
    upper, work = fresh_dir(tmp_path, "upper"), fresh_dir(tmp_path, "work")
    opts = _index_on(tmp_path / "index")
    with unionfs_mount(lowers, fresh_dir(tmp_path, "mnt"), upper, work, opts) as mnt:
        (mnt / "created").write_bytes(b"new")
        (mnt / "only_middle").unlink()
        pid = daemon_pid(mnt)
        with traced(pid, tmp_path / "upper.trace") as trace:
            _lookups(mnt)
            os.stat(mnt / "created")
            assert not os.path.lexists(mnt / "only_middle")
            assert not os.path.lexists(mnt / "merged/never-existed")
            assert sorted(os.listdir(mnt / "some")) == ["below", "lower"]
        assert _touching(trace, [upper], pid), "the control: the upper is read"
        assert _touching(trace, lowers, pid) == []


# -- the second mount ----------------------------------------------------------------------


def test_a_second_mount_of_the_same_stack_starts_without_rebuilding(tmp_path: Path) -> None:
    lowers = _layers(tmp_path)
    where = tmp_path / "index"
    mnt = fresh_dir(tmp_path, "mnt")
    with unionfs_mount(lowers, mnt, extra_opts=_index_on(where)):
        pass
    index = open_index(where, lowers, check=False)
    first = registry(index.env)
    with index.env.read() as txn:
        counter = txn.get(b"next", db=index.env.meta)
    index.close()
    with unionfs_mount(lowers, mnt, extra_opts=_index_on(where)) as again:
        assert (again / "merged/sub/deep").read_bytes() == b"d"
    index = open_index(where, lowers, check=False)
    try:
        assert registry(index.env) == first
        with index.env.read() as txn:
            assert txn.get(b"next", db=index.env.meta) == counter  # no table was made
    finally:
        index.close()


def test_a_mount_without_indexdir_keeps_its_index_where_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = tmp_path / "env-index"
    monkeypatch.setenv("UNIONFS_INDEX_DIR", str(where))
    lowers = _layers(tmp_path)
    with unionfs_mount(lowers, fresh_dir(tmp_path, "mnt")) as mnt:
        assert (mnt / "keep").read_bytes() == b"top"
    assert (where / "data.mdb").exists()


# -- a full disk ---------------------------------------------------------------------------


def test_a_mount_whose_index_cannot_fit_serves_the_layers_directly_with_one_warning(
    tmp_path: Path,
) -> None:
    lowers = _layers(tmp_path)
    many = tree({f"d{i}": {f"f{j}": b"x" for j in range(100)} for i in range(20)})
    lowers += build_stack(fresh_dir(tmp_path, "big"), [many], kernel=False)
    with unionfs_mount(lowers, fresh_dir(tmp_path, "off"), extra_opts=INDEX_OFF) as off:
        direct = snapshot(off)
    log = tmp_path / "full.log"
    with tiny_tmpfs(tmp_path / "tiny", "64k") as tiny:
        opts = _index_on(tiny / "index")
        with unionfs_mount(lowers, fresh_dir(tmp_path, "on"), extra_opts=opts, log=log) as mnt:
            served = snapshot(mnt)
    assert diff_trees(direct, served, labels=("indexdir=off", "index on a full disk")) == []
    warnings = [line for line in log.read_text().splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert "index" in warnings[0]
