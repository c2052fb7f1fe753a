"""``unionfs diff C``: what changed in a container, one ``A``/``C``/``D`` line per path, as
``podman diff``; ``--format json`` groups them (``{"changed": [...], "added": [...],
"deleted": [...]}``, empty groups left out, as podman)."""

from __future__ import annotations

import argparse
import json

from unionfs.cli import report
from unionfs.cli.storecli import add_root, open_store
from unionfs.containers import lifecycle

KINDS = {"C": "changed", "A": "added", "D": "deleted"}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("diff", help="list the paths a container added, changed or deleted",
                       description=__doc__)  # fmt: skip
    p.add_argument("container", metavar="C")
    p.add_argument("--format", metavar="FORMAT",
                   help="json, or a Go template per change: {{.Kind}} {{.Path}}")  # fmt: skip
    add_root(p)


def run(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        changes = lifecycle.diff(store, args.container)
    if report.is_json(args.format):
        grouped: dict[str, list[str]] = {}
        for kind, path in changes:
            grouped.setdefault(KINDS[kind], []).append(path)
        ordered = {name: grouped[name] for name in KINDS.values() if name in grouped}
        print(json.dumps(ordered, indent=5))
        return 0
    rows: list[dict[str, object]] = [{"Kind": kind, "Path": path, "ChangeType": KINDS[kind]}
                                     for kind, path in changes]  # fmt: skip
    listing = report.Listing(rows, None, "{{.Kind}} {{.Path}}")
    report.show(listing, args)
    return 0
