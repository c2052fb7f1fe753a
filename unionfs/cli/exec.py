"""``unionfs exec C CMD...``: run another command in a running container."""

from __future__ import annotations

import argparse
import os

from unionfs.cli import imageconfig
from unionfs.cli.run import add_stdio_flags
from unionfs.runtime import spec
from unionfs.runtime.enter import exec_in
from unionfs.runtime.state import ContainerDirs, default_home


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("exec", help="run a command in a running container",
                       description="Join a running container's namespaces and cgroups and "
                       "run CMD there, as its user, with its environment.")  # fmt: skip
    p.add_argument("--env", "-e", action="append", default=[], metavar="K=V")
    p.add_argument("--workdir", "-w", metavar="DIR")
    p.add_argument("--user", "-u", metavar="USER[:GROUP]",
                   help="a name or number, looked up in the container's /etc/passwd and "
                   "/etc/group as they are now (its changes included)")  # fmt: skip
    add_stdio_flags(p)
    p.add_argument("container", help="name or id")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="CMD ARGS")


def run(args: argparse.Namespace) -> int:
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    env = spec.parse_env(args.env, os.environ)
    home = default_home()
    user, groups = (None, ()) if args.user is None else _user(home, args.container, args.user)
    return exec_in(home, args.container, command, env, args.workdir, user,
                   args.interactive, args.tty, groups)  # fmt: skip


def _user(home: str, ref: str, text: str) -> tuple[str, tuple[int, ...]]:
    """``-u`` as podman reads it: through the container's passwd and group files, its own
    changes (its upper) above its image's layers."""
    dirs = ContainerDirs(home)
    state = dirs.find(ref)
    layers = (dirs.paths(state.id).upper, *(state.lowers or (state.rootfs,)))
    found = imageconfig.resolve_user(text, layers, where="the container's")
    return f"{found.uid}:{found.gid}", found.groups
