"""What each live ``unionfs mount`` daemon serves (mount point, layers, upper, work, pid), for
``unionfs mount``'s listing: the kernel's table says what is mounted, not from which
layers. One JSON file per mount in ``directory()``, written once the mount is live and
removed when the daemon stops; a stale one is skipped and removed. A convenience: failing
to write one is a warning in the daemon's log, never a failed mount.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass

from unionfs.cli.mounts import find_mount

log = logging.getLogger("unionfs.mount")


@dataclass(frozen=True, slots=True)
class Record:
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
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "unionfs", "mounts")
    if os.geteuid() == 0:
        return "/run/unionfs/mounts"
    return f"/tmp/unionfs-{os.getuid()}/mounts"


def _path(mountpoint: str) -> str:
    key = hashlib.sha256(mountpoint.encode(errors="surrogateescape")).hexdigest()[:32]
    return os.path.join(directory(), f"{key}.json")


def register(record: Record) -> str | None:
    """Write *record*; its path, or None (with a warning) when it cannot be written."""
    path = _path(record.mountpoint)
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


def live() -> dict[str, Record]:
    """Mount point -> record, for every recorded mount still served; stale ones removed."""
    found: dict[str, Record] = {}
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
            record: Record | None = Record(
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


def _served(record: Record) -> bool:
    return (process_start(record.pid) == record.pid_start
            and find_mount(record.mountpoint) == "fuse.unionfs")  # fmt: skip
