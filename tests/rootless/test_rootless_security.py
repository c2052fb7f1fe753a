"""A user's container gets what root's gets: no_new_privs, the seccomp filter, a pty of its
own with -t (relayed to the user's terminal), and never the user's terminal without it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from rootlessutil import RootlessUser
from runtime import ptyutil

BUSYBOX = "/bin/busybox"
STATUS = "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"


@pytest.fixture
def rootfs(rootless_user: RootlessUser) -> Path:
    root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=rootless_user.base))
    (root / "bin").mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "grep", "tty", "unshare", "true", "echo"):
        os.symlink("busybox", root / "bin" / applet)
    for d in ("proc", "dev", "sys", "tmp"):
        (root / d).mkdir()
    root.chmod(0o755)
    rootless_user.chown(root)
    return root


def _as_user(user: RootlessUser, argv: list[str]) -> list[str]:
    """*argv* as the user with a usable /dev/fuse, as ``RootlessUser.run`` runs it."""
    inner = ["runuser", "-u", user.name, "--", *user.env(), *argv]
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /dev/fuse && exec "$@"', str(user.fuse_node), *inner]  # fmt: skip


def test_a_users_container_has_no_new_privs_and_the_filter(
    rootless_user: RootlessUser, rootfs: Path
) -> None:
    script = f"{STATUS}; unshare -U true; echo unshare=$?"
    proc = rootless_user.unionfs("run", "--rm", "--rootfs", str(rootfs), "sh", "-c", script,
                                 check=False)  # fmt: skip
    assert "NoNewPrivs:\t1" in proc.stdout and "Seccomp:\t2" in proc.stdout, proc.stderr
    assert "unshare=1" in proc.stdout


def test_a_users_container_gets_its_own_pty_and_never_the_users_terminal(
    rootless_user: RootlessUser, rootfs: Path
) -> None:
    user = rootless_user
    unionfs = [user.python, "-m", "unionfs", "run", "--rm"]
    seen = ptyutil.run(_as_user(user, [*unionfs, "-it", "--rootfs", str(rootfs), "sh"]),
                       os.environ, script=[(b"# ", b"tty; exit 7\r")],
                       cwd=str(user.base))  # fmt: skip
    assert seen.code == 7, seen.output
    assert b"/dev/pts/0" in seen.output
    plain = ptyutil.run(_as_user(user, [*unionfs, "--rootfs", str(rootfs), "sh", "-c",
                                        "[ -t 0 ] || [ -t 1 ] || echo no-terminal"]),
                        os.environ, cwd=str(user.base))  # fmt: skip
    assert b"no-terminal" in plain.output, plain.output
