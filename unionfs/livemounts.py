"""Live mounts: the mount table, and what unionfs daemons announce about their mounts.

``table()`` reads ``/proc/self/mountinfo``. A daemon serving as root announces its mount in
``/run/unionfs/mounts/MAJOR:MINOR`` (the mount's device) and holds an exclusive flock on
that file for as long as it serves; readers trust a record only while its lock is held, so a
daemon that died leaves nothing that misleads a later command (its file is overwritten by the
next daemon given the same device). Pure bookkeeping: no mounting happens here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"
RECORDS = "/run/unionfs/mounts"
_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of mountinfo. ``options`` are the mount's own (per-mount) flags, ``super``
    the filesystem's options (``ro``/``rw`` there is the superblock's)."""

    mount_id: int
    dev: str  # "major:minor"
    mountpoint: str
    options: tuple[str, ...]
    fstype: str
    source: str
    super: tuple[str, ...]

    @property
    def readonly(self) -> bool:
        return "ro" in self.options or "ro" in self.super


def parse_line(line: str) -> Mount:
    fields = line.split()
    sep = fields.index("-", 6)
    # Split before unescaping: a comma inside an option's value is escaped (\054).
    return Mount(
        int(fields[0]), fields[2], _unescape(fields[4]), tuple(fields[5].split(",")),
        fields[sep + 1], _unescape(fields[sep + 2]),
        tuple(_unescape(item) for item in fields[sep + 3].split(",")),
    )  # fmt: skip


def table() -> list[Mount]:
    """Every mount of this mount namespace, in mount order (a later one covers an earlier
    one at the same mount point)."""
    with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
        return [parse_line(line) for line in f if line.strip()]


def mounted_at(path: str) -> Mount | None:
    """The topmost mount at *path* (absolute, symlinks resolved), or None."""
    found = [m for m in table() if m.mountpoint == path]
    return found[-1] if found else None


@dataclass(frozen=True, slots=True)
class Record:
    """What a daemon announces: the layers of its mount (absolute paths)."""

    pid: int
    lowers: tuple[str, ...]
    upper: str | None
    work: str | None


def _record_path(dev: str) -> str:
    return os.path.join(RECORDS, dev)


def announce(dev: str, record: Record) -> int | None:
    """Record the mount of device *dev* for as long as the returned descriptor stays open
    (the caller keeps it for its lifetime). None where records cannot be kept (not root,
    or root of a user namespace that may not write /run): the mount goes on without."""
    if os.geteuid() != 0:
        return None
    try:
        os.makedirs(RECORDS, mode=0o755, exist_ok=True)
        fd = os.open(_record_path(dev), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                     0o644)  # fmt: skip
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # readers hold it shared only for a moment
        os.ftruncate(fd, 0)
        body = {"pid": record.pid, "lowers": list(record.lowers), "upper": record.upper,
                "work": record.work}  # fmt: skip
        os.pwrite(fd, json.dumps(body).encode(), 0)
    except OSError:
        os.close(fd)
        return None
    return fd


def withdraw(dev: str, fd: int) -> None:
    """Remove the record *announce* made (at a clean exit; a crash leaves it unlocked)."""
    with contextlib.suppress(OSError):
        os.unlink(_record_path(dev))
    os.close(fd)


def announced(dev: str) -> Record | None:
    """The record of the live daemon serving device *dev*, or None (no record, or its
    daemon is gone)."""
    try:
        fd = os.open(_record_path(dev), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: the daemon lives
        else:
            return None  # nobody holds it: left by a daemon that died
        body = json.loads(os.pread(fd, 1 << 20, 0) or b"{}")
        return Record(int(body["pid"]), tuple(body["lowers"]), body["upper"], body["work"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        os.close(fd)
