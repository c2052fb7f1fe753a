"""A container's upper with redirect or metacopy records, spelled out for commit and diff.

With ``redirect_dir=on`` (the mount's default) a renamed directory is an upper directory
whose ``overlay.redirect`` says where its contents are below; with ``metacopy=on`` a file
whose owner or mode changed holds no data in the upper. An OCI layer and ``docker diff``
need what the records stand for instead. ``spelled_out(upper, lowers)`` yields the upper
itself when it holds neither record (the common case, one walk of its xattrs), else a
temporary directory beside it (``scratch``) holding what ``union.flatten`` says they stand for, with
``.wh.`` markers, which ``write_layer`` and ``changes`` read like any upper. The lowers
and the upper are only read.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence

from unionfs import layerfmt
from unionfs.safepath import DirFdCache, LayerDir, join
from unionfs.store import scratch
from unionfs.union.copybuild import build_entry, copy_metadata
from unionfs.union.flatten import flatten
from unionfs.union.stack import Features, Layer, Stack


def _records(userxattr: bool) -> frozenset[bytes]:
    return frozenset(
        prefix + name
        for prefix in layerfmt.private_prefixes(userxattr)
        for name in (b"redirect", b"metacopy")
    )


def has_records(upper: str, userxattr: bool = False) -> bool:
    """Whether any directory or regular file of *upper* carries a redirect or metacopy
    (with *userxattr*, as ``user.overlay.*``: ``trusted.overlay.*`` names are data)."""
    records = _records(userxattr)
    cache = DirFdCache(64)
    layer = LayerDir(upper, cache)
    try:
        pending = [b""]
        while pending:
            directory = pending.pop()
            for name, st in layer.scandir(directory):
                path = join(directory, name)
                if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                    continue
                if records.intersection(layer.listxattr(path)):
                    return True
                if stat.S_ISDIR(st.st_mode):
                    pending.append(path)
        return False
    finally:
        layer.close()
        cache.close()


@contextlib.contextmanager
def spelled_out(upper: str, lowers: Sequence[str], userxattr: bool = False) -> Iterator[str]:
    """*upper*, or a temporary spelled-out copy of it while the context lasts. *userxattr*:
    *upper* was written by a mount with that option (read its records and markers so)."""
    if not has_records(upper, userxattr):
        yield upper
        return
    with scratch.temp_dir(os.path.dirname(upper), 0o700) as where:
        os.mkdir(os.path.join(where, "work"))
        out = os.path.join(where, "upper")
        os.mkdir(out)
        _write(upper, lowers, os.path.join(where, "work"), out, userxattr)
        yield out


def _write(upper: str, lowers: Sequence[str], work: str, out: str, userxattr: bool) -> None:
    # Redirects followed and metacopy read; no index=on: the upper as it is (see flatten).
    features = Features("follow", metacopy=True, userxattr=userxattr)
    stack = Stack.from_dirs(lowers, upper, work, features=features)
    cache = DirFdCache(64)
    dest = LayerDir(out, cache)
    try:
        layers: dict[str, Layer] = {layer.root: layer for layer in stack.layers}
        root_st = stack.layers[0].lstat(b"")
        assert root_st is not None
        copy_metadata(stack.layers[0], b"", root_st, dest, b"", stack.private)
        dirs = [(b"", stack.layers[0], b"")]
        for change in flatten(stack):
            parent, name = os.path.split(change.path)
            if change.kind == "whiteout":
                os.close(dest.create(join(parent, layerfmt.WHITEOUT_PREFIX + name),
                                     os.O_WRONLY, 0o600))  # fmt: skip
                continue
            assert change.meta is not None
            meta_layer, meta_path = layers[change.meta[0]], change.meta[1]
            st = meta_layer.lstat(meta_path)
            assert st is not None
            src, src_path = meta_layer, meta_path
            if change.data is not None:
                src, src_path = layers[change.data[0]], change.data[1]
            build_entry(src, src_path, st, dest, change.path, data=True)
            copy_metadata(meta_layer, meta_path, st, dest, change.path, stack.private)
            if change.kind == "dir":
                dirs.append((change.path, meta_layer, meta_path))
                if change.opaque:
                    os.close(dest.create(join(change.path, layerfmt.OPAQUE_MARKER),
                                         os.O_WRONLY, 0o600))  # fmt: skip
        for path, layer, from_path in reversed(dirs):  # children changed their times
            st = layer.lstat(from_path)
            assert st is not None
            dest.utime(path, (st.st_atime_ns, st.st_mtime_ns))
    finally:
        dest.close()
        cache.close()
        stack.close()
