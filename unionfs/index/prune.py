"""Pruning an index of what no mount can use any more: the tables of layer directories that
are gone or replaced (another directory at the same path is another layer), the tables a
changed layer superseded, and the stacks built on them; the roots live mounts serve are
kept. Stacks of layers that still exist are kept too: a later mount of the same stack
reuses them. ``system prune`` runs it.
"""

from __future__ import annotations

import os

import lmdb

from unionfs.index import build
from unionfs.index.env import IndexEnv, IndexUnavailable
from unionfs.safepath import DirFdCache
from unionfs.union.stack import DirLayer


def _current_key(root: str, cache: DirFdCache) -> bytes | None:
    """The registry key the directory now at *root* has, or None when there is none."""
    if not os.path.isdir(root):
        return None
    try:
        layer = DirLayer(root, cache, lower=True)
    except OSError:
        return None
    try:
        return build._identity(layer)  # the index's own rule for a layer's identity
    finally:
        layer.close()


def prune(path: str, in_use: frozenset[str] = frozenset()) -> int:
    """Drop the stale layer tables of the index at *path* and the stacks on them (not those
    of the layer roots *in_use* by live mounts, even if their directories are gone); how
    many layer records were dropped. An index that does not exist is left alone (0)."""
    if not os.path.isfile(os.path.join(path, "data.mdb")):
        return 0
    try:
        env = IndexEnv(path)
    except IndexUnavailable:
        return 0
    cache = DirFdCache(16)
    try:
        with env.read() as txn:
            keys = [bytes(k) for k, _v in txn.cursor(db=env.meta) if bytes(k).startswith(b"L")]
            records = [(key, env.get_record(txn, key)) for key in keys]
        stale = [(key, rec) for key, rec in records if rec is None or (
            rec.get("root") not in in_use and _current_key(str(rec.get("root")), cache) != key)]
        with env.write() as txn:
            for key, rec in stale:
                if rec is not None and "table" in rec:
                    build._drop_layer_table(env, txn, int(rec["table"]))
                txn.delete(key, db=env.meta)
            retired = build.drop_retired(env, txn, keep=in_use)
        env.sync()
        return len(stale) + retired
    except lmdb.Error as exc:
        raise IndexUnavailable(f"cannot prune the index at {path}: {exc}") from None
    finally:
        cache.close()
        env.close()
