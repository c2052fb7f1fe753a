"""``unionfs ps``: the containers of this UNIONFS_HOME, from their state directories, as
``podman ps`` lists them (running ones; ``-a`` all; any ``--filter`` implies ``-a``, as in
podman). ``--format``/``--noheading`` through ``report``; ``-q`` the ids.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable

from unionfs.cli import containerinfo, filters, report
from unionfs.cli.containerinfo import Images
from unionfs.errors import UserError
from unionfs.runtime.state import ContainerDirs, State, default_home

FILTERS = ("id", "name", "status", "label", "exited", "ancestor", "before", "since")
STATES = ("created", "running", "stopping", "exited", "unknown")
DEFAULT = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedHuman}}\t{{.Status}}\t"
           "{{.Ports}}\t{{.Names}}")  # fmt: skip
HEADERS = {"ID": "CONTAINER ID", "CreatedHuman": "CREATED", "RunningFor": "CREATED",
           "Names": "NAMES", "ImageID": "IMAGE ID"}  # fmt: skip


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ps", help="list containers",
                       description=__doc__)  # fmt: skip
    p.add_argument("-a", "--all", action="store_true", help="also those that are not running")
    p.add_argument("-q", "--quiet", action="store_true", help="only the ids")
    p.add_argument("--no-trunc", action="store_true", help="full ids and commands")
    p.add_argument("-l", "--latest", action="store_true", help="only the newest container")
    p.add_argument("-n", "--last", type=int, default=-1, metavar="N", help="only the N newest")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help=f"only containers that match: {', '.join(FILTERS)}")  # fmt: skip
    report.add_format_flags(p, what="container", noheading=False)
    p.add_argument("--noheading", action="store_true", help="print no header row")


def labels_of(dirs: ContainerDirs, state: State) -> dict[str, str]:
    saved = dirs.load_spec(state)
    return dict(saved.spec.labels) if saved is not None else {}


def selected(args: argparse.Namespace, states: list[State], images: Images,
             labels: Callable[[State], dict[str, str]] = lambda s: {}) -> list[State]:  # fmt: skip
    """The containers *args* ask for, oldest first (*labels*: a container's labels)."""
    wanted = filters.parse(args.filter, FILTERS, "ps")
    for value in wanted.get("status", ()):
        if value not in STATES:
            raise UserError(f"invalid filter status={value}: give one of {', '.join(STATES)}", 2)
    by_ref = {s.name: s for s in states} | {s.id: s for s in states}

    def created_of(ref: str, key: str) -> float:
        found = by_ref.get(ref) or next((s for s in states if s.id.startswith(ref)), None)
        if found is None:
            raise UserError(f"invalid filter {key}={ref}: no such container", exit_code=2)
        return found.created

    def test(state: State, key: str, value: str) -> bool:
        if key == "id":
            return state.id.startswith(value)
        if key == "name":
            return filters.regex(value, key).search(state.name) is not None
        if key == "status":
            return containerinfo.state_word(state) == value
        if key == "label":
            return filters.label(labels(state), value)
        if key == "exited":
            return containerinfo.state_word(state) == "exited" and str(state.exit_code) == value
        if key == "ancestor":
            names = images.names.get(state.image or "", ())
            pattern = filters.glob(value if ":" in value.rsplit("/", 1)[-1] else value + ":*")
            return any(pattern.fullmatch(n) or pattern.fullmatch(n.split("/", 1)[-1])
                       for n in names) or images.image_id(state).startswith(value)  # fmt: skip
        if key == "before":
            return state.created < created_of(value, key)
        return state.created > created_of(value, key)  # since

    def keep(state: State) -> bool:
        if not (args.all or wanted) and containerinfo.state_word(state) != "running":
            return False
        return filters.matches(wanted, functools.partial(test, state))

    found = [s for s in states if keep(s)]
    if args.latest:
        found = found[-1:]
    if args.last >= 0:
        found = found[len(found) - args.last :] if args.last else []
    return found


def run(args: argparse.Namespace) -> int:
    home = default_home()
    dirs = ContainerDirs(home)
    images = Images.at(home)
    found = selected(args, dirs.all(), images, functools.partial(labels_of, dirs))
    found.reverse()  # newest first, as podman
    if args.quiet:
        for state in found:
            print(state.id if args.no_trunc else state.short_id)
        return 0
    rows, values = [], []
    for state in found:
        saved = dirs.load_spec(state)
        ports = saved.spec.ports if saved is not None else ()
        labels = dict(saved.spec.labels) if saved is not None else {}
        row = containerinfo.ps_row(state, images, args.no_trunc, ports, labels)
        row["Mounted"] = os.path.ismount(dirs.paths(state.id).rootfs)
        rows.append(row)
        values.append(containerinfo.ps_json(state, images, ports, labels))
    listing = report.Listing(rows, values, DEFAULT, HEADERS, json_indent=2)
    report.show(listing, args)
    return 0
