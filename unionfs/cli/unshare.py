"""``unionfs unshare [CMD...]``: CMD (default: your shell) inside the user namespace that
an ordinary user's store commands use (you are root there, your subordinate ids follow),
as ``podman unshare``. There the store's files show their container owners, and
``unionfs mount C`` mounts inside the namespace, so writes keep every owner; the mount is
seen only from inside. As root, CMD simply runs."""

from __future__ import annotations

import argparse
import os

from unionfs.containers import userstore
from unionfs.errors import UserError
from unionfs.runtime.state import default_home


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("unshare", help="run a command in the user namespace of your store",
                       description=__doc__)  # fmt: skip
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD")


def run(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        argv = [os.environ.get("SHELL") or "/bin/sh"]
    userstore.enter(default_home())
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise UserError(f"cannot run {argv[0]}: {exc.strerror}") from None
