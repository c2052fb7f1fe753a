"""``unionfs top C [DESCRIPTOR...]``: the processes of a running container as ``podman
top`` shows them (psgo's descriptors; default ``user pid ppid pcpu etime tty time args``),
pids as the container sees them. Descriptors may be given as words or comma-separated.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable

from unionfs.cli import imageconfig, report
from unionfs.errors import UserError
from unionfs.runtime import procs
from unionfs.runtime.enter import running
from unionfs.runtime.procs import Proc
from unionfs.runtime.state import ContainerDirs, default_home

DEFAULT = ("user", "pid", "ppid", "pcpu", "etime", "tty", "time", "args")


def go_duration(seconds: float, whole: bool = False) -> str:
    """Go's time.Duration.String (``18.187558429s``, ``1m2.5s``, ``2h0m0s``); *whole*:
    truncated to seconds first, as psgo's TIME."""
    nanos = int(seconds) * 10**9 if whole else round(seconds * 1e9)
    if nanos == 0:
        return "0s"
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    secs = f"{rest // 10**9}" + (f".{rest % 10**9:09d}".rstrip("0") if rest % 10**9 else "")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    if nanos < 10**9:  # Go shows ms, µs, ns below a second
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if nanos >= size:
                value = f"{nanos // size}" + (f".{nanos % size:0{len(str(size)) - 1}d}"
                                              .rstrip("0") if nanos % size else "")  # fmt: skip
                return value.rstrip(".") + unit
    return f"{secs}s"


def _names(text: bytes) -> dict[int, str]:
    found: dict[int, str] = {}
    for line in text.decode(errors="replace").splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[2].isdigit():
            found.setdefault(int(parts[2]), parts[0])
    return found


def _table(proc_root: str, layers: tuple[str, ...], path: str) -> dict[int, str]:
    """The container's /etc/passwd or /etc/group: through /proc/PID/root (root), else
    (rootless: the container's root is out of an ordinary user's reach) as its upper and
    layers show it."""
    with contextlib.suppress(OSError), open(f"{proc_root}/{path}", "rb") as f:
        return _names(f.read())
    return _names(imageconfig.read_file(layers, path) or b"") if layers else {}


Column = tuple[str, Callable[[Proc], str]]  # header, value


def _columns(proc_root: str, layers: tuple[str, ...] = ()) -> dict[str, Column]:
    users = _table(proc_root, layers, "etc/passwd")
    groups = _table(proc_root, layers, "etc/group")

    def name(table: dict[int, str], value: int) -> str:
        return table.get(value, str(value))

    return {
        "args": ("COMMAND", lambda p: " ".join(p.args) or f"[{p.comm}]"),
        "comm": ("COMMAND", lambda p: p.comm),
        "etime": ("ELAPSED", lambda p: go_duration(p.elapsed)),
        "group": ("GROUP", lambda p: name(groups, p.gid)),
        "hpid": ("HPID", lambda p: str(p.host_pid)),
        "huser": ("HUSER", lambda p: str(p.host_uid)),
        "pcpu": ("%CPU", lambda p: f"{100 * p.cpu / p.elapsed if p.elapsed else 0:.3f}"),
        "pid": ("PID", lambda p: str(p.pid)),
        "ppid": ("PPID", lambda p: str(p.ppid)),
        "state": ("STATE", lambda p: p.state),
        "time": ("TIME", lambda p: go_duration(p.cpu, whole=True)),
        "tty": ("TTY", lambda p: p.tty),
        "user": ("USER", lambda p: name(users, p.uid)),
        "vsz": ("VSZ", lambda p: str(p.vsz)),
    }  # fmt: skip


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("top", help="show the processes of a running container",
                       description=__doc__)  # fmt: skip
    p.add_argument("container", metavar="C", help="name or id")
    p.add_argument("descriptors", nargs="*", metavar="DESCRIPTOR",
                   help=f"columns: {', '.join(sorted(_columns('/nonexistent')))}")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    dirs = ContainerDirs(default_home())
    state = running(dirs, args.container)
    assert state.pid is not None
    layers = (dirs.paths(state.id).upper, *(state.lowers or (state.rootfs,)))
    columns = _columns(f"/proc/{state.pid}/root", layers)
    wanted = [d for word in args.descriptors for d in word.split(",") if d] or list(DEFAULT)
    for descriptor in wanted:
        if descriptor not in columns:
            raise UserError(f"top: unknown descriptor {descriptor!r}: give "
                            f"{', '.join(sorted(columns))}", exit_code=2)  # fmt: skip
    try:
        found = procs.of_container(state.pid)
    except OSError as exc:
        raise UserError(f"container {state.name}: cannot read its processes: "
                        f"{exc.strerror}") from None  # fmt: skip
    lines = ["\t".join(columns[d][0] for d in wanted)]
    lines += ["\t".join(columns[d][1](p) for d in wanted) for p in found]
    print(report.tabwriter("\n".join(lines) + "\n"), end="")
    return 0
