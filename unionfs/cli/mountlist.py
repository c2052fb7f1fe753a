"""``unionfs mount`` with no arguments: what is mounted, as ``podman mount`` lists it (the
mounted containers: id and mount point), and with the mounts made by hand too, each with its
layers (lower dirs, topmost first, and the upper): from the containers' state, and for the
others from the daemons' records (``livemounts.live``); a mount with no record shows ``?``.
"""

from __future__ import annotations

import argparse

from unionfs import livemounts
from unionfs.cli import report
from unionfs.cli.containerinfo import Images
from unionfs.runtime.state import ContainerDirs, default_home

DEFAULT = "table {{.ID}}\t{{.Names}}\t{{.Mountpoint}}\t{{.Layers}}"
HEADERS = {"ID": "CONTAINER ID", "Mountpoint": "MOUNTPOINT", "LowerDir": "LOWER DIRS"}
SHOWN = 60  # characters of the layer list shown in the table without --notruncate


def rows(no_trunc: bool) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(template rows, JSON objects) of every unionfs mount this process sees."""
    home = default_home()
    dirs = ContainerDirs(home)
    images = Images.at(home)
    containers = {}
    for state in dirs.all():
        paths = dirs.paths(state.id)
        containers[paths.rootfs] = (state, paths)
    records = livemounts.live()
    found: list[dict[str, object]] = []
    shown: list[dict[str, object]] = []
    for point, source in livemounts.unionfs_mounts():
        if point in containers:
            state, paths = containers.pop(point)
            lowers = list(state.lowers or (state.rootfs,))
            upper: str | None = paths.upper
            work: str | None = paths.work
            cid, names, image = state.id, [state.name], images.name(state)
        else:
            record = records.get(point)
            lowers = list(record.lowers) if record is not None else []
            upper = record.upper if record is not None else None
            work = record.work if record is not None else None
            cid, names, image = "", [], ""
        found.append({"id": cid, "Names": names, "mountpoint": point, "source": source,
                      "lowerdir": lowers, "upperdir": upper, "workdir": work,
                      "image": image})  # fmt: skip
        layers = ":".join(lowers) if lowers else "?"
        if upper:
            layers += f" (upper {upper})"
        if not no_trunc and len(layers) > SHOWN:
            layers = layers[: SHOWN - 3] + "..."
        shown.append({"ID": (cid if no_trunc else cid[:12]) or "-",
                      "Names": ",".join(names) or "-",
                      "Mountpoint": point, "Layers": layers, "LowerDir": ":".join(lowers),
                      "UpperDir": upper or "", "WorkDir": work or "", "Image": image,
                      "Source": source, "Lowers": lowers})  # fmt: skip
    return shown, found


def run(args: argparse.Namespace) -> int:
    shown, found = rows(args.notruncate)
    report.show(report.Listing(shown, found, DEFAULT, HEADERS, json_indent=1), args)
    return 0


def is_listing(args: argparse.Namespace) -> bool:
    return args.mountpoint is None and not args.options and getattr(args, "source", None) is None

