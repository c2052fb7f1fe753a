"""``unionfs index verify|rebuild|path``: look after the index of a lower stack.

``verify`` recomputes the merged view from the layer directories by the union rules and
compares it with the index (exit 1 and one line per difference when they disagree);
``rebuild`` forgets what the index holds for the layers and indexes them again; ``path``
prints where the index lives.
"""

from __future__ import annotations

import argparse
import sys

from unionfs import mountopts
from unionfs.errors import UserError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("index", help="verify or rebuild the index of a stack of layers")
    p.add_argument("action", choices=("verify", "rebuild", "path"))
    p.add_argument("-o", dest="options", action="append", default=[], metavar="OPTS",
                   help="lowerdir=L1:L2[,indexdir=DIR] as for mount")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from unionfs.cli.mount import check_lowers
    from unionfs.index import build, verify
    from unionfs.index.env import IndexEnv, IndexUnavailable
    from unionfs.index.mounting import location
    from unionfs.safepath import DirFdCache
    from unionfs.union.stack import DirLayer

    if args.action == "path":
        where = location(_indexdir(args.options))
        print(where or "off")
        return 0
    opts = mountopts.parse(args.options)
    where = location(opts.indexdir)
    if where is None:
        raise UserError("indexdir=off: there is no index to look after")
    cache = DirFdCache(64)
    layers = [DirLayer(p, cache, lower=True) for p in check_lowers(opts)]
    try:
        env = IndexEnv(where)
        try:
            if args.action == "rebuild":
                build.rebuild(env, layers)
                print(f"reindexed {len(layers)} layer(s) in {where}")
                return 0
            problems = verify.verify(build.open_lowers(env, layers), layers)
        finally:
            env.close()
    except IndexUnavailable as exc:
        raise UserError(str(exc)) from None
    finally:
        for layer in layers:
            layer.close()
        cache.close()
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"unionfs: the index disagrees with the layers in {len(problems)} place(s)",
              file=sys.stderr)  # fmt: skip
        return 1
    print("the index matches the layers")
    return 0


def _indexdir(options: list[str]) -> str | None:
    for text in options:
        for item in mountopts.split_options(text):
            key, _, value = item.partition("=")
            if key == "indexdir":
                return value
    return None
