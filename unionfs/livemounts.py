"""Live mounts: the mount table, and what unionfs daemons record about their mounts.

``table()`` reads ``/proc/self/mountinfo``; ``fstype_at`` and ``unionfs_mounts`` are its
two common questions. Two records, each trusted only while its daemon lives:
- by device, as root (``announce``): ``/run/unionfs/mounts/MAJOR:MINOR``, flocked by the
  daemon for as long as it serves; ``remount`` reads it (``announced``);
- by mount point, for every user (``register``): one JSON ``Listing`` per mount in
  ``directory()``, checked by the daemon's start time; ``unionfs mount``'s listing and
  ``system prune`` read it (``live``). Failing to write it is a warning, never a failed
  mount. Pure bookkeeping: no mounting happens here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass

MOUNTINFO = "/proc/self/mountinfo"
RECORDS = "/run/unionfs/mounts"
log = logging.getLogger("unionfs.mount")
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


def fstype_at(path: str) -> str | None:
    """The filesystem type mounted at *path* (absolute, symlinks resolved), or None."""
    found = mounted_at(path)
    return found.fstype if found is not None else None


def unionfs_mounts() -> list[tuple[str, str]]:
    """(mount point, source) of every unionfs mount this process sees, in mount order."""
    return [(m.mountpoint, m.source) for m in table() if m.fstype == "fuse.unionfs"]


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


# -- listings: by mount point, for every user -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Listing:
    """What ``unionfs mount`` lists about one mount: where, from which layers, by whom."""

    mountpoint: str
    lowers: tuple[str, ...]
    upper: str | None
    work: str | None
    source: str
    pid: int
    pid_start: int | None


def process_start(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in ticks), or None if it is gone: what tells
    a live daemon from a reused pid. (``runtime.state`` has the same reader; importing it
    would cost the mount program, which podman starts per container, ~20 ms.)"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])


def directory() -> str:
    """Where the listings are: the user's runtime dir, /run as root, else /tmp."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "unionfs", "mounts")
    if os.geteuid() == 0:
        return RECORDS  # beside the records by device (MAJOR:MINOR; these end in .json)
    return f"/tmp/unionfs-{os.getuid()}/mounts"


def _listing_path(mountpoint: str) -> str:
    key = hashlib.sha256(mountpoint.encode(errors="surrogateescape")).hexdigest()[:32]
    return os.path.join(directory(), f"{key}.json")


def register(record: Listing) -> str | None:
    """Write *record*; its path, or None (with a warning) when it cannot be written."""
    path = _listing_path(record.mountpoint)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
            json.dump(asdict(record), f)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot record the mount in %s (%s): `unionfs mount` will not list its "
                    "layers", os.path.dirname(path), exc.strerror)  # fmt: skip
        return None
    return path


def unregister(path: str | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def live() -> dict[str, Listing]:
    """Mount point -> record, for every recorded mount still served; stale ones removed."""
    found: dict[str, Listing] = {}
    try:
        names = sorted(os.listdir(directory()))
    except FileNotFoundError:
        return found
    for name in names:
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory(), name)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                data = json.load(f)
            record: Listing | None = Listing(
                data["mountpoint"], tuple(data["lowers"]), data["upper"], data["work"],
                data["source"], data["pid"], data["pid_start"])
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            record = None
        if record is None or not _served(record):
            with contextlib.suppress(OSError):
                os.unlink(path)  # stale (or not ours to read): a later mount writes anew
            continue
        found[record.mountpoint] = record
    return found


def _served(record: Listing) -> bool:
    return (process_start(record.pid) == record.pid_start
            and fstype_at(record.mountpoint) == "fuse.unionfs")  # fmt: skip
