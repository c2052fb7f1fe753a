"""Rootless runs: the user namespace that ``unionfs run`` enters when an ordinary user starts it.

``preflight`` checks, before anything is created, what a rootless container needs (user
namespaces allowed, a usable /dev/fuse, newuidmap/newgidmap and the user's /etc/subuid and
/etc/subgid ranges) and names the fix in one line. ``enter`` then moves this process into
a new user and mount namespace where the user is root, with the subordinate ranges mapped
from 1 up (written by newuidmap/newgidmap from a child still outside), or only the user's
own ids when there are none. After it, the runtime works as for root: the FUSE daemon it
starts mounts inside these namespaces. Call both only from a single-threaded process.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.runtime import namespaces as ns

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
FUSE_DEVICE = "/dev/fuse"


@dataclass(frozen=True, slots=True)
class IdRange:
    start: int
    count: int


@dataclass(frozen=True, slots=True)
class Mapping:
    """How the new namespace maps ids: the user's own to 0, then *ranges* from 1 up."""

    uid: int
    gid: int
    uid_ranges: tuple[IdRange, ...] = ()
    gid_ranges: tuple[IdRange, ...] = ()

    @property
    def single(self) -> bool:
        return not (self.uid_ranges and self.gid_ranges)


def sub_ranges(text: str, name: str, own_id: int) -> tuple[IdRange, ...]:
    """The ranges of ``NAME:START:COUNT`` (or ``ID:START:COUNT``) lines for this user."""
    found = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in (name, str(own_id)):
            continue
        if parts[1].isdigit() and parts[2].isdigit() and int(parts[2]) > 0:
            found.append(IdRange(int(parts[1]), int(parts[2])))
    return tuple(found)


def map_lines(own: int, ranges: tuple[IdRange, ...]) -> list[tuple[int, int, int]]:
    """``(inside, outside, count)`` triples: own id -> 0, the ranges from 1 up."""
    lines = [(0, own, 1)]
    inside = 1
    for r in ranges:
        lines.append((inside, r.start, r.count))
        inside += r.count
    return lines


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def check_userns_allowed() -> None:
    for path, fix in (
        ("/proc/sys/user/max_user_namespaces", "sysctl -w user.max_user_namespaces=15000"),
        ("/proc/sys/kernel/unprivileged_userns_clone",
         "sysctl -w kernel.unprivileged_userns_clone=1"),
    ):  # fmt: skip
        value = (_read(path) or "").strip()
        if value == "0":
            raise UserError(f"user namespaces are disabled ({path} is 0): as root, {fix}")
    if (_read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") or "").strip() == "1":
        raise UserError("AppArmor forbids unprivileged user namespaces: as root, sysctl -w "
                        "kernel.apparmor_restrict_unprivileged_userns=0")  # fmt: skip


def check_fuse_device(path: str = FUSE_DEVICE) -> None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UserError(f"no {path}: as root, modprobe fuse (or mknod -m 0666 {path} c 10 229)"
                        ) from None  # fmt: skip
    except PermissionError:
        mode = oct(os.stat(path).st_mode & 0o777)[2:]
        raise UserError(f"{path} is not usable by you (mode {mode}): as root, chmod 0666 "
                        f"{path} (most distributions ship it so)") from None  # fmt: skip
    os.close(fd)


def plan_mapping(user: pwd.struct_passwd) -> tuple[Mapping, str | None]:
    """The mapping to use, and a one-line notice (with its fix) when it is a single id."""
    name, uid, gid = user.pw_name, user.pw_uid, user.pw_gid
    single = Mapping(uid, gid)
    tools = [t for t in ("newuidmap", "newgidmap") if shutil.which(t) is None]
    if tools:
        return single, (f"{' and '.join(tools)} not found: only your own id is mapped in "
                        "the container (fix: as root, apt-get install uidmap)")  # fmt: skip
    uids = sub_ranges(_read(SUBUID) or "", name, uid)
    gids = sub_ranges(_read(SUBGID) or "", name, gid)
    missing = [path for path, found in ((SUBUID, uids), (SUBGID, gids)) if not found]
    if missing:
        return single, (f"no range for {name} in {' and '.join(missing)}: only your own id "
                        "is mapped in the container (fix: as root, usermod --add-subuids "
                        f"100000-165535 --add-subgids 100000-165535 {name})")  # fmt: skip
    return Mapping(uid, gid, uids, gids), None


def preflight() -> tuple[Mapping, str | None]:
    """Everything a rootless run needs, checked before anything is made."""
    check_userns_allowed()
    check_fuse_device()
    return plan_mapping(pwd.getpwuid(os.getuid()))


def needs_more_ids(mapping: Mapping, uid: int, gid: int, groups: tuple[int, ...]) -> bool:
    return mapping.single and (uid != 0 or gid != 0 or any(g != 0 for g in groups))


def _run_map_tool(tool: str, pid: int, own: int, ranges: tuple[IdRange, ...]) -> str | None:
    args = [tool, str(pid)]
    for inside, outside, count in map_lines(own, ranges):
        args += [str(inside), str(outside), str(count)]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError as exc:
        return f"{tool}: {exc.strerror}"
    if proc.returncode != 0:
        said = proc.stderr.strip().splitlines()
        return f"{tool} failed: {said[-1] if said else f'exit {proc.returncode}'}"
    return None


def _write_own_maps(mapping: Mapping) -> None:
    """Unprivileged, a process may map only its own ids, and gids only after setgroups is
    denied."""
    with open("/proc/self/setgroups", "w", encoding="ascii") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w", encoding="ascii") as f:
        f.write(f"0 {mapping.uid} 1\n")
    with open("/proc/self/gid_map", "w", encoding="ascii") as f:
        f.write(f"0 {mapping.gid} 1\n")


def enter(mapping: Mapping) -> None:
    """Move this (single-threaded) process into a new user and mount namespace as root."""
    if mapping.single:
        _unshare()
        _write_own_maps(mapping)
        return
    go_read, go_write = os.pipe()
    said_read, said_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # still outside: writes the parent's maps once it has unshared
        code = 1
        try:
            os.close(go_write)
            os.close(said_read)
            if os.read(go_read, 1) == b"u":
                parent = os.getppid()
                problem = _run_map_tool("newuidmap", parent, mapping.uid, mapping.uid_ranges)
                problem = problem or _run_map_tool(
                    "newgidmap", parent, mapping.gid, mapping.gid_ranges
                )
                os.write(said_write, (problem or "").encode())
                code = 0 if problem is None else 1
        finally:
            os._exit(code)
    os.close(go_read)
    os.close(said_write)
    try:
        try:
            _unshare()
        except UserError:
            os.write(go_write, b"x")
            os.waitpid(pid, 0)
            raise
        os.write(go_write, b"u")
        os.close(go_write)
        go_write = -1
        problem = os.read(said_read, 4096).decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if problem or status != 0:
            raise UserError(f"cannot map ids in the user namespace: {problem or status}")
    finally:
        if go_write >= 0:
            os.close(go_write)
        os.close(said_read)


def remove_tree(path: str) -> None:
    """Remove *path*, which holds entries owned by the user's subordinate ids (an upper a
    rootless container wrote), from a child that enters the user's namespace to do it."""
    mapping, _ = plan_mapping(pwd.getpwuid(os.getuid()))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            enter(mapping)
            shutil.rmtree(path)
            code = 0
        except BaseException as exc:  # the child must not return into the caller's code
            print(f"unionfs: cannot remove {path}: {exc}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise UserError(f"cannot remove {path} (in your user namespace either)")


def _unshare() -> None:
    try:
        ns.unshare(ns.CLONE_NEWUSER | ns.CLONE_NEWNS)
    except OSError as exc:
        hint = " (this process has threads)" if exc.errno == errno.EINVAL else ""
        raise UserError(f"cannot create a user namespace: {exc.strerror}{hint}") from None


def notice(text: str) -> None:
    print(f"unionfs: {text}", file=sys.stderr)
