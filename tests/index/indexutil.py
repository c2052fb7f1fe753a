"""Shared helpers of the index tests: open an index over layer directories, compare what
it serves with what the union rules compute from the directories (``compare``, independent
of ``index.verify``), read and tamper with its registry and tables, count the scans and
merges it performs, paths that meet the codec's hashed long parents, a tiny tmpfs.

Every test opens its own index directory below its ``tmp_path`` and closes what it opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from unionfs import layerfmt
from unionfs.index import build, codec
from unionfs.index.env import IndexEnv
from unionfs.index.views import IndexedLowers
from unionfs.safepath import DirFdCache, join
from unionfs.union.readdir import list_dir
from unionfs.union.stack import DirLayer, Resolved, Stack

# Compared for every entry. atime is left out: reading a file through a layer may move it.
COMPARED = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size",
            "st_rdev", "st_blocks", "st_mtime_ns", "st_ctime_ns")  # fmt: skip


@dataclass
class Opened:
    """One open of an index over some layer directories (as one mount would open it)."""

    env: IndexEnv
    layers: list[DirLayer]
    view: IndexedLowers
    cache: DirFdCache = field(repr=False)

    def close(self) -> None:
        for layer in self.layers:
            layer.close()
        self.cache.close()
        self.env.close()


@contextlib.contextmanager
def dir_layers(paths: Sequence[str | os.PathLike[str]]) -> Iterator[list[DirLayer]]:
    """Fresh ``DirLayer`` objects (and their own descriptor cache) for *paths*, top first."""
    cache = DirFdCache(64)
    layers = [DirLayer(os.fspath(p), cache) for p in paths]
    try:
        yield layers
    finally:
        for layer in layers:
            layer.close()
        cache.close()


def open_index(indexdir: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]],
               check: bool = True) -> Opened:  # fmt: skip
    """``IndexEnv`` + ``open_lowers`` over fresh layer objects; the caller closes it."""
    cache = DirFdCache(64)
    layers = [DirLayer(os.fspath(p), cache) for p in paths]
    env = IndexEnv(os.fspath(indexdir))
    try:
        view = build.open_lowers(env, layers, check=check)
    except BaseException:
        env.close()
        for layer in layers:
            layer.close()
        cache.close()
        raise
    return Opened(env, layers, view, cache)


@contextlib.contextmanager
def opened(indexdir: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]],
           check: bool = True) -> Iterator[Opened]:  # fmt: skip
    index = open_index(indexdir, paths, check)
    try:
        yield index
    finally:
        index.close()


# -- what the rules say, from the directories ----------------------------------------------


def walk(stack: Stack) -> Iterator[Resolved]:
    """Every entry of the merged view of *stack*, parents before children."""
    root = stack.root()
    yield root
    pending = [root]
    while pending:
        directory = pending.pop()
        for _, child in list_dir(stack, directory):
            yield child
            if child.is_dir:
                pending.append(child)


def view_paths(view: IndexedLowers) -> set[bytes]:
    """Every path the index lists, found by scanning it from its root."""
    found = {b""}
    pending = [b""]
    while pending:
        path = pending.pop()
        for name, st in view.scandir(path):
            child = join(path, name)
            found.add(child)
            if stat.S_ISDIR(st.st_mode):
                pending.append(child)
    return found


def _read_all(fd: int) -> bytes:
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def compare(view: IndexedLowers, layers: Sequence[DirLayer]) -> list[str]:
    """Differences between what *view* answers and the rules over *layers*, per call:
    lstat, scandir, readlink, listxattr/getxattr, open (the data and the layer it comes
    from). Independent of ``verify``; empty when they agree."""
    stack = Stack(list(layers))
    problems: list[str] = []
    disk_paths = set()
    for res in walk(stack):
        path = res.path
        shown = os.fsdecode(path) or "/"
        disk_paths.add(path)
        top = layers[res.top]
        got = view.lstat(path)
        if got is None:
            problems.append(f"{shown}: lstat found nothing")
            continue
        for name in COMPARED:
            want = getattr(res.st, name)
            if name == "st_nlink" and res.is_dir and res.is_merged:
                want = 1  # the kernel's rule for a merged directory
            if getattr(got, name) != want:
                problems.append(f"{shown}: {name} {getattr(got, name)} != {want}")
        if res.is_dir:
            want_list = {name: child.st for name, child in list_dir(stack, res)}
            got_list = dict(view.scandir(path))
            if sorted(got_list) != sorted(want_list):
                problems.append(f"{shown}: scandir {sorted(got_list)} != {sorted(want_list)}")
            for name in set(got_list) & set(want_list):
                if stat.S_IFMT(got_list[name].st_mode) != stat.S_IFMT(want_list[name].st_mode):
                    problems.append(f"{shown}: scandir type of {name!r} differs")
        if stat.S_ISLNK(res.st.st_mode) and view.readlink(path) != top.readlink(path):
            problems.append(f"{shown}: readlink {view.readlink(path)!r}")
        if sorted(view.listxattr(path)) != sorted(top.listxattr(path)):
            problems.append(f"{shown}: listxattr {view.listxattr(path)} != {top.listxattr(path)}")
        for name in top.listxattr(path):
            if view.getxattr(path, name) != top.getxattr(path, name):
                problems.append(f"{shown}: getxattr {name!r} differs")
        if view.getxattr(path, b"user.no-such-xattr") is not None:
            problems.append(f"{shown}: getxattr of a missing name answered")
        if view.layer_of(path) is not top:
            problems.append(f"{shown}: held by {view.layer_of(path).root}, not {top.root}")
        if stat.S_ISREG(res.st.st_mode):
            served = _read_all(view.open(path, os.O_RDONLY))
            if served != _read_all(top.open(path, os.O_RDONLY)):
                problems.append(f"{shown}: open serves other data")
    for path in sorted(view_paths(view) - disk_paths):
        problems.append(f"{os.fsdecode(path)}: listed by the index only")
    return problems


def marker_leaks(view: IndexedLowers) -> list[str]:
    """Markers that the index serves: ``.wh.`` names or whiteout devices."""
    leaks = []
    for path in sorted(view_paths(view)):
        name = path.rpartition(b"/")[2]
        st = view.lstat(path)
        if layerfmt.is_marker_name(name):
            leaks.append(f"{os.fsdecode(path)}: marker name")
        if st is not None and layerfmt.is_whiteout_device(st.st_mode, st.st_rdev):
            leaks.append(f"{os.fsdecode(path)}: whiteout device")
    return leaks


# -- odd paths for the codec ---------------------------------------------------------------


def hashed_name(parent: bytes) -> bytes:
    """The name whose bytes are what the codec uses in place of a long *parent*."""
    return b"\xff\xfe" + hashlib.sha256(parent).digest()


def _long_parent_with_digest_starting(byte: int) -> bytes:
    """A path longer than 200 bytes whose SHA-256 starts with *byte*."""
    for i in range(100_000):
        path = b"p" * 150 + b"/" + b"q" * 60 + b"%d" % i
        if hashlib.sha256(path).digest()[0] == byte:
            return path
    raise AssertionError("not found")


def _clean_hashed_parent() -> tuple[bytes, bytes]:
    """A long parent and a valid directory name equal to the codec's hashed form of it."""
    for i in range(100_000):
        path = b"p" * 150 + b"/" + b"q" * 60 + b"%d" % i
        name = hashed_name(path)
        if b"/" not in name and b"\0" not in name:
            return path, name
    raise AssertionError("not found")


# Paths that meet the codec's hashed form of long parents (see test_codec): a long parent
# whose hash starts with a NUL byte, and a long parent with a directory name spelling its
# hashed form.
LONG_NUL = _long_parent_with_digest_starting(0)
LONG_CLEAN, HASHED_NAME = _clean_hashed_parent()


# -- a full disk ---------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of *size* mounted at the new directory *where*, unmounted on the way out."""
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        if os.path.ismount(where):
            subprocess.run(["umount", "-l", str(where)], check=False)


# -- the registry --------------------------------------------------------------------------


def registry(env: IndexEnv) -> dict[bytes, dict[str, object]]:
    """Every JSON record of the meta database, by key."""
    records: dict[bytes, dict[str, object]] = {}
    with env.env.begin(db=env.meta) as txn:
        for key, value in txn.cursor():
            try:
                record = json.loads(bytes(value))
            except ValueError:
                continue
            if isinstance(record, dict):
                records[bytes(key)] = record
    return records


def layer_key(env: IndexEnv, root: str | os.PathLike[str]) -> bytes:
    """The registry key of the layer at *root*."""
    wanted = os.path.realpath(root)
    keys = [k for k, r in registry(env).items() if r.get("root") == wanted]
    assert len(keys) == 1, f"{len(keys)} registry records for {wanted}"
    return keys[0]


def stack_records(env: IndexEnv) -> dict[bytes, dict[str, object]]:
    return {k: r for k, r in registry(env).items() if "layers" in r}


def tamper(env: IndexEnv, table: int, path: bytes, change: Callable[[codec.Record],
           codec.Record]) -> None:  # fmt: skip
    """Rewrite one record of *table* directly in LMDB."""
    key = codec.entry_key(table, path)
    with env.env.begin(write=True, db=env.entries) as txn:
        raw = txn.get(key)
        assert raw is not None, f"no record for {path!r} in table {table}"
        txn.put(key, codec.encode(change(codec.decode(bytes(raw)))))


def with_size(size: int) -> Callable[[codec.Record], codec.Record]:
    """A ``tamper`` change: the record with another st_size."""

    def change(record: codec.Record) -> codec.Record:
        return dataclasses.replace(record, attrs=record.attrs._replace(st_size=size))

    return change


# -- counting the expensive calls ----------------------------------------------------------


class Calls:
    """Records the layer roots that ``build.scan_layer`` / ``build.fingerprint`` were
    called on, while still calling the real functions."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scanned: list[str] = []
        self.fingerprinted: list[str] = []
        self.merged = 0
        scan, fingerprint, merged = build.scan_layer, build.fingerprint, build.merged_records

        def counted_scan(layer: DirLayer) -> build.LayerScan:
            self.scanned.append(os.path.realpath(layer.root))
            return scan(layer)

        def counted_fingerprint(layer: DirLayer) -> str:
            self.fingerprinted.append(os.path.realpath(layer.root))
            return fingerprint(layer)

        def counted_merged(layers):  # type: ignore[no-untyped-def]
            self.merged += 1
            return merged(layers)

        monkeypatch.setattr(build, "scan_layer", counted_scan)
        monkeypatch.setattr(build, "fingerprint", counted_fingerprint)
        monkeypatch.setattr(build, "merged_records", counted_merged)

    def reset(self) -> None:
        self.scanned.clear()
        self.fingerprinted.clear()
        self.merged = 0


def real(path: str | os.PathLike[str]) -> str:
    return os.path.realpath(path)


def tables_in_use(env: IndexEnv) -> dict[int, int]:
    """Entries per table as the registry records them."""
    return {
        int(r["table"]): int(r["entries"])  # type: ignore[call-overload]
        for r in registry(env).values()
        if "table" in r
    }


def tables_on_disk(env: IndexEnv) -> dict[int, int]:
    """Entries per table as the entries database holds them."""
    counts: dict[int, int] = {}
    with env.env.begin(db=env.entries) as txn:
        for key in txn.cursor().iternext(values=False):
            (table,) = codec.ID.unpack_from(bytes(key))
            counts[table] = counts.get(table, 0) + 1
    return counts
