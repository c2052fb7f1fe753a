"""``unionfs logout REGISTRY`` (or ``-a``): forget the credentials ``login`` kept."""

from __future__ import annotations

import argparse

from unionfs.errors import UserError
from unionfs.registry import authfile


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logout", help="forget the credentials kept for a registry")
    p.add_argument("registry", metavar="REGISTRY", nargs="?", help="host[:port]")
    p.add_argument("-a", "--all", action="store_true", help="forget every registry's")
    p.add_argument("--authfile", metavar="FILE", help="the file login wrote to")


def run(args: argparse.Namespace) -> int:
    path = authfile.write_path(args.authfile)
    if args.all:
        authfile.remove(path, None)
        print("Removed login credentials for all registries")
        return 0
    if args.registry is None:
        raise UserError("give REGISTRY, or -a for all of them (see --help)", exit_code=2)
    server = authfile.key_for(args.registry)
    if not authfile.remove(path, server):
        raise UserError(f"not logged into {server}")
    print(f"Removed login credentials for {server}")
    return 0
