"""The one printer of listings (images, ps, inspect, history, stats, diff, mount, system df):
a verb gives a ``Listing`` (template rows with podman's field names, podman's JSON, its
default ``table`` template) and ``render`` honours ``--format``: ``json``/``{{json .}}``,
``table TEMPLATE`` (a header, columns aligned as podman's tabwriter) or a plain template (a
line per row), and ``--noheading``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from unionfs.cli import gotemplate
from unionfs.cli.govalues import GoMap, TemplateError

MIN_WIDTH = 12
PADDING = 2
_JSON_FORMAT = re.compile(r"(?i:json|\{\{\s*json\s+\.\s*\}\})")


@dataclass(frozen=True, slots=True)
class Listing:
    rows: Sequence[dict[str, object]]
    json: object
    default: str  # "table {{.ID}}\t{{.Name}}"
    headers: dict[str, str] = field(default_factory=dict)
    json_indent: int | None = 4  # None: on one line


def add_format_flags(p: argparse.ArgumentParser, *, what: str, noheading: bool = True) -> None:
    p.add_argument("--format", metavar="FORMAT",
                   help=f"json, or a Go template of the {what}'s fields ({{{{.ID}}}}, "
                   "{{json .Names}}...); 'table TEMPLATE' adds a header and aligns "
                   "the columns")  # fmt: skip
    if noheading:
        p.add_argument("-n", "--noheading", action="store_true", help="print no header row")


def is_json(fmt: str | None) -> bool:
    return fmt is not None and _JSON_FORMAT.fullmatch(fmt.strip()) is not None


def header_name(field_name: str) -> str:
    """``CreatedAt`` -> ``CREATED AT``, ``ID`` -> ``ID`` (podman splits on camel case)."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+|[^A-Za-z0-9]+", field_name)
    return " ".join(w for w in words if w.strip()).upper() or field_name.upper()


def _header_row(nodes: list[gotemplate.Node], overrides: dict[str, str]) -> GoMap:
    row = GoMap()
    for f in gotemplate.fields(nodes):
        if not f.chain or f.base != ".":
            continue
        target = row
        for name in f.chain[:-1]:
            nested = target.get(name)
            if not isinstance(nested, GoMap):
                nested = target[name] = GoMap()
            target = nested
        last = f.chain[-1]
        target.setdefault(last, overrides.get(last) or header_name(last))
    return row


def normalize(fmt: str) -> str:
    """A format as typed (``\\t`` for a tab), ending in a newline, as podman reads it."""
    text = fmt.replace("\\t", "\t")
    return text if text.endswith("\n") else text + "\n"


def render(listing: Listing, fmt: str | None, noheading: bool = False) -> str:
    """What the verb prints for *fmt* (None: its default table)."""
    if is_json(fmt):
        compact = (",", ":") if listing.json_indent is None else None
        return json.dumps(listing.json, indent=listing.json_indent, separators=compact,
                          ensure_ascii=False) + "\n"  # fmt: skip
    text = fmt or listing.default
    table = text.startswith("table")
    if table:
        text = text[len("table") :].lstrip(" ") or listing.default[len("table") :].lstrip(" ")
    nodes = gotemplate.parse(normalize(text))
    if "{{" in "".join(n for n in nodes if isinstance(n, str)):
        raise TemplateError(f"unclosed action in {fmt!r}")
    out = []
    if table and not noheading:
        out.append(gotemplate.execute(nodes, _header_row(nodes, listing.headers)))
    out.extend(gotemplate.execute(nodes, row) for row in listing.rows)
    joined = "".join(out)
    return tabwriter(joined) if table else joined


def show(listing: Listing, args: argparse.Namespace) -> None:
    sys.stdout.write(render(listing, getattr(args, "format", None),
                            getattr(args, "noheading", False)))  # fmt: skip
    sys.stdout.flush()


def tabwriter(text: str, minwidth: int = MIN_WIDTH, padding: int = PADDING) -> str:
    """Go's text/tabwriter (padchar ' ', no flags): a tab ends a cell; each column of a
    block of consecutive lines that have that cell is as wide as its widest cell plus
    *padding*, at least *minwidth*; a line's last cell is not aligned."""
    lines = [line.split("\t") for line in text.split("\n")]
    trailing_newline = text.endswith("\n")
    if trailing_newline:
        lines.pop()
    widths: list[int] = []
    out: list[str] = []

    def emit(line0: int, line1: int) -> None:
        for cells in lines[line0:line1]:
            parts = [c.ljust(widths[j]) if j < len(widths) else c
                     for j, c in enumerate(cells[:-1])]  # fmt: skip
            out.append("".join(parts) + cells[-1])

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            emit(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        emit(line0, line1)

    fmt(0, len(lines))
    return "\n".join(out) + ("\n" if trailing_newline else "")


def print_lines(items: Iterable[str]) -> None:
    for item in items:
        print(item)
