"""Mount layer stacks with unionfs or kernel overlayfs; the stacks are built from literal
data by ``layerdata`` (re-exported here: ``tree``, ``build_stack``, the node types).

Every mount made here is unmounted in ``finally``; the unionfs daemon runs in the foreground
as our own child, so it is only ever ended by its pid.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from layerdata import NAME_MAX as NAME_MAX
from layerdata import Device as Device
from layerdata import Dir as Dir
from layerdata import Fifo as Fifo
from layerdata import File as File
from layerdata import Node as Node
from layerdata import Symlink as Symlink
from layerdata import Whiteout as Whiteout
from layerdata import build_layer as build_layer
from layerdata import build_stack as build_stack
from layerdata import fresh_dir as fresh_dir
from layerdata import tree as tree
from patience import Deadline, exit_of

# Hang guards, in seconds of an idle machine (stretched by load, see patience.py): a mount
# that has not shown up while its daemon lives, a daemon that makes no progress exiting.
MOUNT_TIMEOUT = 60.0
EXIT_QUIET = 30.0
LOG_PROBLEM = re.compile(r"ERROR|Traceback")


# -- mount state -------------------------------------------------------------------------


def _unescape_mountinfo(field_: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


def mounts() -> list[tuple[str, str]]:
    """(mount point, fstype) of every mount in this namespace, in mount order."""
    result = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            result.append((_unescape_mountinfo(fields[4]), fields[sep + 1]))
    return result


def fstype(mnt: Path) -> str | None:
    """The fstype of the topmost mount at *mnt*, or None."""
    found = [fs for point, fs in mounts() if point == str(mnt)]
    return found[-1] if found else None


def is_mounted(mnt: Path) -> bool:
    return fstype(mnt) is not None


def force_unmount(mnt: Path) -> None:
    """Unmount a FUSE mount at *mnt*, lazily if it is busy or dead; silent if not mounted."""
    for args in (["fusermount3", "-u"], ["fusermount3", "-uz"]):
        if not is_mounted(mnt):
            return
        subprocess.run([*args, str(mnt)], capture_output=True, check=False)


# -- unionfs -------------------------------------------------------------------------------


def escape_layer(path: Path | str) -> str:
    """A path as one lowerdir element: ``:`` escaped as ``\\:``."""
    text = str(path)
    assert "," not in text and "\\" not in text, f"unsupported character in {text!r}"
    return text.replace(":", "\\:")


TEST_OPTS_ENV = "UNIONFS_TEST_MOUNT_OPTS"


def mount_options(
    lowers: Sequence[Path | str],
    upper: Path | None = None,
    work: Path | None = None,
    extra_opts: Sequence[str] = (),
) -> str:
    opts = ["lowerdir=" + ":".join(escape_layer(p) for p in lowers)]
    if upper is not None:
        opts.append(f"upperdir={escape_layer(upper)}")
    if work is not None:
        opts.append(f"workdir={escape_layer(work)}")
    return ",".join([*opts, *extra_opts])


def unionfs_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "unionfs", *args]


def daemon_pid(mnt: Path) -> int:
    """The pid of our ``unionfs mount -f`` child serving *mnt*."""
    needle = os.fsencode(str(mnt))
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except OSError:
            continue
        if ppid == os.getpid() and needle in argv and b"mount" in argv:
            return int(entry)
    raise AssertionError(f"no daemon found for {mnt}")


def log_problems(text: str) -> list[str]:
    return [line for line in text.splitlines() if LOG_PROBLEM.search(line)]


@contextmanager
def unionfs_mount(
    lowers: Sequence[Path | str],
    mnt: Path,
    upper: Path | None = None,
    work: Path | None = None,
    extra_opts: Sequence[str] = (),
    log: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[Path]:
    """Mount with ``unionfs mount -f`` as a child process; yield *mnt* once it is live.

    On the way out: unmount (``fusermount3 -u``, then ``-uz``), wait for the child to exit
    as long as it makes progress (kill it, by its pid, only once it is hung), then fail on
    any ERROR/Traceback in its log.
    """
    log = log or mnt.with_name(mnt.name + ".log")
    errfile = log.with_name(log.name + ".stderr")
    # UNIONFS_TEST_MOUNT_OPTS (e.g. "passthrough"): added to every unionfs mount of a run,
    # to run the mounted and differential tiers again with an opt-in option.
    added = os.environ.get(TEST_OPTS_ENV)
    opts = mount_options(lowers, upper, work, [*extra_opts, *([added] if added else [])])
    cmd = unionfs_cmd("mount", "-f", *extra_args, "--log", str(log), "-o", opts, str(mnt))
    with open(errfile, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    killed = mounted = False
    try:
        deadline = Deadline(MOUNT_TIMEOUT)
        while not os.path.ismount(mnt):
            if proc.poll() is not None:
                raise AssertionError(
                    f"unionfs exited with {proc.returncode} before mounting\n"
                    f"command: {cmd}\n{_outputs(log, errfile)}"
                )
            if deadline.expired():
                raise AssertionError(f"not mounted after {deadline}\n{_outputs(log, errfile)}")
            time.sleep(0.01)
        mounted = True
        yield mnt
    finally:
        force_unmount(mnt)
        held = False
        if not exit_of(proc, EXIT_QUIET):
            # A mount namespace another test made meanwhile (unshare -m) may hold a copy of
            # the mount: the kernel keeps the connection, and the daemon serves it, until
            # that namespace ends. Not the daemon's fault: end it, but do not fail for it.
            held = bool(holders_of(mnt))
            killed = not held
            proc.kill()
            proc.wait()
        problems = log_problems(_read(log)) + log_problems(_read(errfile))
        # (a daemon that never mounted has been reported above, with its log)
        if mounted and (killed or (proc.returncode != 0 and not held) or problems):
            raise AssertionError(
                f"unionfs daemon: exit {proc.returncode}{' (killed: hung)' if killed else ''}, "
                f"{len(problems)} problem line(s) in its log\n{_outputs(log, errfile)}"
            )
        if mounted:
            disagree = verify_index(lowers, extra_opts)
            assert not disagree, f"the index disagrees with the layers: {disagree[:10]}"


def holders_of(mnt: Path) -> list[int]:
    """Processes in other mount namespaces whose mount table has a mount at *mnt*."""
    mine = os.readlink("/proc/self/ns/mnt")
    needle = " " + str(mnt).replace("\\", "\\134").replace(" ", "\\040") + " "
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/mnt") == mine:
                continue
            with open(f"/proc/{entry}/mountinfo", encoding="utf-8", errors="replace") as f:
                if needle in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def verify_index(lowers: Sequence[Path | str], extra_opts: Sequence[str]) -> list[str]:
    """The index a mount served, checked against the rules over its layers (our fsck)."""
    from unionfs.index import build, verify
    from unionfs.index.env import IndexEnv, IndexUnavailable, default_dir
    from unionfs.safepath import DirFdCache
    from unionfs.union.stack import DirLayer

    options = [item for text in extra_opts for item in text.split(",")]
    chosen = [item.partition("=")[2] for item in options if item.startswith("indexdir=")]
    where = chosen[-1] if chosen else default_dir()
    if where == "off" or "noindexdir" in options:
        return []
    cache = DirFdCache(64)
    layers = [DirLayer(os.path.realpath(p), cache) for p in lowers]
    try:
        env = IndexEnv(where)
    except IndexUnavailable:
        return []  # the mount served the layers directly
    try:
        return verify.verify(build.open_lowers(env, layers, check=False), layers)
    except IndexUnavailable:
        return []
    finally:
        env.close()
        for layer in layers:
            layer.close()
        cache.close()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _outputs(log: Path, errfile: Path, limit: int = 20000) -> str:
    return (
        f"--- log {log} ---\n{_read(log)[-limit:]}\n"
        f"--- stdout+stderr ---\n{_read(errfile)[-limit:]}"
    )


# -- kernel overlayfs ----------------------------------------------------------------------


@contextmanager
def kernel_overlay(
    lowers: Sequence[Path | str],
    mnt: Path,
    upper: Path | None = None,
    work: Path | None = None,
    opts: str = "",
) -> Iterator[Path]:
    """``mount -t overlay``; ``umount`` (then ``umount -l``) on the way out.

    A long ``lowerdir`` list is passed relative to the layers' common parent (the kernel
    takes one page of options).
    """
    options = mount_options(lowers, upper, work, [opts] if opts else [])
    cwd = None
    if len(options) > 3000 and upper is None:
        cwd = os.path.commonpath([str(p) for p in lowers])
        relative = [os.path.relpath(p, cwd) for p in lowers]
        options = mount_options(relative, None, None, [opts] if opts else [])
    result = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(mnt)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )
    if result.returncode != 0:
        raise AssertionError(f"mount -t overlay -o {options} failed: {result.stderr.strip()}")
    try:
        yield mnt
    finally:
        for args in (["umount"], ["umount", "-l"]):
            if not is_mounted(mnt):
                break
            subprocess.run([*args, str(mnt)], capture_output=True, check=False)


def remove_tree(base: Path) -> None:
    """Delete *base* after checking that nothing below it is still mounted."""
    below = [p for p, _ in mounts() if p == str(base) or p.startswith(str(base) + "/")]
    assert not below, f"refusing to delete {base}: still mounted: {below}"
    shutil.rmtree(base)
