"""The steps of a container's set-up, as frozen values, and their JSON form (a plan crosses
an exec as JSON). Pure data: ``plan`` decides which steps and in what order, ``executor``
performs them. A step names what to do, never how to decide it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import ClassVar

from unionfs.runtime import jsonvalues


class Step:
    """Base of the step values; ``REGISTRY`` maps names to classes for (de)serialising."""

    __slots__ = ()
    REGISTRY: ClassVar[dict[str, type[Step]]] = {}

    def __init_subclass__(cls) -> None:
        Step.REGISTRY[cls.__name__] = cls


# -- the steps -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Unshare(Step):
    flags: int


@dataclass(frozen=True, slots=True)
class SetNs(Step):
    path: str  # /proc/PID/ns/KIND
    kind: str


@dataclass(frozen=True, slots=True)
class Fork(Step):
    """The helper forks; it reports the child's (host) pid and exits. Needed after a PID
    namespace is created or joined: only children enter it."""


@dataclass(frozen=True, slots=True)
class AwaitGo(Step):
    """Wait until the runtime says go (it has put this process into its cgroups)."""

    tag: str


@dataclass(frozen=True, slots=True)
class NewSession(Step):
    """setsid(): no controlling terminal; /dev/tty then reaches none of the caller's."""


@dataclass(frozen=True, slots=True)
class Terminal(Step):
    """A pty from the container's devpts becomes the controlling terminal and fds 0-2; its
    master goes to the runtime (message ``pty``). The slave is given to *uid*; with
    *console* it is also bound onto /dev/console."""

    uid: int
    console: bool


@dataclass(frozen=True, slots=True)
class MakeRprivate(Step):
    """mount --make-rprivate /: nothing mounted here propagates back to the host."""


@dataclass(frozen=True, slots=True)
class Mount(Step):
    root: str
    target: str  # inside root
    source: str  # a bind's source is a host path
    fstype: str
    flags: int
    data: str = ""
    kind: str = "dir"  # what to create at target: dir, file, or as the bind source is: auto


@dataclass(frozen=True, slots=True)
class Remount(Step):
    """Change the flags of the mount at target (a bind's ro/nosuid/nodev/noexec)."""

    root: str
    target: str
    flags: int


@dataclass(frozen=True, slots=True)
class Propagation(Step):
    root: str
    target: str
    flags: int


@dataclass(frozen=True, slots=True)
class MakeDir(Step):
    root: str
    target: str


@dataclass(frozen=True, slots=True)
class Symlink(Step):
    root: str
    target: str  # the link's text
    link: str  # inside root


@dataclass(frozen=True, slots=True)
class PivotRoot(Step):
    root: str


@dataclass(frozen=True, slots=True)
class MaskPath(Step):
    path: str


@dataclass(frozen=True, slots=True)
class ReadonlyPath(Step):
    path: str


@dataclass(frozen=True, slots=True)
class ReadonlyRoot(Step):
    pass


@dataclass(frozen=True, slots=True)
class SetHostname(Step):
    name: str


@dataclass(frozen=True, slots=True)
class SetDomainname(Step):
    name: str


@dataclass(frozen=True, slots=True)
class LoopbackUp(Step):
    pass


@dataclass(frozen=True, slots=True)
class Sysctl(Step):
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class SetRlimit(Step):
    resource: str
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class OomScoreAdj(Step):
    value: int


@dataclass(frozen=True, slots=True)
class Umask(Step):
    mask: int


@dataclass(frozen=True, slots=True)
class Chdir(Step):
    path: str


@dataclass(frozen=True, slots=True)
class DropBounding(Step):
    keep: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SetUser(Step):
    uid: int
    gid: int
    groups: tuple[int, ...]
    keep_caps: bool


@dataclass(frozen=True, slots=True)
class SetCapabilities(Step):
    effective: tuple[int, ...]
    permitted: tuple[int, ...]
    inheritable: tuple[int, ...]
    ambient: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class NoNewPrivileges(Step):
    pass


@dataclass(frozen=True, slots=True)
class Seccomp(Step):
    """Install the seccomp filter: *program*, the BPF bytes in hex (``seccompbpf``)."""

    program: str
    flags: int


@dataclass(frozen=True, slots=True)
class Exec(Step):
    args: tuple[str, ...]
    env: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rendezvous(Step):
    """Tell the runtime ``ready TAG`` and wait for ``go TAG`` (it runs the createRuntime
    hooks meanwhile); the answer may carry the container's OCI state for later hooks."""

    tag: str


@dataclass(frozen=True, slots=True)
class Hook:
    """One OCI hook: *path* run with *args* (argv, the first is argv[0]) and *env*, the
    container's state on stdin, killed after *timeout* seconds (None: no limit)."""

    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None


@dataclass(frozen=True, slots=True)
class RunHooks(Step):
    """Run *hooks* here (createContainer, startContainer: in the container's namespaces),
    the state the runtime sent on stdin with *status* and this process's pid."""

    kind: str
    hooks: tuple[Hook, ...]
    status: str


@dataclass(frozen=True, slots=True)
class CheckExecutable(Step):
    """Fail now (127) if *name* cannot be found through the PATH of *env*: a create-time
    error, as runc reports it, not one after ``start``."""

    name: str
    env: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AwaitStart(Step):
    """Say ``ready start`` on the channel, then wait for ``start`` to connect to the
    listening socket *fd* (inherited); the connection replaces the channel, so that a later
    failure is told to ``start``. The create-then-start split (runc's exec fifo)."""

    fd: int


# -- (de)serialising: the plan crosses an exec as JSON -------------------------------------
def dumps(steps: tuple[Step, ...]) -> bytes:
    items = [{"step": type(s).__name__, **dataclasses.asdict(s)} for s in steps]  # type: ignore[call-overload]
    return json.dumps(items).encode()


def loads(data: bytes) -> tuple[Step, ...]:
    steps = []
    for item in json.loads(data):
        cls = Step.REGISTRY[item.pop("step")]
        steps.append(jsonvalues.load(cls, item))
    return tuple(steps)
