"""``unionfs system df [-v]``: the space images, containers and volumes take and what pruning
would free, as ``podman system df`` shows it (``1.998MB``). Images: each layer once, with
configs and manifests; active ones have a container; reclaimable is what only inactive
ones hold. Containers: their uppers' files; active ones run. Volumes: their data; active
ones are bound by a container, reclaimable is what the others hold.
"""

from __future__ import annotations

import argparse

from unionfs.cli import containerinfo, humanize, report
from unionfs.cli.containerinfo import Images
from unionfs.cli.storecli import add_root, open_store
from unionfs.containers import lifecycle
from unionfs.containers.volumes import Volumes
from unionfs.runtime.state import ContainerDirs, State, default_home
from unionfs.store import sizes

DEFAULT = "table {{.Type}}\t{{.Total}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("system-df", help="show the space images and containers take",
                       description=__doc__)  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true", help="one line per image and container")
    p.add_argument("--format", metavar="FORMAT",
                   help="json, or a Go template of {{.Type}} {{.Total}} {{.Active}} {{.Size}} "
                   "{{.Reclaimable}} {{.RawSize}} {{.RawReclaimable}}")  # fmt: skip
    add_root(p)


def _percent(part: int, whole: int) -> str:
    return f"{humanize.size(part)} ({round(100 * part / whole) if whole else 0}%)"


def run(args: argparse.Namespace) -> int:
    home = getattr(args, "root", None) or default_home()
    dirs = ContainerDirs(home)
    states = dirs.all()
    with open_store(args) as store:
        images = store.images()
        used = {u.image for u in lifecycle.uses(store)}
        layer_size = {d: sizes.layer_size(store, d) for i in images for d in i.record.diff_ids}
        extra = {i.digest: sizes.image_size(store, i)
                 - sum(layer_size[d] for d in i.record.diff_ids) for i in images}  # fmt: skip
        active_layers = {d for i in images if i.digest in used for d in i.record.diff_ids}
        total = sum(layer_size.values()) + sum(extra.values())
        reclaim = sum(n for d, n in layer_size.items() if d not in active_layers) + \
            sum(extra[i.digest] for i in images if i.digest not in used)  # fmt: skip
        names = Images.of(store.meta)
        image_rows = [(i, sizes.image_size(store, i), sizes.unique_size(store, i, images))
                      for i in images]  # fmt: skip
    uppers = {s.id: sizes.tree_size(dirs.paths(s.id).upper) for s in states}
    running = [s for s in states if containerinfo.state_word(s) == "running"]
    c_total = sum(uppers.values())
    c_reclaim = c_total - sum(uppers[s.id] for s in running)
    volumes = Volumes(home)
    volume_rows = [(v, len(volumes.users(v)), sizes.tree_size(v.mountpoint)) for v in volumes.all()]
    v_total = sum(size for _v, _links, size in volume_rows)
    v_reclaim = sum(size for _v, links, size in volume_rows if not links)
    bound = {v.mountpoint for v, _links, _size in volume_rows}
    summary = [
        ("Images", len(images), len([i for i in images if i.digest in used]), total, reclaim),
        ("Containers", len(states), len(running), c_total, c_reclaim),
        ("Local Volumes", len(volume_rows), len([1 for _v, links, _s in volume_rows if links]),
         v_total, v_reclaim),
    ]
    rows = [{"Type": t, "Total": n, "Active": a, "Size": humanize.size(size),
             "Reclaimable": _percent(free, size), "RawSize": size, "RawReclaimable": free}
            for t, n, a, size, free in summary]  # fmt: skip
    json_rows = [{k: r[k] for k in ("Type", "Total", "Active", "RawSize", "RawReclaimable")}
                 | {"Size": r["Size"], "Reclaimable": r["Reclaimable"]} for r in rows]  # fmt: skip
    if not args.verbose or args.format:
        report.show(report.Listing(rows, json_rows, DEFAULT), args)
        return 0
    print("Images space usage:\n")
    image_view = [{"Repository": (i.names[0].rsplit(":", 1)[0] if i.names else "<none>"),
                   "Tag": (i.names[0].rsplit(":", 1)[1] if i.names else "<none>"),
                   "ID": i.record.id[:12], "Created": humanize.duration(
                       _age(i.record.created)), "Size": humanize.size(size),
                   "SharedSize": humanize.size(size - unique), "UniqueSize": humanize.size(unique),
                   "Containers": sum(1 for s in states if s.image == i.digest)}
                  for i, size, unique in image_rows]  # fmt: skip
    report.show(report.Listing(image_view, None, "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
                               "{{.Created}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t"
                               "{{.Containers}}", {"ID": "IMAGE ID"}), args)  # fmt: skip
    print("\nContainers space usage:\n")
    container_view = [{"ID": s.short_id, "Image": names.name(s),
                       "Command": " ".join(s.command),
                       "LocalVolumes": _volumes_of(dirs, s, bound),
                       "Size": humanize.size(uppers[s.id]),
                       "Created": humanize.duration(_age_seconds(s.created)),
                       "Status": containerinfo.state_word(s), "Names": s.name}
                      for s in states]  # fmt: skip
    report.show(report.Listing(container_view, None, "table {{.ID}}\t{{.Image}}\t{{.Command}}\t"
                               "{{.LocalVolumes}}\t{{.Size}}\t{{.Created}}\t{{.Status}}\t"
                               "{{.Names}}", {"ID": "CONTAINER ID"}), args)  # fmt: skip
    print("\nLocal Volumes space usage:\n")
    volume_view = [{"VolumeName": v.name, "Links": links, "Size": humanize.size(size)}
                   for v, links, size in volume_rows]  # fmt: skip
    report.show(report.Listing(volume_view, None, "table {{.VolumeName}}\t{{.Links}}\t{{.Size}}",
                               {"VolumeName": "VOLUME NAME"}), args)  # fmt: skip
    return 0


def _volumes_of(dirs: ContainerDirs, state: State, bound: set[str]) -> int:
    saved = dirs.load_spec(state)
    if saved is None:
        return 0
    return len({m.source for m in saved.spec.mounts if m.type == "bind" and m.source in bound})


def _age(created: str) -> float:
    import datetime

    when = humanize.parse_time(created)
    return 0.0 if when is None else (datetime.datetime.now(datetime.UTC) - when).total_seconds()


def _age_seconds(created: float) -> float:
    import time

    return time.time() - created
