"""``unionfs ps [-a]``: the containers of this UNIONFS_HOME, from their state directories."""

from __future__ import annotations

import argparse
import shlex

from unionfs.runtime.state import ContainerDirs, default_home, describe, is_alive


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ps", help="list containers")
    p.add_argument("-a", "--all", action="store_true", help="also those that have exited")
    p.add_argument("-q", "--quiet", action="store_true", help="only the ids")


def run(args: argparse.Namespace) -> int:
    rows = []
    for state in ContainerDirs(default_home()).all():
        status = describe(state)
        if not args.all and status != "running":
            continue
        if args.quiet:
            print(state.short_id)
            continue
        command = shlex.join(state.command)
        command = command if len(command) <= 40 else command[:37] + "..."
        pid = str(state.pid) if state.pid is not None and is_alive(state) else "-"
        rows.append((state.short_id, state.name, pid, status, command))
    if not args.quiet:
        header = ("CONTAINER ID", "NAME", "PID", "STATUS", "COMMAND")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        for row in [header, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[4])
    return 0
