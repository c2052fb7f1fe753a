"""A container's cgroups: one small ``Cgroup`` interface, with a v1 and a v2 implementation
(and ``NoCgroup`` for a rootless run without a delegated one); ``placement`` decides where.
Device rules: v1's devices controller; in v2 (and in the v2 directory a hybrid layout adds
to the v1 ones) a BPF device program from ``devices``.

Rules kept here: only a directory this code made is ever written to or removed (mkdir must
create it); only the pids it is given are moved; nothing of the parent cgroup is changed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from unionfs.errors import UserError
from unionfs.runtime import devices as devicepolicy
from unionfs.runtime.devices import DeviceRule

if TYPE_CHECKING:  # the spec's modules are not needed to remove a cgroup
    from unionfs.runtime.spec import Resources

ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")  # joined when present, for stats
V1_UNLIMITED = 1 << 62  # memory.limit_in_bytes at or above this means no limit
WHAT_FOR = {"memory": "--memory", "cpu": "--cpus", "pids": "--pids", "devices": "device rules",
            "cpuset": "cpuset cpus/mems", "blkio": "a block I/O weight"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CgroupStats:
    """None where the controller is absent."""

    cpu_ns: int | None = None
    memory: int | None = None
    memory_peak: int | None = None
    memory_limit: int | None = None
    pids: int | None = None
    pids_limit: int | None = None
    oom_kills: int | None = None


class Cgroup(Protocol):
    """The container's cgroup(s). Callers: ``create`` once, then ``set_limits`` before any
    process is added; ``remove`` only after the container's processes are gone (it kills
    what is left *in these cgroups*, nothing else)."""

    def create(self) -> None: ...
    def set_limits(self, resources: Resources) -> None: ...
    def add(self, pid: int) -> None: ...
    def procs(self) -> list[int]: ...
    def stats(self) -> CgroupStats: ...
    def remove(self, timeout: float = 5.0) -> None: ...
    def record(self) -> dict[str, str]: ...


def read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _read_int(path: str) -> int | None:
    text = read(path)
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _keyed(path: str, key: str) -> int | None:
    """The value of *key* in a flat-keyed file (memory.events, memory.oom_control)."""
    for line in (read(path) or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def _write(path: str, value: str) -> None:
    """Write to an existing control file (never create one: a missing file is a missing
    controller or a path that is not ours)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # as `echo >`
    except FileNotFoundError:
        raise UserError(f"cgroup file {path} does not exist (is the controller enabled?)") from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise UserError(f"cannot write {value!r} to {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _mkdir(path: str) -> None:
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        raise UserError(f"cgroup {path} already exists and was not made by this container: "
                        "refusing to use it") from None  # fmt: skip
    except OSError as exc:
        raise UserError(f"cannot create cgroup {path}: {exc.strerror}") from None


def _procs(directory: str) -> list[int]:
    text = read(os.path.join(directory, "cgroup.procs")) or ""
    return [int(line) for line in text.split()]


def _remove_dir(directory: str, deadline: float) -> None:
    """rmdir *directory* (one of ours) once empty; its remaining processes are killed."""
    while True:
        left = _procs(directory)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if left:
            _reap()
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise UserError(f"cannot remove cgroup {directory}: {exc.strerror}") from None
        time.sleep(0.01)


def _reap() -> None:
    """Collect exited children (a subreaper inherits the container's orphans)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _device_program(path: str, rules: tuple[DeviceRule, ...]) -> None:
    """The rules as a BPF device program on the v2 cgroup *path*."""
    try:
        devicepolicy.attach(path, devicepolicy.program(rules))
    except OSError as exc:
        raise UserError(f"cannot attach the device rules to cgroup {path}: {exc.strerror} "
                        "(cgroup v2 device rules are a BPF program: they need CAP_BPF and "
                        "CAP_SYS_ADMIN, and a kernel with CONFIG_CGROUP_BPF)") from None


class V1Cgroup:
    """One directory per v1 hierarchy (controller -> path of our cgroup there)."""

    version = 1

    def __init__(self, dirs: dict[str, str]) -> None:
        self.dirs = dirs
        # The directories this object made; None when it was read from a container's state
        # (which records only directories that were made).
        self._made: list[str] | None = None

    def create(self) -> None:
        self._made = []
        try:
            for path in dict.fromkeys(self.dirs.values()):  # cpu,cpuacct may share one
                _mkdir(path)
                self._made.append(path)
        except BaseException:
            self.remove()
            raise

    def set_limits(self, resources: Resources) -> None:
        r = resources
        memory, cpu = self.dirs.get("memory", ""), self.dirs.get("cpu", "")
        if r.memory is not None:
            _write(f"{memory}/memory.limit_in_bytes", str(r.memory))
        if (r.memory is not None or r.memory_swap is not None) and os.path.exists(
                f"{memory}/memory.memsw.limit_in_bytes"):  # fmt: skip
            # memory + swap; without a swap setting, no swap beyond the memory limit
            swap = r.memory_swap if r.memory_swap is not None else r.memory
            _write(f"{memory}/memory.memsw.limit_in_bytes", str(swap))
        for name, value in (("memory.soft_limit_in_bytes", r.memory_reservation),
                            ("memory.swappiness", r.memory_swappiness),
                            ("memory.oom_control", 1 if r.oom_kill_disable else None)):
            if value is not None:
                _write(f"{memory}/{name}", str(value))
        if r.cpu_quota is not None:
            period = r.cpu_period or 100_000
            _write(f"{cpu}/cpu.cfs_period_us", str(period))
            _write(f"{cpu}/cpu.cfs_quota_us", str(r.cpu_quota))
        if r.cpu_shares is not None:
            _write(f"{cpu}/cpu.shares", str(r.cpu_shares))
        for name, text in (("cpuset.cpus", r.cpuset_cpus), ("cpuset.mems", r.cpuset_mems)):
            if "cpuset" in self.dirs:  # a new v1 cpuset has none: the parent's, as runc
                parent = read(f"{os.path.dirname(self.dirs['cpuset'])}/{name}") or ""
                _write(f"{self.dirs['cpuset']}/{name}", text if text is not None else parent)
        if r.blkio_weight is not None:
            blkio = self.dirs["blkio"]
            weight = "blkio.weight" if os.path.exists(f"{blkio}/blkio.weight") else \
                "blkio.bfq.weight"  # fmt: skip
            _write(f"{blkio}/{weight}", str(r.blkio_weight))
        if r.pids is not None:
            _write(f"{self.dirs['pids']}/pids.max", str(r.pids))
        if r.devices is not None:
            devices = self.dirs["devices"]
            for rule in r.devices:
                kind = "allow" if rule.allow else "deny"
                _write(f"{devices}/devices.{kind}", devicepolicy.v1_line(rule))
            if "unified" in self.dirs:  # hybrid: the v2 hierarchy checks them too
                _device_program(self.dirs["unified"], r.devices)

    def add(self, pid: int) -> None:
        for path in dict.fromkeys(self.dirs.values()):
            _write(f"{path}/cgroup.procs", str(pid))

    def procs(self) -> list[int]:
        return sorted({pid for path in self.dirs.values() for pid in _procs(path)})

    def stats(self) -> CgroupStats:
        memory, pids = self.dirs.get("memory"), self.dirs.get("pids")
        cpuacct = self.dirs.get("cpuacct")
        limit = _read_int(f"{memory}/memory.limit_in_bytes") if memory else None
        pids_max = read(f"{pids}/pids.max") if pids else None
        return CgroupStats(
            cpu_ns=_read_int(f"{cpuacct}/cpuacct.usage") if cpuacct else None,
            memory=_read_int(f"{memory}/memory.usage_in_bytes") if memory else None,
            memory_peak=_read_int(f"{memory}/memory.max_usage_in_bytes") if memory else None,
            memory_limit=limit if limit is not None and limit < V1_UNLIMITED else None,
            pids=_read_int(f"{pids}/pids.current") if pids else None,
            pids_limit=int(pids_max) if pids_max and pids_max.isdigit() else None,
            oom_kills=_keyed(f"{memory}/memory.oom_control", "oom_kill") if memory else None,
        )

    def remove(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        made = list(dict.fromkeys(self.dirs.values())) if self._made is None else self._made
        for path in reversed(made):
            _remove_dir(path, deadline)
        self._made = []

    def record(self) -> dict[str, str]:
        return {"version": "1", **self.dirs}


class V2Cgroup:
    """One directory in the unified hierarchy."""

    version = 2

    def __init__(self, path: str) -> None:
        self.path = path

    def create(self) -> None:
        _mkdir(self.path)

    def set_limits(self, resources: Resources) -> None:
        r = resources
        if r.memory_swappiness is not None or r.oom_kill_disable:
            raise UserError("memory swappiness and disableOOMKiller have no cgroup v2 "
                            "equivalent")  # fmt: skip
        if r.memory is not None:
            _write(f"{self.path}/memory.max", str(r.memory))
        if os.path.exists(f"{self.path}/memory.swap.max") and r.memory is not None:
            swap = "max" if r.memory_swap == -1 else str(
                (r.memory_swap or r.memory) - r.memory)  # fmt: skip
            _write(f"{self.path}/memory.swap.max", swap)
        if r.memory_reservation is not None:
            _write(f"{self.path}/memory.low", str(r.memory_reservation))
        if r.cpu_quota is not None:
            period = r.cpu_period or 100_000
            _write(f"{self.path}/cpu.max", f"{r.cpu_quota} {period}")
        if r.cpu_shares is not None:  # runc's conversion of shares (2-262144) to a weight
            _write(f"{self.path}/cpu.weight", str(1 + (r.cpu_shares - 2) * 9999 // 262142))
        for name, text in (("cpuset.cpus", r.cpuset_cpus), ("cpuset.mems", r.cpuset_mems)):
            if text is not None:
                _write(f"{self.path}/{name}", text)
        if r.blkio_weight is not None:
            _write(f"{self.path}/io.bfq.weight", str(r.blkio_weight))
        if r.pids is not None:
            _write(f"{self.path}/pids.max", str(r.pids))
        if r.devices is not None:
            _device_program(self.path, r.devices)

    def add(self, pid: int) -> None:
        _write(f"{self.path}/cgroup.procs", str(pid))

    def procs(self) -> list[int]:
        return sorted(_procs(self.path))

    def stats(self) -> CgroupStats:
        usage = _keyed(f"{self.path}/cpu.stat", "usage_usec")
        limit = read(f"{self.path}/memory.max")
        pids_max = read(f"{self.path}/pids.max")
        return CgroupStats(
            cpu_ns=usage * 1000 if usage is not None else None,
            memory=_read_int(f"{self.path}/memory.current"),
            memory_peak=_read_int(f"{self.path}/memory.peak"),
            memory_limit=int(limit) if limit and limit.isdigit() else None,
            pids=_read_int(f"{self.path}/pids.current"),
            pids_limit=int(pids_max) if pids_max and pids_max.isdigit() else None,
            oom_kills=_keyed(f"{self.path}/memory.events", "oom_kill"),
        )

    def remove(self, timeout: float = 5.0) -> None:
        _remove_dir(self.path, time.monotonic() + timeout)

    def record(self) -> dict[str, str]:
        return {"version": "2", "path": self.path}


class NoCgroup:
    """No cgroup at all: a rootless container without a delegated cgroup (no limits, no
    stats). Every call does nothing."""

    version = 0

    def create(self) -> None:
        pass

    def set_limits(self, resources: Resources) -> None:
        pass

    def add(self, pid: int) -> None:
        pass

    def procs(self) -> list[int]:
        return []

    def stats(self) -> CgroupStats:
        return CgroupStats()

    def remove(self, timeout: float = 5.0) -> None:
        pass

    def record(self) -> dict[str, str]:
        return {"version": "none"}


def from_record(record: dict[str, str]) -> Cgroup:
    """The cgroup of a container from its saved state (for stats, exec, clean-up)."""
    fields = dict(record)
    version = fields.pop("version", None)
    if version == "none":
        return NoCgroup()
    if version == "2":
        return V2Cgroup(fields["path"])
    return V1Cgroup(fields)
