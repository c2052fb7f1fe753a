"""The per-container state directory: ``$UNIONFS_HOME/containers/<id>/``.

It holds ``state.json`` (a ``State`` value, replaced atomically), ``spec.json`` (a
``Saved`` value: what ``unionfs start`` runs; absent for a container made without a
command), the container's ``upper`` and ``work`` directories and ``rootfs``, the mount
point of its merged tree. Names and ids are unique: a new container is registered, and a
container claimed by the runtime that starts it, under a lock. This module reads and
writes these files only; it mounts nothing and signals no process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from unionfs.errors import UserError
from unionfs.runtime import jsonvalues
from unionfs.runtime.proxy import process_start
from unionfs.runtime.spec import Process, RunSpec

NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")


def default_home() -> str:
    explicit = os.environ.get("UNIONFS_HOME")
    if explicit:
        return os.path.abspath(explicit)
    if os.geteuid() == 0:
        return "/var/lib/unionfs"
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data, "unionfs")


@dataclass(frozen=True, slots=True)
class State:
    id: str
    name: str
    created: float
    command: tuple[str, ...]
    rootfs: str  # the lower layer (host directory)
    remove: bool
    status: str = "created"  # created -> running -> exited
    pid: int | None = None  # host pid of the container's process
    pid_start: int | None = None  # its start time, so that a reused pid is not mistaken
    runtime_pid: int | None = None  # the `unionfs run` process, and its start time
    runtime_start: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    finished: float | None = None
    cgroup: tuple[tuple[str, str], ...] = ()  # Cgroup.record() items
    namespaces: tuple[str, ...] = ()
    process: Process | None = None  # what `unionfs exec` repeats: env, cwd, user, caps
    image: str | None = None  # the manifest digest of the image it was made from
    lowers: tuple[str, ...] = ()  # its layer dirs, topmost first (else: rootfs alone)

    @property
    def short_id(self) -> str:
        return self.id[:12]


@dataclass(frozen=True, slots=True)
class Saved:
    """``spec.json``: what ``unionfs start`` runs, saved by ``create`` and ``run``."""

    spec: RunSpec
    stop_timeout: float = 10.0
    runtime: str = "unionfs"  # or another OCI runtime the container is handed to (runc...)


@dataclass(frozen=True, slots=True)
class Paths:
    dir: str
    upper: str
    work: str
    rootfs: str
    state: str
    spec: str



def is_alive(state: State) -> bool:
    """The container's process still exists (and is not a reused pid)."""
    return state.pid is not None and process_start(state.pid) == state.pid_start


def runtime_alive(state: State) -> bool:
    """The `unionfs run` process that owns the container still exists."""
    pid = state.runtime_pid
    return pid is not None and process_start(pid) == state.runtime_start


def describe(state: State) -> str:
    """starting / running / exited (N) / exited (137, OOM) / dead (runtime gone)

    "dead" is a container whose runtime was killed (SIGKILL) before it could clean up:
    ``unionfs rm`` does that clean-up."""
    if state.status == "created" and state.runtime_pid is None:
        return "created"  # by `unionfs create`: no runtime, perhaps mounted
    if state.status == "exited":
        return f"exited ({state.exit_code}{', OOM' if state.oom_killed else ''})"
    if not runtime_alive(state):
        return "dead (runtime gone)"
    if state.status == "running":
        return "running" if is_alive(state) else "stopping"
    return "starting"


def _to_json(value: State | Saved) -> str:
    return json.dumps(jsonvalues.dump(value), indent=1)


def _from_json(text: str) -> State:
    return jsonvalues.load(State, json.loads(text))


class ContainerDirs:
    """The containers directory of one UNIONFS_HOME: a state dir per container."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.dir = os.path.join(home, "containers")

    def paths(self, container_id: str) -> Paths:
        d = os.path.join(self.dir, container_id)
        return Paths(d, f"{d}/upper", f"{d}/work", f"{d}/rootfs", f"{d}/state.json",
                     f"{d}/spec.json")  # fmt: skip

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.dir, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def create(self, name: str | None, command: tuple[str, ...], rootfs: str,
               remove: bool, image: str | None = None, lowers: tuple[str, ...] = (),
               runtime: bool = True) -> State:  # fmt: skip
        """Register a new container: its directory, empty upper/work/rootfs, state.json.
        With *runtime*, the calling process is recorded as the one that runs it."""
        if name is not None and not NAME.fullmatch(name):
            raise UserError(f"invalid container name {name!r}: use letters, digits, _ . - "
                            "(starting with a letter or digit)")  # fmt: skip
        with self._locked():
            container_id = secrets.token_hex(16)
            name = name or container_id[:12]
            taken = next((s for s in self.all() if s.name == name), None)
            if taken is not None:
                raise UserError(f"the name {name!r} is in use by container "
                                f"{taken.short_id} ({describe(taken)}); "
                                f"remove it with: unionfs rm {name}")  # fmt: skip
            paths = self.paths(container_id)
            os.mkdir(paths.dir, 0o700)
            for d in (paths.upper, paths.work, paths.rootfs):
                os.mkdir(d, 0o755)
            pid = os.getpid() if runtime else None
            state = State(container_id, name, time.time(), command, rootfs, remove,
                          runtime_pid=pid, runtime_start=process_start(pid) if pid else None,
                          image=image, lowers=lowers)  # fmt: skip
            self.save(state)
        return state

    def save(self, state: State) -> None:
        _replace(self.paths(state.id).state, _to_json(state))

    def save_spec(self, container_id: str, saved: Saved) -> None:
        _replace(self.paths(container_id).spec, _to_json(saved))

    def load_spec(self, state: State) -> Saved | None:
        """What ``unionfs start`` runs for *state*; None if it was made without a command."""
        try:
            with open(self.paths(state.id).spec, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return None
        try:
            return jsonvalues.load(Saved, json.loads(text))
        except ValueError as exc:  # json.JSONDecodeError is one
            raise UserError(f"container {state.name}: its spec.json is damaged ({exc})") from None

    def claim(self, container_id: str, check: Callable[[State], None]) -> tuple[State, State]:
        """Make the calling process the runtime of an existing container, if *check* (which
        raises UserError to refuse) accepts its state: (the state before, the state now)."""
        with self._locked():
            before = self.load(container_id)
            if before is None:
                raise UserError(f"no such container: {container_id}")
            check(before)
            pid = os.getpid()
            now = dataclasses.replace(
                before, status="created", pid=None, pid_start=None, runtime_pid=pid,
                runtime_start=process_start(pid), exit_code=None, oom_killed=False,
                finished=None, cgroup=(),
            )  # fmt: skip
            self.save(now)
        return before, now

    def load(self, container_id: str) -> State | None:
        try:
            with open(self.paths(container_id).state, encoding="utf-8") as f:
                return _from_json(f.read())
        except FileNotFoundError:
            return None

    def all(self) -> list[State]:
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        found = [self.load(n) for n in names if not n.startswith(".")]
        return sorted((s for s in found if s is not None), key=lambda s: s.created)

    def find(self, ref: str) -> State:
        """A container by name, id, or unique id prefix."""
        states = self.all()
        for state in states:
            if ref in (state.name, state.id):
                return state
        matches = [s for s in states if s.id.startswith(ref)] if len(ref) >= 3 else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UserError(f"{ref!r} matches {len(matches)} containers: give more of the id")
        raise UserError(f"no such container: {ref}")

    def delete(self, container_id: str) -> None:
        """Remove the directory (the caller has unmounted rootfs)."""
        paths = self.paths(container_id)
        if os.path.ismount(paths.rootfs):
            raise UserError(f"{paths.rootfs} is still mounted")
        try:
            shutil.rmtree(paths.dir, ignore_errors=False)
        except PermissionError:
            if os.geteuid() == 0:
                raise
            from unionfs.runtime import userns  # entries of the user's subordinate ids

            userns.remove_tree(paths.dir)


def _replace(path: str, text: str) -> None:
    """Write *path* whole or not at all: a temp name, then a rename over it."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
