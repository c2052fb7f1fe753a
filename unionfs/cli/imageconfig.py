"""An image's config as podman applies it to ``run``/``create``: the command from
Entrypoint and Cmd (arguments replace Cmd, ``--entrypoint`` replaces Entrypoint and drops
Cmd), the user by name or number through the image's /etc/passwd and /etc/group (its
gid, HOME and supplementary groups), and ``--env-file``.

The image's files are read from its layer dirs, topmost first, through ``safepath`` (no
symlink followed); a whiteout hides a lower file. Nothing is written.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.layerfmt import is_whiteout_device, whiteout_file_name
from unionfs.safepath import DirFdCache, LayerDir


def command(settings: Mapping[str, object], argv: list[str],
            entrypoint: str | None) -> list[str]:  # fmt: skip
    """What runs: Entrypoint + (argv or Cmd), as podman; ``--entrypoint ''`` clears it, a
    JSON array gives it several words."""
    entry = [str(a) for a in _words(settings.get("Entrypoint"))]
    cmd = [str(a) for a in _words(settings.get("Cmd"))]
    if entrypoint is not None:
        entry, cmd = _entrypoint(entrypoint), []
    return [*entry, *(argv or cmd)]


def _words(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _entrypoint(text: str) -> list[str]:
    if text.startswith("["):
        try:
            words = json.loads(text)
        except ValueError:
            words = None
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise UserError(f"--entrypoint {text}: a JSON array of strings, or one command",
                            exit_code=2)  # fmt: skip
        return list(words)
    return [text] if text else []


def read_file(lowers: tuple[str, ...], path: str) -> bytes | None:
    """*path* (e.g. ``etc/passwd``) as the image shows it; None when absent."""
    cache = DirFdCache()
    try:
        return _read(cache, lowers, path)
    finally:
        cache.close()


def _read(cache: DirFdCache, lowers: tuple[str, ...], path: str) -> bytes | None:
    parent, _, name = path.rpartition("/")
    for root in lowers:
        layer = LayerDir(root, cache, lower=True)
        try:
            st = layer.lstat(path.encode())
            if st is None:
                if layer.lstat(f"{parent}/".encode() + whiteout_file_name(name.encode())):
                    return None
                continue
            if is_whiteout_device(st.st_mode, st.st_rdev) or not stat.S_ISREG(st.st_mode):
                return None
            fd = layer.open(path.encode(), os.O_RDONLY)
            try:
                chunks = []
                while chunk := os.read(fd, 1 << 16):
                    chunks.append(chunk)
                return b"".join(chunks)
            finally:
                os.close(fd)
        except OSError:
            return None
        finally:
            layer.close()
    return None


@dataclass(frozen=True, slots=True)
class User:
    uid: int
    gid: int
    home: str | None  # from passwd; None: the runtime's default
    groups: tuple[int, ...] = ()


def _table(lowers: tuple[str, ...], path: str) -> list[list[str]]:
    data = read_file(lowers, path) or b""
    rows = [line.split(":") for line in data.decode("utf-8", "replace").splitlines()]
    return [r for r in rows if len(r) >= 4 and not r[0].startswith("#")]


def resolve_user(text: str, lowers: tuple[str, ...], where: str = "the image's") -> User:
    """``name``, ``uid``, ``name:group``, ``uid:gid``: numbers through the image's passwd
    and group files as podman does (``-u 33`` takes gid and HOME from passwd's entry)."""
    user, _, group = text.partition(":")
    if not user:
        raise UserError(f"--user {text!r}: give a user (name or number)", exit_code=2)
    passwd = _table(lowers, "etc/passwd")
    entry = next((r for r in passwd if r[0] == user or (user.isdigit() and r[2] == user)), None)
    if entry is None and not user.isdigit():
        raise UserError(f"--user {text}: no user {user!r} in {where} /etc/passwd")
    uid = int(user) if user.isdigit() else int(entry[2]) if entry else 0
    gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
    home = entry[5] if entry is not None and len(entry) > 5 and entry[5] else None
    groups = _table(lowers, "etc/group")
    if group:
        found = next((r for r in groups if r[0] == group), None)
        if group.isdigit():
            gid = int(group)
        elif found is None or not found[2].isdigit():
            raise UserError(f"--user {text}: no group {group!r} in {where} /etc/group")
        else:
            gid = int(found[2])
    name = entry[0] if entry is not None else None
    extra = tuple(sorted({int(r[2]) for r in groups if r[2].isdigit() and name is not None
                          and name in r[3].split(",") and int(r[2]) != gid}))  # fmt: skip
    if not (0 <= uid < 2**32 - 1 and 0 <= gid < 2**32 - 1):
        raise UserError(f"--user {text!r}: out of range")
    return User(uid, gid, home, extra)


def env_file(paths: list[str]) -> list[str]:
    """``--env-file FILE``: K=V lines (K alone: the host's value), # comments, blank lines."""
    found: list[str] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise UserError(f"--env-file {path}: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key = line.partition("=")[0]
            if not key or any(c.isspace() for c in key):
                raise UserError(f"--env-file {path}:{number}: not KEY=VALUE: {line!r}")
            found.append(line)
    return found
