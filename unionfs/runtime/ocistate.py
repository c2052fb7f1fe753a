"""The OCI runtime's record of each container: ``ROOT/ID/state.json``, written atomically.

Also the directory's other entries, ``spec.json`` (the parsed config: what ``exec``
repeats) and ``start.sock`` (what ``start`` connects to), and the OCI state document
(``state``, and the hooks' stdin). The status is derived, not trusted: a record says
creating/created/running, and a process that is gone (or a zombie) makes it stopped
whatever the record says. This module reads and writes these files only, and imports
nothing of the spec's (``start``, ``kill``, ``delete`` and ``state`` are run for every
container podman runs: their start-up time counts).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shutil
import typing
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.runtime import jsonvalues
from unionfs.runtime.proxy import process_start

if typing.TYPE_CHECKING:
    from unionfs.runtime.spec import RunSpec

OCI_VERSION = "1.0.2"
ID = re.compile(r"[\w+.-]{1,1024}")


def in_user_namespace() -> bool:
    """Whether this process runs in a user namespace other than the initial one (as under
    rootless podman, where it is "root" without being the host's)."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False


def default_root() -> str:
    """runc's convention: /run/NAME as the host's root, $XDG_RUNTIME_DIR/NAME otherwise
    (for a user, and for root in a user's namespace)."""
    if os.geteuid() == 0 and not in_user_namespace():
        return "/run/unionfs-runtime"
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/unionfs-runtime-{os.getuid()}"
    return os.path.join(base, "unionfs-runtime")


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    bundle: str
    rootfs: str
    created: float
    status: str = "creating"  # creating -> created -> running (stopped is derived)
    pid: int | None = None  # host pid of the container's process
    pid_start: int | None = None  # its start time: a reused pid is not mistaken for it
    cgroup: tuple[tuple[str, str], ...] = ()  # Cgroup.record() of the cgroups made for it
    annotations: tuple[tuple[str, str], ...] = ()
    hooks: str = ""  # config.json's hooks (JSON), when there are any to run after create


def _alive(pid: int, start: int | None) -> bool:
    """*pid* is still the process that started at *start*, and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0] not in (b"Z", b"X") and process_start(pid) == start


def status(container: Container) -> str:
    if container.pid is None:
        return "creating"
    if not _alive(container.pid, container.pid_start):
        return "stopped"
    return container.status


def document(container: Container, status_now: str | None = None) -> dict[str, object]:
    """The OCI state of *container* (runtime-spec's state.md, with runc's extra fields)."""
    now = status_now or status(container)
    created = datetime.datetime.fromtimestamp(container.created, datetime.UTC)
    doc: dict[str, object] = {
        "ociVersion": OCI_VERSION,
        "id": container.id,
        "status": now,
        "pid": container.pid if now in ("created", "running", "creating") and container.pid
        else 0,
        "bundle": container.bundle,
        "rootfs": container.rootfs,
        "created": created.isoformat().replace("+00:00", "Z"),
        "owner": "",
    }
    if container.annotations:
        doc["annotations"] = dict(container.annotations)
    return doc


class Root:
    """The ``--root`` directory: one subdirectory per container id."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def dir(self, container_id: str) -> str:
        if not ID.fullmatch(container_id) or container_id in (".", ".."):
            raise UserError(f"invalid container id {container_id!r}: use letters, digits, "
                            "_ + - .")  # fmt: skip
        return os.path.join(self.path, container_id)

    def make(self, container_id: str) -> str:
        """A new container's directory; an id in use is an error."""
        path = self.dir(container_id)
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            raise UserError(f"container with id {container_id!r} already exists") from None
        return path

    def load(self, container_id: str) -> Container:
        path = os.path.join(self.dir(container_id), "state.json")
        try:
            with open(path, encoding="utf-8") as f:
                return jsonvalues.load(Container, json.load(f))
        except FileNotFoundError:
            raise UserError(f"container {container_id!r} does not exist") from None
        except ValueError as exc:
            raise UserError(f"container {container_id!r}: damaged state ({exc})") from None

    def save(self, container: Container) -> None:
        _write(os.path.join(self.dir(container.id), "state.json"), jsonvalues.dump(container))

    def save_spec(self, container_id: str, spec: RunSpec) -> None:
        _write(os.path.join(self.dir(container_id), "spec.json"), jsonvalues.dump(spec))

    def load_spec(self, container_id: str) -> RunSpec:
        from unionfs.runtime.spec import RunSpec

        try:
            with open(os.path.join(self.dir(container_id), "spec.json"), encoding="utf-8") as f:
                return jsonvalues.load(RunSpec, json.load(f))
        except FileNotFoundError:
            raise UserError(f"container {container_id!r} does not exist") from None
        except ValueError as exc:
            raise UserError(f"container {container_id!r}: damaged spec ({exc})") from None

    def remove(self, container_id: str) -> None:
        shutil.rmtree(self.dir(container_id), ignore_errors=False)

    def ids(self) -> list[str]:
        with contextlib.suppress(FileNotFoundError):
            return sorted(n for n in os.listdir(self.path) if ID.fullmatch(n))
        return []


def _write(path: str, value: object) -> None:
    """Replace *path* whole with *value* as JSON: a temporary file, fsync, rename."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(value).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_pid_file(path: str, pid: int) -> None:
    """*pid* into *path* (conmon reads it), whole or not at all."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="ascii") as f:
        f.write(str(pid))
    os.replace(tmp, path)
