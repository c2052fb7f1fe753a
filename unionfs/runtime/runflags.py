"""The run flags podman users reach for after the basics, read as podman reads them:
``--ulimit``, ``--mount type=bind|tmpfs|volume``, ``--label``, ``--init`` and ``--device``.
Each becomes part of a ``RunSpec`` (rlimits, mounts, labels, device rules) in
``spec.from_cli`` (which --init is, being two lines there). Pure but for ``device``, which
stats the host's node; nothing is mounted or created here (named volumes are
``unionfs.containers.volumes``').
"""

from __future__ import annotations

import os
import resource
import stat
from collections.abc import Callable
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.runtime.devices import DeviceRule
from unionfs.runtime.spec import VOLUME_NAME, MountSpec, Rlimit, check_mount

ULIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
           "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")  # fmt: skip


def ulimit(text: str) -> Rlimit:
    """``nofile=1024[:2048]``: soft (and hard, else the same); -1 or ``unlimited``: none."""
    name, eq, values = text.partition("=")
    if not eq or name not in ULIMITS:
        raise UserError(f"--ulimit {text}: give NAME=SOFT[:HARD] with NAME one of "
                        f"{', '.join(ULIMITS)}", exit_code=2)  # fmt: skip
    parts = values.split(":")
    if len(parts) > 2:
        raise UserError(f"--ulimit {text}: give NAME=SOFT[:HARD]", exit_code=2)
    numbers = []
    for part in parts:
        if part in ("-1", "unlimited"):
            numbers.append(resource.RLIM_INFINITY)
            continue
        if not part.isdigit():
            raise UserError(f"--ulimit {text}: {part!r} is not a number", exit_code=2)
        numbers.append(int(part))
    soft, hard = numbers[0], numbers[-1]
    infinite = resource.RLIM_INFINITY
    if hard != infinite and (soft == infinite or soft > hard):
        raise UserError(f"--ulimit {text}: the soft limit is above the hard one", exit_code=2)
    return Rlimit("RLIMIT_" + name.upper(), soft, hard)


def _truth(value: str, where: str) -> bool:
    if value.lower() in ("", "true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise UserError(f"{where}: give true or false", exit_code=2)


def mount(text: str) -> MountSpec:
    """``--mount type=bind,source=/h,target=/c[,readonly]``, ``type=tmpfs,target=/c
    [,tmpfs-size=64m][,tmpfs-mode=1777]``, ``type=volume,source=NAME,target=/c``. A volume
    comes back as type ``volume`` with its name as source (``spec`` binds its directory)."""
    where = f"--mount {text}"
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly"}\
            .get(key, key)  # fmt: skip
        if key not in ("type", "source", "target", "readonly", "tmpfs-size", "tmpfs-mode",
                       "bind-propagation") or (not eq and key != "readonly"):  # fmt: skip
            raise UserError(f"{where}: unknown option {item!r} (give type=bind|tmpfs|volume,"
                            "source=...,target=...[,readonly])", exit_code=2)  # fmt: skip
        fields[key] = value
    kind = fields.get("type", "volume")
    target = fields.get("target")
    if not target:
        raise UserError(f"{where}: give target=CONTAINERDIR", exit_code=2)
    readonly = _truth(fields["readonly"], where) if "readonly" in fields else False
    if kind == "tmpfs":
        if "source" in fields or readonly:
            raise UserError(f"{where}: a tmpfs has no source and is writable", exit_code=2)
        options = ["rw", "noexec", "nosuid", "nodev"]
        if "tmpfs-size" in fields:
            options.append(f"size={fields['tmpfs-size']}")
        if "tmpfs-mode" in fields:
            options.append(f"mode={fields['tmpfs-mode']}")
        return MountSpec(target, "tmpfs", "tmpfs", tuple(options))
    source = fields.get("source", "")
    if kind == "bind":
        if not source.startswith("/"):
            raise UserError(f"{where}: a bind needs source=ABSOLUTE-HOST-PATH", exit_code=2)
        propagation = fields.get("bind-propagation")
        options = ["bind", "ro", "nosuid", "nodev"] if readonly else ["rbind"]
        if propagation is not None:
            if propagation not in ("private", "rprivate", "slave", "rslave", "shared",
                                   "rshared"):  # fmt: skip
                raise UserError(f"{where}: bind-propagation {propagation!r}: give "
                                "[r]private, [r]slave or [r]shared", exit_code=2)  # fmt: skip
            options.append(propagation)
        return MountSpec(target, "bind", source, tuple(options))
    if kind == "volume":
        if not VOLUME_NAME.fullmatch(source):
            raise UserError(f"{where}: a volume needs source=NAME ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
                            exit_code=2)  # fmt: skip
        return MountSpec(target, "volume", source, ("ro",) if readonly else ())
    raise UserError(f"{where}: type {kind!r}: give bind, tmpfs or volume", exit_code=2)


def given_mount(text: str, volume_dir: Callable[[str], str] | None) -> MountSpec:
    """A --mount, checked; a volume becomes a bind of its directory (*volume_dir*)."""
    given = mount(text)
    if given.type == "volume":
        if volume_dir is None:
            raise UserError(f"--mount {text}: volumes need the store (run an IMAGE)")
        options = ("bind", "ro", "nosuid", "nodev") if given.options else ("rbind",)
        given = MountSpec(given.destination, "bind", volume_dir(given.source), options)
    return check_mount(given, f"--mount {text}")


def label(text: str) -> tuple[str, str]:
    """``K=V`` (a bare ``K``: an empty value, as podman)."""
    key, _, value = text.partition("=")
    if not key:
        raise UserError(f"--label {text!r}: give KEY=VALUE", exit_code=2)
    return key, value


@dataclass(frozen=True, slots=True)
class Device:
    """``--device HOST[:CONTAINER][:PERMS]``: a host node bound in, and its cgroup rule."""

    host: str
    path: str
    kind: str  # c or b
    major: int
    minor: int
    access: str = "rwm"

    def rule(self) -> DeviceRule:
        return DeviceRule(True, self.kind, self.major, self.minor, self.access)

    def mount(self) -> MountSpec:
        return MountSpec(self.path, "bind", self.host, ("bind",))


def device(text: str) -> Device:
    """Read ``--device``: the host path must be a character or block device."""
    parts = text.split(":")
    access = "rwm"
    if len(parts) > 1 and parts[-1] and set(parts[-1]) <= set("rwm") and \
            not parts[-1].startswith("/"):  # fmt: skip
        access = parts.pop()
    if len(parts) > 2 or not parts[0]:
        raise UserError(f"--device {text}: give HOSTDEV[:CONTAINERDEV][:rwm]", exit_code=2)
    host = parts[0]
    path = parts[1] if len(parts) == 2 and parts[1] else host
    if not host.startswith("/") or not path.startswith("/"):
        raise UserError(f"--device {text}: give absolute paths, e.g. /dev/fuse", exit_code=2)
    try:
        st = os.stat(host)
    except OSError as exc:
        raise UserError(f"--device {text}: {host}: {exc.strerror}", exit_code=2) from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise UserError(f"--device {text}: {host} is not a device node (for files and "
                        "directories use -v)", exit_code=2)  # fmt: skip
    return Device(host, path, kind, os.major(st.st_rdev), os.minor(st.st_rdev), access)
