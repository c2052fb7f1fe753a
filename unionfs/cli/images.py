"""``unionfs images``: the images of the store, newest first."""

from __future__ import annotations

import argparse

from unionfs.cli.storecli import add_root, ago, human_size, open_store, table


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("images", help="list images")
    p.add_argument("-q", "--quiet", action="store_true", help="only the image ids")
    p.add_argument("--digests", action="store_true", help="show manifest digests")
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        images = sorted(store.images(), key=lambda i: i.record.created, reverse=True)
    if args.quiet:
        for image in images:
            print(image.record.id[:12])
        return 0
    header = ("REPOSITORY", "TAG", *(("DIGEST",) if args.digests else ()), "IMAGE ID",
              "CREATED", "SIZE")  # fmt: skip
    rows = [header]
    for image in images:
        for name in image.names or ("<none>:<none>",):
            repo, tag = name.rsplit(":", 1)
            digest = (image.digest[:19],) if args.digests else ()
            rows.append((repo, tag, *digest, image.record.id[:12], ago(image.record.created),
                         human_size(image.record.size)))  # fmt: skip
    table(rows)
    return 0
