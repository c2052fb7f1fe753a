"""Named volumes: ``$UNIONFS_HOME/volumes/NAME/_data``, as podman keeps them under its
graph root, with ``volume.json`` beside ``_data`` (its creation time and labels).

This module makes, lists and removes those directories; a volume is in use while a
container's saved spec binds its ``_data`` (``users``). It mounts nothing: a container
binds the directory like any ``-v HOSTDIR``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.runtime.spec import VOLUME_NAME
from unionfs.runtime.state import ContainerDirs, State


@dataclass(frozen=True, slots=True)
class Volume:
    name: str
    mountpoint: str
    created: float
    labels: dict[str, str]


class Volumes:
    def __init__(self, home: str) -> None:
        self.home = home
        self.root = os.path.join(home, "volumes")

    def _dir(self, name: str) -> str:
        if not VOLUME_NAME.fullmatch(name):
            raise UserError(f"volume name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*",
                            exit_code=2)  # fmt: skip
        return os.path.join(self.root, name)

    def create(self, name: str | None, labels: dict[str, str] | None = None,
               exist_ok: bool = False) -> Volume:  # fmt: skip
        """A new volume (a random 64-hex name when *name* is None)."""
        name = name or secrets.token_hex(32)
        path = self._dir(name)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if exist_ok:
                return self.get(name)
            raise UserError(f"volume {name} already exists (unionfs volume rm {name} "
                            "first, or use it as it is)") from None  # fmt: skip
        os.mkdir(os.path.join(path, "_data"), 0o755)
        meta = {"created": time.time(), "labels": labels or {}}
        with open(os.path.join(path, "volume.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f)
        return self.get(name)

    def data_dir(self, name: str) -> str:
        """The directory a container binds for volume *name*, made when missing."""
        return self.create(name, exist_ok=True).mountpoint

    def get(self, name: str) -> Volume:
        path = self._dir(name)
        try:
            with open(os.path.join(path, "volume.json"), encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise UserError(f"no such volume {name} (unionfs volume ls lists them)") from None
        return Volume(name, os.path.join(path, "_data"), float(meta.get("created", 0)),
                      dict(meta.get("labels") or {}))  # fmt: skip

    def all(self) -> list[Volume]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [self.get(n) for n in names
                if os.path.exists(os.path.join(self.root, n, "volume.json"))]  # fmt: skip

    def users(self, volume: Volume) -> list[State]:
        """The containers whose spec binds the volume."""
        dirs = ContainerDirs(self.home)
        found = []
        for state in dirs.all():
            saved = dirs.load_spec(state)
            if saved is not None and any(m.type == "bind" and m.source == volume.mountpoint
                                         for m in saved.spec.mounts):  # fmt: skip
                found.append(state)
        return found

    def remove(self, volume: Volume) -> None:
        """Delete *volume* and its data (the caller has seen to its ``users``)."""
        shutil.rmtree(self._dir(volume.name))
