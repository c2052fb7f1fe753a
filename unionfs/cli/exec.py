"""``unionfs exec C CMD...``: run another command in a running container."""

from __future__ import annotations

import argparse
import os

from unionfs.cli.run import add_stdio_flags
from unionfs.runtime import spec
from unionfs.runtime.enter import exec_in
from unionfs.runtime.state import default_home


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("exec", help="run a command in a running container",
                       description="Join a running container's namespaces and cgroups and "
                       "run CMD there, as its user, with its environment.")  # fmt: skip
    p.add_argument("--env", "-e", action="append", default=[], metavar="K=V")
    p.add_argument("--workdir", "-w", metavar="DIR")
    p.add_argument("--user", "-u", metavar="UID[:GID]")
    add_stdio_flags(p)
    p.add_argument("container", help="name or id")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD ARGS")


def run(args: argparse.Namespace) -> int:
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    env = spec.parse_env(args.env, os.environ)
    return exec_in(default_home(), args.container, command, env, args.workdir, args.user,
                   args.interactive, args.tty)  # fmt: skip
