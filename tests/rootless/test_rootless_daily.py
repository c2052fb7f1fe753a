"""Issue 21's daily podman session as an ordinary user (``run -d -p`` through pasta, an
HTTP GET, ``logs``, ``ps --format json``, ``exec -it sh``, ``stop``, ``rm``, ``images
--filter dangling=true -q``, ``image prune -f``), and ``--network none|host|private``
rootless; nothing of the user's is left running."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from patience import wait_until
from rootlessutil import PATH, RootlessUser
from runtime import dailysession
from test_rootless_run import _processes_left

pytestmark = pytest.mark.skipif(shutil.which("pasta") is None,
                                reason="pasta is missing: ./dev.sh setup installs passt")


@pytest.fixture(scope="module")
def web_image(rootless_user: RootlessUser) -> Iterator[str]:
    user = rootless_user
    work = Path(tempfile.mkdtemp(prefix="clidaily-", dir=user.base))
    layout = dailysession.web_layout(dailysession.busybox_root(work / "rootfs"), work)
    user.chown(work)
    user.unionfs("import", str(layout), "clidaily-web")
    yield "clidaily-web"
    user.unionfs("rmi", "clidaily-web")
    shutil.rmtree(work)


def test_a_podman_users_daily_session_rootless(rootless_user: RootlessUser,
                                               web_image: str) -> None:  # fmt: skip
    user = rootless_user

    def cli(*args: str) -> object:
        return user.unionfs(*args, check=False, tun=True)

    def on_a_terminal(args: Sequence[str]) -> list[str]:
        return ["runuser", "-u", user.name, "--", *user.env(), user.python, "-m", "unionfs",
                *args]  # fmt: skip

    try:
        dailysession.run_session(cli, on_a_terminal, {"PATH": PATH}, web_image, "clidaily-web")  # type: ignore[arg-type]
    finally:
        cli("rm", "-f", "clidaily-web")
    assert _processes_left(user.uid) == []  # no monitor, daemon or pasta of the container


def _interfaces(user: RootlessUser, image: str, *flags: str) -> list[str]:
    done = user.unionfs("run", "--rm", *flags, image, "cat", "/proc/net/dev", tun=True)
    return sorted(line.split(":")[0].strip() for line in done.stdout.splitlines()[2:])


def test_network_modes_rootless(rootless_user: RootlessUser, web_image: str) -> None:
    host = sorted(name for _, name in socket.if_nameindex())
    assert _interfaces(rootless_user, web_image) == ["lo"]
    assert _interfaces(rootless_user, web_image, "--network", "none") == ["lo"]
    assert _interfaces(rootless_user, web_image, "--network", "host") == host
    private = _interfaces(rootless_user, web_image, "--network", "private")
    assert "lo" in private and len(private) == 2, private  # and pasta's interface


def test_an_unusable_tun_device_is_one_line_with_the_fix(rootless_user: RootlessUser,
                                                         web_image: str) -> None:  # fmt: skip
    if not Path("/dev/net/tun").exists() or Path("/dev/net/tun").stat().st_mode & 0o006:
        pytest.skip("/dev/net/tun is usable by everyone here")
    done = rootless_user.unionfs("run", "--rm", "-p", "1:2", web_image, "true", check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "unionfs: --network private and -p need /dev/net/tun usable by you (udev makes it "
        "0666; here it is not): as root, chmod 666 /dev/net/tun")


def test_volume_init_and_top_rootless(rootless_user: RootlessUser, web_image: str) -> None:
    """A named volume in the user's store, catatonit as PID 1 and top's view of both
    processes, as the user."""
    if shutil.which("catatonit") is None:
        pytest.skip("catatonit is missing: ./dev.sh setup installs it")
    user = rootless_user
    c = "clidaily-top"
    try:
        user.unionfs("run", "-d", "--name", c, "--init", "-v", "clidaily-data:/data", web_image,
                     "sh", "-c", "echo kept > /data/f; exec sleep 300")  # fmt: skip
        assert wait_until(lambda: "sleep 300" in user.unionfs("top", c, "args").stdout, 60)
        shown = user.unionfs("top", c, "user", "pid", "ppid", "args").stdout.splitlines()
        rows = [line.split(None, 3) for line in shown[1:]]
        assert rows == [["root", "1", "0", "/run/podman-init -- sh -c echo kept > /data/f; "
                         "exec sleep 300"], ["root", "2", "1", "sleep 300"]]  # fmt: skip
    finally:
        user.unionfs("rm", "-f", c, check=False)
    read = user.unionfs("run", "--rm", "-v", "clidaily-data:/d", web_image, "cat", "/d/f")
    assert read.stdout == "kept\n"
    assert user.unionfs("volume", "rm", "clidaily-data").stdout == "clidaily-data\n"
