"""How a mount gets its lower layers: through the index when it can, directly otherwise.

The index is checked or built by ``prepare`` in the process that runs ``unionfs mount``
(so a failure is reported there) and opened again, without a second check, by ``lowers``
in the daemon: an LMDB environment must not cross a fork. Whenever the index cannot be
used (a full disk, an unwritable cache directory) the mount serves the directories
directly and says so in one line: slower, never wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lmdb

from unionfs.index import build
from unionfs.index.env import IndexEnv, IndexUnavailable, default_dir
from unionfs.safepath import DirFdCache
from unionfs.union.stack import DirLayer, Layer

log = logging.getLogger("unionfs.index")


def location(indexdir: str | None) -> str | None:
    """The index directory for a mount option value; None when the index is off."""
    if indexdir == "off":
        return None
    return indexdir or default_dir()


def prepare(indexdir: str | None, lower_paths: Sequence[str], check: bool = True) -> str | None:
    """Check or build the index of *lower_paths*; the place to use, or None (with a
    warning in the log) when it cannot be used. Without *check* (sealed layers) a layer
    indexed before is trusted as it was: no walk, only what is missing is built."""
    where = location(indexdir)
    if where is None:
        return None
    cache = DirFdCache(64)
    layers = [DirLayer(p, cache, lower=True) for p in lower_paths]
    try:
        env = IndexEnv(where)
        try:
            build.open_lowers(env, layers, check)
        finally:
            env.close()
    except (IndexUnavailable, OSError, lmdb.Error) as exc:
        log.warning("the index cannot be used (%s): serving the layers directly", exc)
        return None
    finally:
        for layer in layers:
            layer.close()
        cache.close()
    return where


def lowers(where: str | None, lower_paths: Sequence[str], cache: DirFdCache) -> list[Layer]:
    """The lower layers for a stack: one indexed view, or the directories themselves."""
    layers = [DirLayer(p, cache, lower=True) for p in lower_paths]
    if where is None:
        return list(layers)
    try:
        return [build.open_lowers(IndexEnv(where), layers, check=False)]
    except (IndexUnavailable, OSError, lmdb.Error) as exc:
        log.warning("the index cannot be used (%s): serving the layers directly", exc)
        return list(layers)
