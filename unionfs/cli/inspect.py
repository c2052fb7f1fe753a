"""``unionfs inspect [--type image|container] NAME...``: images and containers as JSON, the
fields and shape of ``podman inspect``, or each through ``--format TEMPLATE``.

A name is looked for among containers first, then images (``--type`` says which only);
one that is neither is an error after the others are shown, as podman does.
"""

from __future__ import annotations

import argparse
import json
import sys

from unionfs.cli import containerinfo, gotemplate, humanize, report
from unionfs.cli.containerinfo import Dirs, Images
from unionfs.cli.storecli import add_root, open_store
from unionfs.errors import UserError
from unionfs.runtime.state import ContainerDirs, default_home
from unionfs.store import Image, ImageStore, sizes


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("inspect", help="show images' and containers' details as JSON")
    p.add_argument("names", nargs="+", metavar="NAME", help="an image or container")
    p.add_argument("-t", "--type", choices=("image", "container", "all"), default="all",
                   help="look for images or containers only (default: both)")  # fmt: skip
    p.add_argument("-f", "--format", metavar="FORMAT",
                   help="json (default) or a Go template per object: {{.Id}}, "
                   "{{.Config.Cmd}}, {{json .RootFS}}...")  # fmt: skip
    add_root(p)


def image_json(store: ImageStore, image: Image) -> dict[str, object]:
    """An image as ``podman image inspect`` shows it, plus its layer blobs and directories."""
    config = store.config(image)
    record = image.record
    repos = sorted({n.rsplit(":", 1)[0] for n in image.names})
    size = sizes.image_size(store, image)
    settings = config.get("config") if isinstance(config.get("config"), dict) else {}
    created = humanize.parse_time(config.get("created"))
    manifest = json.loads(store.blobs.read(image.digest))
    return {
        "Id": record.id, "Digest": record.manifest, "RepoTags": list(image.names),
        "RepoDigests": [f"{r}@{record.manifest}" for r in repos], "Parent": "",
        "Comment": _last_comment(config), "Created": config.get("created")
        if created is None else created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "Config": settings, "Version": "", "Author": config.get("author", ""),
        "Architecture": config.get("architecture"), "Os": config.get("os"), "Size": size,
        "VirtualSize": size, "GraphDriver": {"Name": "unionfs", "Data": {
            "LowerDir": ":".join(store.lowers(image))}},
        "RootFS": {"Type": "layers", "Layers": list(record.diff_ids)},
        "Labels": (settings or {}).get("Labels"), "Annotations": manifest.get("annotations", {}),
        "ManifestType": manifest.get("mediaType", ""), "User": (settings or {}).get("User", ""),
        "History": config.get("history", []), "NamesHistory": list(image.names),
        "Layers": list(record.blobs), "LayerDirs": store.lowers(image),
    }  # fmt: skip


def _last_comment(config: dict[str, object]) -> str:
    history = config.get("history")
    if isinstance(history, list) and history and isinstance(history[-1], dict):
        return str(history[-1].get("comment", ""))
    return ""


def run(args: argparse.Namespace) -> int:
    home = getattr(args, "root", None) or default_home()
    dirs = ContainerDirs(home)
    found: list[dict[str, object]] = []
    missing: list[str] = []
    with open_store(args) as store:
        images = Images.of(store.meta)
        for name in args.names:
            value = None
            if args.type in ("container", "all"):
                value = _container(dirs, images, name)
            if value is None and args.type in ("image", "all"):
                try:
                    value = image_json(store, store.resolve(name))
                except UserError as exc:
                    if args.type == "image" and not exc.message.startswith("no such image"):
                        raise
            if value is None:
                missing.append(name)
            else:
                found.append(value)
    if args.format and not report.is_json(args.format):
        nodes = gotemplate.parse(report.normalize(args.format))
        sys.stdout.write("".join(gotemplate.execute(nodes, value) for value in found))
    else:
        print(json.dumps(found, indent=4, ensure_ascii=False))
    if missing:
        what = {"image": "image", "container": "container"}.get(args.type, "image or container")
        raise UserError(f"no such {what}: {', '.join(missing)}")
    return 0


def _container(dirs: ContainerDirs, images: Images, name: str) -> dict[str, object] | None:
    try:
        state = dirs.find(name)
    except UserError as exc:
        if exc.message.startswith("no such container"):
            return None
        raise
    paths = dirs.paths(state.id)
    saved = dirs.load_spec(state)
    return containerinfo.inspect_json(
        state, images, Dirs(paths.upper, paths.work, paths.rootfs),
        saved.spec if saved is not None else None, saved.stop_timeout if saved else None,
    )  # fmt: skip
