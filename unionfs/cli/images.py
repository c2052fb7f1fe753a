"""``unionfs images [IMAGE]``: the store's images, newest first, a row per name, as ``podman
images`` lists them: SIZE is podman's (``store.sizes``) in its units; ``--format``,
``--noheading``, ``--filter`` (dangling, label, reference, id, digest, before, since,
containers), ``--sort``, ``--digests``, ``-q`` (each id once). When an image was pulled
lazily (``pull --lazy``), a PRESENT column says how much of its data is here.
"""

from __future__ import annotations

import argparse
import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass

from unionfs.cli import filters, humanize, report
from unionfs.cli.govalues import GoMap
from unionfs.cli.storecli import add_root, open_store
from unionfs.containers import lifecycle
from unionfs.errors import UserError
from unionfs.lazy import status as lazystatus
from unionfs.store import Image, ImageStore, sizes

FILTERS = ("dangling", "label", "reference", "id", "digest", "before", "since", "containers")
DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HEADERS = {"ID": "IMAGE ID", "Id": "IMAGE ID", "CreatedSince": "CREATED", "Created": "CREATED",
           "CreatedTime": "CREATED AT"}  # fmt: skip
SORT_KEYS = ("created", "id", "repository", "size", "tag")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("images", help="list images",
                       description=__doc__)  # fmt: skip
    p.add_argument("-a", "--all", action="store_true",
                   help="accepted as podman takes it (no intermediate images here)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="only the image ids, once each")
    p.add_argument("--digests", action="store_true", help="show manifest digests")
    p.add_argument("--no-trunc", action="store_true", help="full image ids")
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help=f"only images that match: {', '.join(FILTERS)}")  # fmt: skip
    p.add_argument("--sort", choices=SORT_KEYS, default="created", help="default: created")
    report.add_format_flags(p, what="image")
    p.add_argument("image", nargs="?", metavar="IMAGE",
                   help="only the images this names (as --filter reference=IMAGE)")  # fmt: skip
    add_root(p)


@dataclass(frozen=True, slots=True)
class ImageView:
    image: Image
    size: int
    containers: int
    config: dict[str, object]
    present: tuple[int, int, bool] | None = None  # lazy: (bytes here, in all, refused?)

    @property
    def labels(self) -> dict[str, str]:
        found = self.config.get("config")
        labels = found.get("Labels") if isinstance(found, dict) else None
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def views(store: ImageStore) -> list[ImageView]:
    """Every image with what the listings show of it."""
    used: dict[str, int] = {}
    for use in lifecycle.uses(store):
        if use.image is not None:
            used[use.image] = used.get(use.image, 0) + 1
    return [ImageView(image, sizes.image_size(store, image), used.get(image.digest, 0),
                      store.config(image), lazystatus.presence(store, image))
            for image in store.images()]  # fmt: skip


def _json(view: ImageView) -> dict[str, object]:
    """One image as ``podman images --format json`` shows it."""
    record = view.image.record
    created = humanize.parse_time(record.created)
    repos = sorted({n.rsplit(":", 1)[0] for n in view.image.names})
    return {
        "Id": record.id, "ParentId": "", "RepoTags": list(view.image.names),
        "RepoDigests": [f"{r}@{record.manifest}" for r in repos], "Size": view.size,
        "SharedSize": 0, "VirtualSize": view.size, "Labels": view.labels or None,
        "Containers": view.containers, "Names": list(view.image.names),
        "Digest": record.manifest, "History": list(view.image.names),
        "Created": int(created.timestamp()) if created else 0,
        "CreatedAt": humanize.rfc3339(created),
    } | ({} if view.present is None else {"Present": lazystatus.percent(view.present)})  # fmt: skip


def _rows(view: ImageView, no_trunc: bool) -> list[dict[str, object]]:
    """The template fields of each name of an image (podman's imageReporter)."""
    record = view.image.record
    created = humanize.parse_time(record.created)
    since = humanize.ago(created)
    base = _json(view) | {
        "ID": f"sha256:{record.id}" if no_trunc else record.id[:12],
        "Created": since, "CreatedSince": since, "CreatedAt": humanize.go_time(created),
        "CreatedTime": humanize.go_time(created), "Size": humanize.image_size(view.size),
        "Labels": GoMap(view.labels), "Dangling": not view.image.names, "ReadOnly": False,
        "History": ", ".join(view.image.names),
        "Present": "100%" if view.present is None else lazystatus.percent(view.present),
    }  # fmt: skip
    rows = []
    for name in view.image.names or ("<none>:<none>",):
        repo, tag = name.rsplit(":", 1)
        rows.append(base | {"Repository": repo, "Tag": tag})
    return rows


def _matcher(store: ImageStore, found: list[ImageView],
             wanted: dict[str, list[str]]) -> Callable[[ImageView], bool]:  # fmt: skip
    epoch = datetime.datetime.fromtimestamp(0, datetime.UTC)
    created = {v.image.digest: humanize.parse_time(v.image.record.created) or epoch
               for v in found}  # fmt: skip

    def when(ref: str, key: str) -> datetime.datetime:
        try:
            return created[store.resolve(ref).digest]
        except UserError:
            raise UserError(f"invalid filter {key}={ref}: no such image", exit_code=2) from None

    def test(view: ImageView, key: str, value: str) -> bool:
        record = view.image.record
        if key == "dangling":
            return filters.boolean(value, key) == (not view.image.names)
        if key == "label":
            return filters.label(view.labels, value)
        if key == "reference":
            pattern = filters.glob(value)
            return any(pattern.fullmatch(c) for n in view.image.names for c in _reference_forms(n))
        if key == "id":
            return record.id.startswith(value.removeprefix("sha256:"))
        if key == "digest":
            return record.manifest == value or record.manifest.startswith(value)
        if key == "containers":
            return filters.boolean(value, key) == (view.containers > 0)
        if key == "before":
            return created[view.image.digest] < when(value, key)
        return created[view.image.digest] > when(value, key)  # since

    return lambda view: filters.matches(wanted, functools.partial(test, view))


def _reference_forms(name: str) -> list[str]:
    """What ``reference=PATTERN`` is matched against: the full name, without its tag, and the
    short forms (without the registry; without ``library/`` for Docker Hub)."""
    repo, _, tag = name.rpartition(":")
    forms = [name, repo]
    host, slash, path = repo.partition("/")
    if slash:
        short = path.removeprefix("library/") if host == "docker.io" else path
        forms += [f"{short}:{tag}", short, f"{path}:{tag}", path]
    return forms


def run(args: argparse.Namespace) -> int:
    given = [*args.filter, *([f"reference={args.image}"] if args.image else [])]
    wanted = filters.parse(given, FILTERS, "images")
    with open_store(args) as store:
        found = views(store)
        keep = _matcher(store, found, wanted)
        found = [v for v in found if keep(v)]
    found.sort(key=lambda v: humanize.parse_time(v.image.record.created)
               or datetime.datetime.fromtimestamp(0, datetime.UTC), reverse=True)  # fmt: skip
    if args.quiet:
        for view in found:
            print(f"sha256:{view.image.record.id}" if args.no_trunc else view.image.record.id[:12])
        return 0
    rows = [row for view in found for row in _rows(view, args.no_trunc)]
    if args.sort != "created":
        key = {"id": "ID", "repository": "Repository", "tag": "Tag", "size": "VirtualSize"}
        rows.sort(key=lambda r: str(r[key[args.sort]]).zfill(20) if args.sort == "size"
                  else str(r[key[args.sort]]), reverse=args.sort == "size")  # fmt: skip
    table = DIGESTS if args.digests else DEFAULT
    if any(v.present is not None for v in found):
        table += "\t{{.Present}}"  # lazily pulled images: how much of each is here
    listing = report.Listing(rows, [_json(v) for v in found], table, HEADERS)
    report.show(listing, args)
    return 0
