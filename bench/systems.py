"""The systems under test and how to mount each: one ``System`` per line of ``SYSTEMS``.

Owns mounting and unmounting. Every FUSE peer runs in the foreground as our own child, so
its pid is known, it is waited for, and it is only ever signalled by that pid. Every mount
is undone in ``finally``: ``fusermount3 -u`` then ``-uz`` for FUSE, ``umount`` then
``umount -l`` for the kernel. Must not know about workloads or timing tables.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MOUNT_TIMEOUT = 60.0
EXIT_TIMEOUT = 10.0
LOG_PROBLEM = re.compile(r"ERROR|CRITICAL|Traceback|Exception")


@dataclass(frozen=True, slots=True)
class MountArgs:
    lowers: tuple[Path, ...]  # top first
    upper: Path
    work: Path
    mnt: Path
    log: Path
    place: Path  # this mount's own directory, removed after it
    state: Path  # kept between mounts and runs (in the stack cache): e.g. unionfs's index


@dataclass(frozen=True, slots=True)
class System:
    name: str
    kind: str  # "fuse" or "kernel"
    command: Callable[[MountArgs], list[str]]  # FUSE: runs in the foreground until unmounted
    version: tuple[str, ...]  # the command that prints its version
    flavor: str = "overlay"  # whiteouts it reads: "overlay" (chr 0/0) or "unionfs-fuse"
    max_lowers: int | None = None
    default: bool = True
    quiet: bool = False  # its stderr goes to /dev/null, not to the log (see unionfs-fuse)
    copy_up: bool = True  # False: writes would change the lower layers, so none are run
    note: str = ""


def _lowerdir(args: MountArgs) -> str:
    return ",".join(
        [
            "lowerdir=" + ":".join(str(p) for p in args.lowers),
            f"upperdir={args.upper}",
            f"workdir={args.work}",
        ]
    )


# An opt-in system "unionfs-before": another checkout of unionfs (e.g. a worktree of main),
# run by the same interpreter and venv, measured side by side with this one in one run.
BEFORE_ENV = "UNIONFS_BENCH_BEFORE"


def _unionfs(name: str, index: str, default: bool = True, checkout: str | None = None,
             zygote: bool = False, extra: str = "") -> System:
    """unionfs with its index *index*: "kept" (in the bench cache, reused by every later
    mount of the same stack, as a user's would be), "fresh" (built anew at each mount) or
    "off" (the layer directories served directly). With *checkout*, the unionfs of that
    source tree (first on PYTHONPATH), with an index of its own. With *zygote*, started
    through its zygote (unionfs's default; the others run with UNIONFS_ZYGOTE=0: our child
    is the zygote's client, which relays signals to the worker serving; the zygote leaves
    by itself when idle)."""

    def command(args: MountArgs) -> list[str]:
        kept = args.state / ("unionfs-index" if checkout is None else f"{name}-index")
        where = {"kept": kept, "fresh": args.place / "index"}
        opts = ",".join([_lowerdir(args), f"indexdir={where.get(index, 'off')}",
                         *([extra] if extra else [])])  # fmt: skip
        # By interpreter, never by the name "unionfs": /usr/bin/unionfs is unionfs-fuse.
        # The zygote is unionfs's default: every system but unionfs-zygote turns it off.
        env = ["env", f"UNIONFS_ZYGOTE={int(zygote)}"]
        if checkout is not None:
            env.append(f"PYTHONPATH={checkout}")
        return [*env, sys.executable, "-m", "unionfs", "mount", "-f", "--log", str(args.log),
                "-o", opts, str(args.mnt)]  # fmt: skip

    notes = {
        "kept": "LMDB index kept in the bench cache: built by the first mount of a stack "
        "(the merged-view check), reused later; every mount fingerprints the layers",
        "fresh": "LMDB index built anew by every mount (in the mount's scratch dir)",
        "off": "-o indexdir=off: the layer directories served directly",
    }
    note = notes[index] if checkout is None else f"{notes[index]}; the unionfs of {checkout}"
    if zygote:
        note += "; started by a fork of the resident zygote (UNIONFS_ZYGOTE=1)"
    if extra:
        note += f"; -o {extra}"
    return System(name, "fuse", command, (sys.executable, "-m", "unionfs", "--version"),
                  default=default, note=note)  # fmt: skip


def compile_sources() -> None:
    """Byte-compile the unionfs trees measured, as an installed package is: with
    PYTHONDONTWRITEBYTECODE set (as in CI) every start would compile them again."""
    import compileall

    import unionfs

    for tree in (os.path.dirname(unionfs.__file__), os.environ.get(BEFORE_ENV)):
        if tree:
            compileall.compile_dir(tree, quiet=1)


def _kernel(args: MountArgs) -> list[str]:
    # Relative lower names (mount runs in their common parent): 500 absolute paths would
    # pass the one-page limit of the legacy mount(2) options.
    if len({p.parent for p in args.lowers}) == 1:
        lowers = ":".join(p.name for p in args.lowers)
    else:
        lowers = ":".join(str(p) for p in args.lowers)
    opts = f"lowerdir={lowers},upperdir={args.upper},workdir={args.work}"
    return ["mount", "-t", "overlay", "overlay", "-o", opts, str(args.mnt)]


def _fuse_overlayfs(args: MountArgs) -> list[str]:
    return ["fuse-overlayfs", "-f", "-o", _lowerdir(args), str(args.mnt)]


def _branches(args: MountArgs) -> str:
    return ":".join([f"{args.upper}=RW", *(f"{p}=RO" for p in args.lowers)])


def _unionfs_fuse(args: MountArgs) -> list[str]:
    return ["/usr/bin/unionfs", "-f", "-o", "cow,hide_meta_files", _branches(args), str(args.mnt)]


def _mergerfs(args: MountArgs) -> list[str]:
    return ["mergerfs", "-f", "-o", "category.create=ff", _branches(args), str(args.mnt)]


# The order is the table's column order; a variant is one more line.
SYSTEMS: list[System] = [
    _unionfs("unionfs", "kept"),
    _unionfs("unionfs-noindex", "off"),
    _unionfs("unionfs-freshindex", "fresh", default=False),
    _unionfs("unionfs-zygote", "kept", default=False, zygote=True),
    _unionfs("unionfs-passthrough", "kept", default=False, extra="passthrough"),
    *([_unionfs("unionfs-before", "kept", default=False, checkout=os.environ[BEFORE_ENV])]
      if os.environ.get(BEFORE_ENV) else []),
    System("kernel", "kernel", _kernel, ("uname", "-r"), max_lowers=500,
           note="kernel overlayfs, module defaults (redirect_dir=off: dir rename is EXDEV)"),
    System("fuse-overlayfs", "fuse", _fuse_overlayfs, ("fuse-overlayfs", "--version")),
    System("unionfs-fuse", "fuse", _unionfs_fuse, ("/usr/bin/unionfs", "--version"),
           flavor="unionfs-fuse", quiet=True,
           note="-o cow,hide_meta_files; reads its own .unionfs-fuse/*_HIDDEN~ whiteouts"),
    System("mergerfs", "fuse", _mergerfs, ("mergerfs", "--version"), default=False,
           copy_up=False, note="not an overlay: no whiteouts (deleted files show), no copy-up"),
]  # fmt: skip


def by_name(names: list[str]) -> list[System]:
    known = {s.name: s for s in SYSTEMS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"bench: unknown system {unknown[0]!r} (known: {', '.join(known)})")
    return [known[n] for n in names]


# -- mounting ------------------------------------------------------------------------------


class MountError(Exception):
    pass


def mounts_under(base: Path) -> list[str]:
    """Mount points at or below *base*, deepest last, from /proc/self/mountinfo."""
    prefix = str(base).rstrip("/") + "/"
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])
            if point == str(base) or point.startswith(prefix):
                points.append(point)
    return points


def is_mounted(mnt: Path) -> bool:
    return str(mnt) in mounts_under(mnt)


@dataclass
class Mounted:
    system: System
    mnt: Path
    mount_seconds: float
    proc: subprocess.Popen[bytes] | None  # the FUSE daemon; None for the kernel
    log: Path

    def daemon_cpu(self) -> float | None:
        """User + system CPU seconds the daemon has used so far (None for the kernel)."""
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self) -> str | None:
        """None if the mount still serves; else what went wrong."""
        if self.proc is not None and self.proc.poll() is not None:
            return f"daemon exited with status {self.proc.returncode}"
        if not is_mounted(self.mnt):
            return "mount disappeared"
        return None

    def log_problems(self) -> list[str]:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if LOG_PROBLEM.search(line)][:20]


@contextmanager
def mounted(
    system: System, lowers: tuple[Path, ...], place: Path, state: Path,
    env: dict[str, str] | None = None,
) -> Iterator[Mounted]:
    """Mount *lowers* with a fresh upper and work dir under *place*; unmount on the way out."""
    upper, work, mnt = place / "upper", place / "work", place / "mnt"
    for d in (upper, work, mnt):
        d.mkdir(parents=True)
    log = place / "daemon.log"
    state.mkdir(parents=True, exist_ok=True)
    args = MountArgs(lowers, upper, work, mnt, log, place, state)
    argv = system.command(args)
    proc = None
    with open(log, "ab") as log_file:
        try:
            start = time.perf_counter()
            if system.kind == "kernel":
                done = subprocess.run(
                    argv,
                    cwd=lowers[0].parent,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
                if done.returncode != 0:
                    raise MountError(_tail(log) or f"mount exited {done.returncode}")
            else:
                err = subprocess.DEVNULL if system.quiet else log_file
                proc = subprocess.Popen(
                    argv,
                    cwd="/",
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=err,
                    start_new_session=True,
                    env=env,
                )
                _wait_live(proc, mnt, log)
            m = Mounted(system, mnt, time.perf_counter() - start, proc, log)
            yield m
        finally:
            unmount(system, mnt, proc)


def _wait_live(proc: subprocess.Popen[bytes], mnt: Path, log: Path) -> None:
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while not os.path.ismount(mnt):
        if proc.poll() is not None:
            raise MountError(_tail(log) or f"daemon exited {proc.returncode} before mounting")
        if time.monotonic() > deadline:
            raise MountError(f"not mounted after {MOUNT_TIMEOUT:.0f} s")
        time.sleep(0.002)


def unmount(system: System, mnt: Path, proc: subprocess.Popen[bytes] | None) -> None:
    """Unmount (politely, then lazily) and wait for the daemon; kill it by pid if it stays."""
    tries = (
        [["umount"], ["umount", "-l"]]
        if system.kind == "kernel"
        else [["fusermount3", "-u"], ["fusermount3", "-uz"]]
    )
    for cmd in tries:
        if not is_mounted(mnt):
            break
        subprocess.run([*cmd, str(mnt)], capture_output=True, check=False)
    if proc is None:
        return
    try:
        proc.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            proc.send_signal(sig)
            try:
                proc.wait(EXIT_TIMEOUT)
                break
            except subprocess.TimeoutExpired:
                continue


def _tail(log: Path, lines: int = 1) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def remove_place(place: Path) -> bool:
    """Remove a measurement's directory unless something is still mounted in it."""
    left = mounts_under(place)
    if left:
        print(f"bench: not removing {place}: still mounted: {left}", file=sys.stderr)
        return False
    shutil.rmtree(place, ignore_errors=True)
    return True


def abort_fuse(mnt: Path) -> bool:
    """Abort a hung FUSE connection (its requests fail with ENOTCONN), found via mountinfo.

    For a command stuck in a request that SIGKILL cannot end; never stats *mnt*, which
    would hang too.
    """
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == str(mnt):
                minor = fields[2].split(":")[1]
                try:
                    Path(f"/sys/fs/fuse/connections/{minor}/abort").write_text("1")
                except OSError:
                    return False
                return True
    return False
