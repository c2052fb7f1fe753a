"""The processes of a running container, read from the host's /proc: those in its PID
namespace, each with its pid and parent as the container sees them, its user as the
container's ids (through the namespace's uid_map), times and terminal. Reads only; what
``unionfs top`` prints of them is the CLI's."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass

HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Proc:
    host_pid: int
    pid: int  # in the container's PID namespace
    ppid: int  # likewise; 0 when the parent is outside it
    uid: int  # as the container sees it (-1: not mapped)
    gid: int
    host_uid: int
    comm: str
    args: tuple[str, ...]
    state: str
    tty: str  # "?" or "pts/N"
    elapsed: float  # seconds since it started
    cpu: float  # user + system seconds
    vsz: int  # KiB


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _inside(value: int, mapping: list[tuple[int, int, int]]) -> int:
    for inner, outer, count in mapping:
        if outer <= value < outer + count:
            return inner + value - outer
    return -1


def _map(pid: int, kind: str) -> list[tuple[int, int, int]]:
    with open(f"/proc/{pid}/{kind}_map", encoding="ascii") as f:
        return [(int(a), int(b), int(c)) for a, b, c in (line.split() for line in f)]


def _tty(nr: int) -> str:
    major, minor = (nr >> 8) & 0xFFF, (nr & 0xFF) | ((nr >> 12) & 0xFFF00)
    if nr == 0:
        return "?"
    return f"pts/{minor}" if 136 <= major <= 143 else f"tty{minor}"


def of_container(pid: int) -> list[Proc]:
    """The processes in the PID namespace of the container whose first process is *pid*,
    by their pid there."""
    target = os.readlink(f"/proc/{pid}/ns/pid")
    level = len(_status(pid)["NSpid"].split()) - 1
    uids, gids = _map(pid, "uid"), _map(pid, "gid")
    with open("/proc/uptime", encoding="ascii") as f:
        uptime = float(f.read().split()[0])
    found: list[tuple[Proc, int]] = []
    inner_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        host = int(entry)
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            if os.readlink(f"/proc/{host}/ns/pid") != target:
                continue
            status = _status(host)
            with open(f"/proc/{host}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
            with open(f"/proc/{host}/cmdline", "rb") as f:
                args = tuple(a.decode(errors="replace") for a in f.read().split(b"\0")[:-1])
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
            inner = int(status["NSpid"].split()[level])
            inner_of[host] = inner
            host_uid = int(status["Uid"].split()[0])
            proc = Proc(host, inner, 0, _inside(host_uid, uids),
                        _inside(int(status["Gid"].split()[0]), gids), host_uid, comm, args,
                        fields[0], _tty(int(fields[4])),
                        max(0.0, uptime - int(fields[19]) / HZ),
                        (int(fields[11]) + int(fields[12])) / HZ,
                        int(fields[20]) // 1024)  # fmt: skip
            found.append((proc, int(fields[1])))
    result = [dataclasses.replace(p, ppid=inner_of.get(parent, 0)) for p, parent in found]
    return sorted(result, key=lambda p: p.pid)
