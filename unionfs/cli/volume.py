"""``unionfs volume create|ls|inspect|rm|prune``: named volumes as podman shows them
(``containers.volumes`` keeps them). One module for the group's verbs: each is small, and
they share their printing; ``verbs.GROUPS`` names each with its ``action`` default."""

from __future__ import annotations

import argparse
import datetime

from unionfs.cli import report
from unionfs.cli.govalues import GoMap
from unionfs.containers.volumes import Volume, Volumes
from unionfs.errors import UserError
from unionfs.runtime.state import ContainerDirs, default_home

DEFAULT = "table {{.Driver}}\t{{.Name}}"
HEADERS = {"Name": "VOLUME NAME"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # The group gives the verb's name; its flags are those of all the group's verbs,
    # checked against the verb in ``run`` (argparse cannot tell the group's verbs apart).
    p = sub.add_parser("volume", help="manage named volumes", description=__doc__)
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-f", "--force", action="store_true",
                   help="rm: also remove the containers using it; prune: do not ask")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="ls: only the names")
    p.add_argument("-l", "--label", action="append", default=[], metavar="K=V",
                   help="create: a label of the volume")  # fmt: skip
    report.add_format_flags(p, what="volume", noheading=False)


def _json(volume: Volume) -> dict[str, object]:
    """As podman's ``volume inspect`` (its CreatedAt to the microsecond we keep)."""
    created = datetime.datetime.fromtimestamp(volume.created, datetime.UTC)
    return {"Name": volume.name, "Driver": "local", "Mountpoint": volume.mountpoint,
            "CreatedAt": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "Labels": GoMap(volume.labels), "Scope": "local", "Options": GoMap(),
            "MountCount": 0, "NeedsCopyUp": True, "NeedsChown": True}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    home = default_home()
    volumes = Volumes(home)
    action = args.action
    if action == "create":
        if len(args.names) > 1:
            raise UserError("volume create: give one NAME (or none for a random one)", 2)
        labels = dict(label.partition("=")[::2] for label in args.label)
        print(volumes.create(args.names[0] if args.names else None, labels).name)
        return 0
    if action == "ls":
        found = volumes.all()
        if args.quiet:
            for volume in found:
                print(volume.name)
            return 0
        values = [_json(v) for v in found]
        report.show(report.Listing(values, values, DEFAULT, HEADERS, json_indent=2), args)
        return 0
    if action == "inspect":
        if not args.names:
            raise UserError("volume inspect: give NAME...", exit_code=2)
        values = [_json(volumes.get(n)) for n in args.names]
        if args.format is None:  # podman's inspect: indented by 5
            args.format = "json"
        report.show(report.Listing(values, values, "", json_indent=5), args)
        return 0
    if action == "prune":
        names = [v.name for v in volumes.all() if not volumes.users(v)]
    else:
        if not args.names:
            raise UserError("volume rm: give NAME...", exit_code=2)
        names = args.names
    for name in names:
        volume = volumes.get(name)
        users = volumes.users(volume)
        if users and not args.force:
            raise UserError(f"volume {name} is used by container {users[0].name}: unionfs "
                            f"rm {users[0].name} first (or volume rm -f removes both)")  # fmt: skip
        from unionfs.cli import rm

        for state in users:
            rm.remove(ContainerDirs(home), state, force=True)
        volumes.remove(volume)
        print(name, flush=True)
    return 0
