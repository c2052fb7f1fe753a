"""Root podman on a private storage root, with a chosen overlay ``mount_program``.

Follows issue 11's "Running podman here": runc, the cgroupfs manager, ``--cgroups=no-conmon``
and a ``--cgroup-parent`` below this process's own memory cgroup (``CgroupParent`` removes
every directory runc made for it, in every hierarchy), ulimits root may set without
CAP_SYS_RESOURCE, no network, a private ``storage.conf`` and ``containers.conf`` (through
``CONTAINERS_STORAGE_CONF``/``CONTAINERS_CONF``), and an image imported from busybox-static.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mountutil import force_unmount, mounts
from patience import Deadline, scaled

BUSYBOX = "/bin/busybox"
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Hang guards in seconds of an idle machine, stretched by load (patience.py).
COMMAND_TIMEOUT = 120.0
GONE_TIMEOUT = 20.0
HEX_ID = re.compile(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b")


def missing_tools() -> list[str]:
    return [t for t in ("podman", "runc", "fuse-overlayfs", "fusermount3") if not shutil.which(t)]


# -- cgroups -------------------------------------------------------------------------------


def own_memory_cgroup() -> str:
    """This process's path in the v1 memory hierarchy (the machine owns it: only go below)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _num, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path
    raise RuntimeError("no memory cgroup in /proc/self/cgroup")


def cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy (v1 and v2) below /sys/fs/cgroup."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            point = Path(fields[4])
            if fstype in ("cgroup", "cgroup2") and point.parent == CGROUP_ROOT:
                found.append(point)
    return sorted(found)


class CgroupParent:
    """A uniquely named ``--cgroup-parent`` below our memory cgroup.

    runc creates the path (and any missing ancestors) in every hierarchy; ``cleanup``
    removes all of it again, deepest first, but only directories that were not there before.
    """

    def __init__(self, prefix: str = "podman-test") -> None:
        # Not "unionfs-*": tests/runtime takes every such cgroup for one of its containers.
        self.path = f"{own_memory_cgroup().rstrip('/')}/{prefix}-{uuid.uuid4().hex[:10]}"
        self.hierarchies = cgroup_hierarchies()
        self._existed = {d for h in self.hierarchies for d in self._chain(h) if d.exists()}

    def _chain(self, hierarchy: Path) -> list[Path]:
        """The directories from the hierarchy's root down to ours, top first."""
        parts = Path(self.path.lstrip("/")).parts
        return [hierarchy.joinpath(*parts[: i + 1]) for i in range(len(parts))]

    def leftovers(self) -> list[Path]:
        """Directories for our parent (or created for it) that still exist."""
        left: list[Path] = []
        for h in self.hierarchies:
            left.extend(d for d in self._chain(h) if d.exists() and d not in self._existed)
        return left

    def cleanup(self) -> None:
        for h in self.hierarchies:
            ours = self._chain(h)[-1]
            if ours.exists():
                for sub, _dirs, _files in sorted(os.walk(ours), key=lambda w: -len(w[0])):
                    _rmdir(Path(sub))
            for d in reversed(self._chain(h)[:-1]):
                if d not in self._existed and d.exists():
                    _rmdir(d)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError as exc:
        # Another user of the same ancestor (EBUSY/ENOTEMPTY) keeps it; leftovers() tells.
        if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.ENOENT):
            raise


# -- processes -----------------------------------------------------------------------------


def live_processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live (not zombie) process whose argv contains *text*."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and text.encode() in cmdline:
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


def wait_until_gone(text: str) -> list[tuple[int, str]]:
    """Poll until no live process mentions *text*; return what is left after the deadline."""
    deadline = Deadline(GONE_TIMEOUT)
    while (left := live_processes_mentioning(text)) and not deadline.expired():
        time.sleep(0.1)
    return left


# -- podman --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    rc: int
    out: str
    err: str


class Podman:
    """Root podman confined to *base*: storage, run state, temp files and config files."""

    def __init__(self, base: Path, mount_program: str | None, cgroups: CgroupParent,
                 runtime: str = "runc") -> None:  # fmt: skip
        """*mount_program* None: the kernel's overlayfs (podman's native driver), the oracle.
        *runtime*: the OCI runtime (a name podman knows, or a path)."""
        self.base = base
        self.mount_program = mount_program
        self.runtime = runtime
        self.cgroups = cgroups
        self.graphroot = base / "graph"
        # conmon refuses a runroot longer than 50 characters: a short one outside tmp_path.
        self.runroot = Path(tempfile.mkdtemp(prefix="ufs-pm-", dir="/tmp"))
        self.tmpdir = self.runroot / "tmp"
        for d in (self.graphroot, self.runroot, self.tmpdir):
            d.mkdir(parents=True, exist_ok=True)
        self.storage_conf = base / "storage.conf"
        self.storage_conf.write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{self.graphroot}"\n'
            f'runroot = "{self.runroot}"\n'
            + ("[storage.options.overlay]\n" f'mount_program = "{mount_program}"\n'
               if mount_program else "")
        )  # fmt: skip
        self.containers_conf = base / "containers.conf"
        self.containers_conf.write_text(
            "[containers]\n"
            'cgroups = "no-conmon"\n'
            'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
            'netns = "none"\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "none"\n'
            f'tmp_dir = "{self.tmpdir}"\n'
        )

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CONTAINERS_STORAGE_CONF"] = str(self.storage_conf)
        env["CONTAINERS_CONF"] = str(self.containers_conf)
        return env

    def argv(self, *args: str) -> list[str]:
        # Flags as well as the config files: the recipe, whatever else is configured.
        program = ["--storage-opt", f"overlay.mount_program={self.mount_program}"]
        return [
            "podman", "--root", str(self.graphroot), "--runroot", str(self.runroot),
            "--tmpdir", str(self.tmpdir), "--storage-driver", "overlay",
            *(program if self.mount_program else []), "--runtime", self.runtime,
            "--cgroup-manager", "cgroupfs", "--events-backend", "none",
            *args,
        ]  # fmt: skip

    def container_flags(self) -> list[str]:
        return [
            "--cgroups=no-conmon", f"--cgroup-parent={self.cgroups.path}", "--network=none",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
        ]  # fmt: skip

    def __call__(self, *args: str, stdin: bytes | None = None) -> Result:
        if args and args[0] in ("run", "create"):
            args = (args[0], *self.container_flags(), *args[1:])
        proc = subprocess.run(
            self.argv(*args), input=stdin, capture_output=True, env=self.env(),
            timeout=scaled(COMMAND_TIMEOUT), cwd=self.base, check=False,
        )  # fmt: skip
        return Result(proc.returncode, proc.stdout.decode(errors="replace"),
                      proc.stderr.decode(errors="replace"))  # fmt: skip

    def ok(self, *args: str, stdin: bytes | None = None) -> str:
        r = self(*args, stdin=stdin)
        assert r.rc == 0, f"podman {' '.join(args)} -> {r.rc}: {r.err.strip()}"
        return r.out

    def import_rootfs(self, rootfs: Path, name: str) -> None:
        tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True)
        self.ok("import", "-", name, stdin=tar.stdout)

    def mount_and_look(self, mount: tuple[str, ...], change: bool) -> tuple[int, list[str]]:
        """See script.PodmanLike: the mount is visible here, so look at it directly."""
        r = self(*mount)
        if r.rc != 0:
            return r.rc, []
        root = Path(r.out.strip())
        if change:
            change_mounted(root)
        return 0, tree_listing(root / "data")

    def teardown(self) -> list[str]:
        """Remove every container and image, unmount what is left; return the problems."""
        problems = []
        for args in (("rm", "-af", "-t", "0"), ("image", "umount", "-af"), ("rmi", "-af")):
            r = self(*args)
            if r.rc != 0:
                problems.append(f"podman {' '.join(args)}: {r.err.strip()}")
        bases = (str(self.base) + "/", str(self.runroot) + "/")
        left = [(p, fs) for p, fs in mounts() if p.startswith(bases)]
        for point, _fs in reversed(left):
            force_unmount(Path(point))
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        if left:
            problems.append(f"mounts left: {left}")
        procs = wait_until_gone(str(self.graphroot))
        if procs:
            problems.append(f"processes left: {procs}")
            for pid, _cmd in procs:
                # Only processes started for this storage root (they name it in argv).
                os.kill(pid, 9)
        if not left:
            shutil.rmtree(self.runroot, ignore_errors=True)
        return problems


# -- images and trees ----------------------------------------------------------------------


def busybox_rootfs(root: Path) -> Path:
    """A rootfs of busybox-static with every applet, and a /data tree for the script."""
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    subprocess.run([str(root / "bin" / "busybox"), "--install", "-s", str(root / "bin")],
                   check=True)  # fmt: skip
    # --install writes absolute links to the host path; the container needs /bin/busybox.
    for entry in os.scandir(root / "bin"):
        if entry.is_symlink():
            os.unlink(entry.path)
            os.symlink("busybox", entry.path)
    for d in ("etc", "tmp", "data/dir/sub", "data/keepdir", "data/opaque/inner"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    files = {
        "data/keep": "keep\n", "data/gone": "gone\n", "data/append": "first\n",
        "data/dir/a": "a\n", "data/dir/b": "b\n", "data/dir/sub/c": "c\n",
        "data/keepdir/k": "k\n", "data/opaque/inner/i": "i\n", "data/secret": "s\n",
    }  # fmt: skip
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "data/secret").chmod(0o600)
    os.symlink("keep", root / "data/link")
    os.link(root / "data/keep", root / "data/hardlink")
    return root


def tree_listing(top: Path) -> list[str]:
    """Every entry below *top*: path, type, mode, owner, and a file's content hash."""
    lines = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath, name)
            st = path.lstat()
            rel = path.relative_to(top)
            what = f"{rel} {stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid}"
            if stat.S_ISREG(st.st_mode):
                what += f" {hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
            elif stat.S_ISLNK(st.st_mode):
                what += f" -> {os.readlink(path)}"
            lines.append(what)
    return lines


def change_mounted(root: Path) -> None:
    """What the script does from the host to a container's mounted rootfs."""
    (root / "fromhost").write_text("written on the host\n")
    (root / "data/keepdir/k").unlink()


def normalize(text: str) -> str:
    """Container and image ids differ from run to run: replace them."""
    return HEX_ID.sub("<id>", text)


def whiteout_files(graphroot: Path) -> Iterator[Path]:
    """``.wh.`` markers podman wrote into its layer directories."""
    yield from (graphroot / "overlay").glob("*/diff/**/.wh.*")
