"""Reading the mount table (/proc/self/mountinfo)."""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def find_mount(path: str) -> str | None:
    """The filesystem type mounted at *path* (an absolute, resolved path), or None."""
    fstype = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if _unescape(fields[4]) == path:
                fstype = fields[sep + 1]  # the last one listed is the one on top
    return fstype


def unionfs_mounts() -> list[tuple[str, str]]:
    """(mount point, source) of every unionfs mount this process sees, in mount order."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "fuse.unionfs":
                found.append((_unescape(fields[4]), _unescape(fields[sep + 2])))
    return found
