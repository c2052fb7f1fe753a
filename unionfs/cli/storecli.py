"""What the store commands share: ``--root``, opening the store, warnings, sizes, times."""

from __future__ import annotations

import argparse
import datetime
import os
import sys

from unionfs.runtime.state import default_home
from unionfs.store import ImageStore


def add_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", metavar="DIR",
                   help="the store (default: $UNIONFS_HOME, /var/lib/unionfs as root, "
                   "~/.local/share/unionfs otherwise)")  # fmt: skip


def open_store(args: argparse.Namespace) -> ImageStore:
    """The store, its warnings on stderr; an ordinary user's is opened inside a user
    namespace with the user's mapping (``containers.userstore``), so its files carry host
    ids and read as container ids."""
    from unionfs.containers import userstore

    return userstore.open_store(getattr(args, "root", None) or default_home(), warn)


def warn(message: str) -> None:
    print(f"unionfs: warning: {message}", file=sys.stderr)


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} GB"


def ago(created: str) -> str:
    """``2026-11-28T11:00:00Z`` -> ``5 minutes ago`` (the created field as it is if unparsable)."""
    try:
        when = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return created or "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    seconds = (datetime.datetime.now(datetime.UTC) - when).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "seconds ago"


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def mount_container(ref: str) -> int:
    """``unionfs mount C``: mount container C and print its mount point (as podman does)."""
    from unionfs.containers import lifecycle, userstore
    from unionfs.errors import UserError

    # Mounted where the caller's shell sees it (outside the user's namespace): a user's
    # store holds host ids, shown as the container's ids again by uidmapping/gidmapping.
    # Its index is not the one mounts inside the namespace use: the owners it records
    # are those the indexing process sees, and they differ between the two.
    with ImageStore(default_home(), warn) as store:
        options = userstore.mount_options()
        index = os.path.join(store.root, "index-host") if options else None
        try:
            print(lifecycle.mount(store, ref, options, index))
        except UserError as exc:
            if exc.message.startswith("no such container"):
                hint = "to mount layers: unionfs mount -o lowerdir=L1:L2,... MOUNTPOINT"
                raise UserError(f"{exc.message} ({hint})") from None
            raise
    return 0


def umount_container(ref: str) -> int | None:
    """``unionfs umount C`` for a container C; None when *ref* names no container."""
    from unionfs.containers import lifecycle
    from unionfs.runtime.state import ContainerDirs

    home = default_home()
    known = {s.name for s in ContainerDirs(home).all()} | {s.id for s in ContainerDirs(home).all()}
    if ref not in known:
        return None
    with ImageStore(home, warn) as store:
        lifecycle.unmount(store, ref)
    return 0
