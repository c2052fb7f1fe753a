"""``unionfs history IMAGE``: each step of an image, newest first, as ``podman history``
shows it: the layer it made (its id on the top step, ``<missing>`` below, as podman), when,
by what command, its uncompressed size, its comment. ``--format``/``-q``/``--no-trunc``."""

from __future__ import annotations

import argparse

from unionfs.cli import humanize, report
from unionfs.cli.storecli import add_root, open_store
from unionfs.errors import UserError
from unionfs.store import sizes

DEFAULT = "table {{.ID}}\t{{.Created}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="show the layers of an image and how each was made",
                       description=__doc__)  # fmt: skip
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--no-trunc", action="store_true", help="full ids and commands")
    p.add_argument("-H", "--human", type=lambda v: v.lower() != "false", default=True,
                   metavar="BOOL", help="sizes and times for humans (default true)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="only the ids")
    report.add_format_flags(p, what="history step", noheading=False)
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        image = store.resolve(args.image)
        config = store.config(image)
        layer_sizes = [sizes.layer_size(store, d) for d in image.record.diff_ids]
    history = config.get("history")
    steps = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
    layers = list(zip(image.record.diff_ids, layer_sizes, strict=True))
    entries: list[tuple[dict[str, object], int]] = []
    for step in steps:
        if step.get("empty_layer"):
            entries.append((step, 0))
        elif layers:
            entries.append((step, layers.pop(0)[1]))
        else:
            raise UserError(f"image {args.image}: its history names more layers than it has")
    entries += [({}, n) for _diff_id, n in layers]  # layers without a history entry
    entries.reverse()
    rows: list[dict[str, object]] = []
    found: list[dict[str, object]] = []
    for i, (step, size) in enumerate(entries):
        full = image.record.id if i == 0 else "<missing>"
        created = humanize.parse_time(step.get("created"))
        by = str(step.get("created_by", ""))
        found.append({"id": full, "created": step.get("created") or None, "CreatedBy": by,
                      "size": size, "comment": str(step.get("comment", "")),
                      "Created": humanize.rfc3339(created) if created else None})  # fmt: skip
        short_by = by if args.no_trunc or len(by) <= 45 else by[:42] + "..."
        rows.append({
            "ID": full if args.no_trunc or i else full[:12],
            "Created": humanize.ago(created) if args.human else humanize.rfc3339(created),
            "CreatedAt": humanize.go_time(created), "CreatedSince": humanize.ago(created),
            "CreatedBy": short_by, "Size": humanize.image_size(size) if args.human else size,
            "Comment": str(step.get("comment", "")), "Tags": [],
        })  # fmt: skip
    if args.quiet:
        for row in rows:
            print(row["ID"])
        return 0
    report.show(report.Listing(rows, found, DEFAULT, json_indent=None), args)
    return 0
