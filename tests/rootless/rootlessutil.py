"""The rootless tests' world: a freshly created unprivileged user, and a way to run its
commands with a usable /dev/fuse, without changing the shared machine.

/dev/fuse is 0600 here (no udev): ``as_user`` makes a private mount namespace (``unshare
-m --propagation private``), binds a 0666 node made with mknod in this session's temp dir
over /dev/fuse there, and runs the command with ``runuser``. The user needs a Python it
can reach: this session's interpreter when the user can import unionfs with it, else
Debian's /usr/bin/python3 with copies of unionfs and its dependencies in the temp dir.
Everything (the user with its home and subordinate id lines, processes, files) is
removed at the end of the session; the tests need root and skip otherwise.

A module, not the conftest, so that tests import it by a name no other directory's
conftest shares.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from patience import scaled
from zygoteutil import session_env

HERE = Path(__file__).parent
TESTS = HERE.parent
HELPERS = ("mountutil.py", "layerdata.py", "patience.py", "treecmp.py", "writeutil.py",
           "differential/write_pairs.py",
           "podman/podmanutil.py", "binding/toyfs.py", "binding/toyfs317.py",
           "binding/toymount.py", "rootless/userside.py")  # fmt: skip
PACKAGES = ("unionfs", "pyfuse3", "trio", "lmdb", "outcome", "sniffio", "attr", "attrs",
            "idna", "sortedcontainers", "hypothesis", "_hypothesis_ftz_detector",
            "_hypothesis_globals", "zstandard", "httpx", "httpcore", "h11", "certifi", "anyio",
            "typing_extensions")  # fmt: skip
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIMEOUT = 120  # a hang guard, stretched by load: scaled(TIMEOUT)


@dataclass(frozen=True)
class RootlessUser:
    name: str
    uid: int
    gid: int
    home: Path
    base: Path  # world-readable: the fuse node, helpers, and what tests share with the user
    python: str
    pythonpath: str
    fuse_node: Path

    def env(self, extra: dict[str, str] | None = None) -> list[str]:
        values = {"HOME": str(self.home), "PATH": PATH, "PYTHONPATH": self.pythonpath,
                  "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8",
                  **session_env(), **(extra or {})}  # fmt: skip
        return ["env", "-i", *(f"{k}={v}" for k, v in values.items())]

    def run(
        self,
        argv: Sequence[str],
        fuse: bool = True,
        userns: bool = False,
        env: dict[str, str] | None = None,
        check: bool = True,
        tun: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """*argv* as this user, in a private mount namespace with a usable /dev/fuse
        (unless *fuse* is False), inside ``unshare -r -m`` if *userns*; with *tun*, also a
        usable /dev/net/tun (0666, as udev makes it; 0600 on this machine without udev)."""
        inner = ["runuser", "-u", self.name, "--", *self.env(env)]
        if userns:
            inner += ["unshare", "-r", "-m"]
        cmd = self.command([*inner, *argv], fuse, tun)
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=scaled(TIMEOUT), check=False, cwd=self.base
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"as {self.name}: {argv} exited {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
            )
        return proc

    def command(self, argv: Sequence[str], fuse: bool = True, tun: bool = False) -> list[str]:
        """*argv* (already run as the user) in a private mount namespace with this user's
        /dev/fuse and, with *tun*, /dev/net/tun."""
        script = 'mount --bind "$0" /dev/fuse && ' if fuse else ""
        if tun:
            script += 'mount --bind "${0%/*}/tun" /dev/net/tun && '
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script + 'exec "$@"',
                str(self.fuse_node), *argv]  # fmt: skip

    def python_json(self, *args: str, userns: bool = False) -> dict[str, object]:
        script = str(self.base / "py" / "userside.py")
        proc = self.run([self.python, script, *args], userns=userns)
        result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    def unionfs(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run([self.python, "-m", "unionfs", *args], **kwargs)  # type: ignore[arg-type]

    def chown(self, path: Path) -> None:
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(path)], check=True)


def _user_processes(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except FileNotFoundError:
                continue
    return pids


def _sub_lines(name: str) -> list[str]:
    found = []
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path, encoding="utf-8") as f:
            found += [f"{path}: {ln.strip()}" for ln in f if ln.split(":")[0] == name]
    return found


def _can_import(name: str, python: str, pythonpath: str, home: Path) -> bool:
    env = ["env", "-i", f"HOME={home}", f"PYTHONPATH={pythonpath}", "PYTHONDONTWRITEBYTECODE=1"]
    probe = "import unionfs, pyfuse3, trio, lmdb, hypothesis"
    proc = subprocess.run(["runuser", "-u", name, "--", *env, python, "-c", probe],
                          capture_output=True, check=False)  # fmt: skip
    return proc.returncode == 0


def _copy_site(site: Path) -> None:
    """unionfs and its dependencies, copied where the user can read them."""
    site.mkdir()
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, f"cannot find {name}"
        if spec.submodule_search_locations:
            src = Path(next(iter(spec.submodule_search_locations)))
            shutil.copytree(src, site / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(spec.origin, site / Path(spec.origin).name)
    _copy_private_libfuse(site / "pyfuse3")


def _copy_private_libfuse(package: Path) -> None:
    """The libfuse that ./dev.sh built into the venv (third_party/libfuse), next to the copy
    of pyfuse3, which looks there too ($ORIGIN in its rpath); Debian's stays where it is."""
    import pyfuse3  # noqa: F401  (loads the libfuse it is linked to)

    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "/libfuse3.so" in line}
    for lib in libs:
        if lib.startswith(("/lib/", "/usr/lib/")):
            continue
        for name in os.listdir(os.path.dirname(lib)):  # the file and its soname links
            if name.startswith("libfuse3.so."):
                shutil.copy2(os.path.join(os.path.dirname(lib), name), package / name)


def _make_user(base: Path) -> tuple[str, Path]:
    name = f"ufsrl{secrets.token_hex(4)}"
    home = base / "home"
    subprocess.run(["useradd", "-m", "-d", str(home), "-s", "/bin/sh", name], check=True,
                   capture_output=True)  # fmt: skip
    return name, home


def remove_user(name: str, uid: int) -> list[str]:
    """Kill what is left of *name* (its processes, by pid), delete it with its home; what
    could not be removed is returned."""
    for pid in _user_processes(uid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc = subprocess.run(["userdel", "-r", name], capture_output=True, text=True, check=False)
    problems = [] if proc.returncode in (0, 12) else [f"userdel: {proc.stderr.strip()}"]
    return problems + _sub_lines(name)


class NoUserPython(RuntimeError):
    """Neither this interpreter nor Debian's python3 can import unionfs as the user."""


@contextlib.contextmanager
def fresh_user() -> Iterator[RootlessUser]:
    """A new user with a 0666 fuse node and a Python it can run unionfs with; on the way
    out the user (home, subordinate ids, processes) and its files are removed, and what
    could not be is an AssertionError. Needs root. Also used by tools/podman_bench.py."""
    base = Path(tempfile.mkdtemp(prefix="unionfs-rootless-"))
    os.chmod(base, 0o755)
    name = None
    uid = -1
    try:
        os.mknod(base / "fuse", 0o666 | 0o020000, os.makedev(10, 229))
        os.chmod(base / "fuse", 0o666)
        os.mknod(base / "tun", 0o666 | 0o020000, os.makedev(10, 200))
        os.chmod(base / "tun", 0o666)
        (base / "py").mkdir()
        for helper in HELPERS:
            shutil.copy2(TESTS / helper, base / "py" / Path(helper).name)
        name, home = _make_user(base)
        entry = pwd.getpwnam(name)
        uid = entry.pw_uid
        python, pythonpath = sys.executable, str(base / "py")
        if not _can_import(name, python, pythonpath, home):
            # This interpreter or the checkout is out of the user's reach: Debian's
            # python3 with copies of what it needs.
            _copy_site(base / "site")
            python, pythonpath = "/usr/bin/python3", f"{base / 'site'}:{base / 'py'}"
            if not _can_import(name, python, pythonpath, home):
                raise NoUserPython("no Python the test user can run unionfs with")
        yield RootlessUser(name, uid, entry.pw_gid, home, base, python, pythonpath, base / "fuse")
    finally:
        problems = remove_user(name, uid) if name is not None else []
        shutil.rmtree(base, ignore_errors=True)
        assert not problems, f"left behind: {problems}"
