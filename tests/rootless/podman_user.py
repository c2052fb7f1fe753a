"""Rootless podman as the session's test user, with a chosen overlay ``mount_program``.

Follows issue 11's "Running podman here" for a user: the user's own ``storage.conf``
(``rootless_storage_path``, the mount program) and ``containers.conf`` (runc, cgroupfs)
named by ``CONTAINERS_STORAGE_CONF``/``CONTAINERS_CONF``, its own ``XDG_RUNTIME_DIR``, and
every command run as in ``RootlessUser.run``: a private mount namespace where /dev/fuse
is a 0666 node, then ``runuser``. On this machine's cgroup v1 rootless podman makes no
cgroups (``cgroups = "disabled"`` is refused with runc); ``leftover_cgroups`` checks that.

podman keeps a *pause* process per ``XDG_RUNTIME_DIR`` that holds its user and mount
namespaces; container mounts live in that mount namespace, invisible here and, without
``allow_other``, unreadable by root. So mounting and looking into a mount run inside
``podman unshare`` with the user's Python. ``teardown`` removes every container and
image, then reports mounts still in the pause process's namespace, mount-program
daemons still running, and ends the pause process (by its pid).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from patience import Deadline, scaled
from podmanutil import CGROUP_ROOT, GONE_TIMEOUT, Result, wait_until_gone

if TYPE_CHECKING:  # tools/podman_bench.py imports this without pytest
    from rootlessutil import RootlessUser

COMMAND_TIMEOUT = 120.0

LOOK = """import json, sys
from pathlib import Path
from podmanutil import change_mounted, tree_listing
root = Path(sys.argv[1])
if sys.argv[2] == "1":
    change_mounted(root)
print(json.dumps(tree_listing(root / "data")))
"""


def unionfs_wrapper(user: RootlessUser, path: Path, log: Path) -> Path:
    """A mount program podman can run by path: unionfs with the Python the user can use.
    Each call's arguments are appended to *log* (to see what podman passed)."""
    path.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {shlex.quote(str(log))}\n'
        f"PYTHONPATH={shlex.quote(user.pythonpath)} PYTHONDONTWRITEBYTECODE=1 "
        f'exec {shlex.quote(user.python)} -m unionfs "$@"\n'
    )
    path.chmod(0o755)
    return path


class RootlessPodman:
    """podman as *user*, storage below *base* (made here, the user's)."""

    def __init__(
        self, user: RootlessUser, base: Path, mount_program: str | None, overlay_options: str = "",
        runtime: str | None = None,
    ) -> None:  # fmt: skip
        """*mount_program* None: the kernel's overlayfs in podman's user namespace (Linux
        5.11+), the oracle where fuse-overlayfs is wrong. *overlay_options*: more lines
        for ``[storage.options.overlay]``. *runtime*: an OCI runtime's path (podman's
        ``--runtime``) instead of runc."""
        self.user = user
        self.runtime = runtime
        self.base = base
        self.mount_program = mount_program
        self.graphroot = base / "graph"
        base.mkdir()
        # conmon refuses long socket paths: a short runtime dir outside base.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="ufs-rl-", dir="/tmp"))
        self.storage_conf = base / "storage.conf"
        self.storage_conf.write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'runroot = "{self.runtime_dir}/containers"\n'
            # podman commit (buildah) wants graphroot set even where rootless_storage_path
            # is what decides.
            f'graphroot = "{self.graphroot}"\n'
            f'rootless_storage_path = "{self.graphroot}"\n'
            + "[storage.options.overlay]\n"
            + (f'mount_program = "{mount_program}"\n' if mount_program else "")
            + overlay_options
        )  # fmt: skip
        self.containers_conf = base / "containers.conf"
        self.containers_conf.write_text(
            "[containers]\n"
            'netns = "none"\n'
            "[engine]\n"
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "none"\n'
        )
        user.chown(base)
        user.chown(self.runtime_dir)
        self.runtime_dir.chmod(0o700)

    def env(self) -> dict[str, str]:
        return {
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
            "CONTAINERS_CONF": str(self.containers_conf),
        }

    def command(self, argv: list[str]) -> list[str]:
        """*argv* as the user runs it: a private /dev/fuse, runuser, the user's env."""
        u = self.user
        inner = ["runuser", "-u", u.name, "--", *u.env(self.env()), *argv]
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount --bind "$0" /dev/fuse && exec "$@"', str(u.fuse_node), *inner]  # fmt: skip

    def argv(self, *args: str) -> list[str]:
        """``podman ARGS`` as the user runs it (with the chosen runtime)."""
        runtime = ["--runtime", self.runtime] if self.runtime else []
        return self.command(["podman", *runtime, *args])

    def container_flags(self) -> list[str]:
        return []

    def run_as_user(self, argv: list[str], stdin: bytes | None = None) -> Result:
        cmd = self.command(argv)
        proc = subprocess.run(cmd, input=stdin, capture_output=True, cwd=self.base,
                              timeout=scaled(COMMAND_TIMEOUT), check=False)  # fmt: skip
        return Result(proc.returncode, proc.stdout.decode(errors="replace"),
                      proc.stderr.decode(errors="replace"))  # fmt: skip

    def __call__(self, *args: str, stdin: bytes | None = None) -> Result:
        if args and args[0] == "export":
            # podman opens /dev/stdout anew, and our pipe is root's: a file of the user's.
            args = (args[0], "-o", str(self.base / "export.tar"), *args[1:])
        runtime = ["--runtime", self.runtime] if self.runtime else []
        return self.run_as_user(["podman", *runtime, *args], stdin=stdin)

    def ok(self, *args: str, stdin: bytes | None = None) -> str:
        r = self(*args, stdin=stdin)
        assert r.rc == 0, f"podman {' '.join(args)} -> {r.rc}: {r.err.strip()}"
        return r.out

    def import_rootfs(self, tar: bytes, name: str) -> None:
        self.ok("import", "-", name, stdin=tar)

    def mount_and_look(self, mount: tuple[str, ...], change: bool) -> tuple[int, list[str]]:
        """See script.PodmanLike: inside ``podman unshare``, where the mount is."""
        look = self.base / "look.py"
        if not look.exists():
            look.write_text(LOOK)
        script = (f"p=$(podman {shlex.join(mount)}) || exit $?\n"
                  f'exec {shlex.quote(self.user.python)} {look} "$p" {int(change)}\n')  # fmt: skip
        r = self.run_as_user(["podman", "unshare", "sh", "-c", script])
        if r.rc != 0:
            return r.rc, [r.err.strip()]
        listing: list[str] = json.loads(r.out.strip().splitlines()[-1])
        return 0, listing

    def pause_pid(self) -> int | None:
        try:
            return int((self.runtime_dir / "libpod/tmp/pause.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def teardown(self) -> list[str]:
        """Remove every container and image, end the pause process; return the problems."""
        problems = []
        for args in (("rm", "-af", "-t", "0"), ("rmi", "-af")):
            r = self(*args)
            if r.rc != 0:
                problems.append(f"podman {' '.join(args)}: {r.err.strip()}")
        pause = self.pause_pid()
        if pause is not None:
            try:
                with open(f"/proc/{pause}/mountinfo", encoding="utf-8") as f:
                    left = [ln.split()[4] for ln in f if str(self.base) in ln.split()[4]]
            except OSError:
                left = []
            if left:
                problems.append(f"mounts left in podman's namespace: {left}")
        if procs := wait_until_gone(str(self.graphroot)):
            problems.append(f"mount-program processes left: {procs}")
            for pid, _cmd in procs:
                os.kill(pid, signal.SIGKILL)  # only processes serving this storage root
        if pause is not None and Path(f"/proc/{pause}").exists():
            os.kill(pause, signal.SIGKILL)  # started (by podman) for this runtime dir only
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        return problems


def user_ids(user: RootlessUser) -> set[int]:
    """The user's uid and its subordinate uids (what its containers run as)."""
    ids = {user.uid}
    with open("/etc/subuid", encoding="utf-8") as f:
        for line in f:
            name, _sep, rest = line.strip().partition(":")
            if name in (user.name, str(user.uid)) and rest.count(":") == 1:
                first, count = (int(x) for x in rest.split(":"))
                ids.update(range(first, first + count))
    return ids


def user_processes(user: RootlessUser) -> list[int]:
    """Live processes of the user or of its containers (waits for them to go first)."""
    ids = user_ids(user)
    deadline = Deadline(GONE_TIMEOUT)
    while True:
        found = []
        for entry in os.scandir("/proc"):
            try:
                if entry.name.isdigit() and entry.stat().st_uid in ids:
                    state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        found.append(int(entry.name))
            except OSError:
                continue
        if not found or deadline.expired():
            return found
        time.sleep(0.1)


def leftover_cgroups(user: RootlessUser) -> list[Path]:
    """cgroup directories the user or one of its containers owns, in any hierarchy."""
    ids = user_ids(user)
    found = []
    for hierarchy in CGROUP_ROOT.iterdir():
        for dirpath, _dirs, _files in os.walk(hierarchy):
            try:
                if os.stat(dirpath).st_uid in ids:
                    found.append(Path(dirpath))
            except OSError:
                continue
    return found
