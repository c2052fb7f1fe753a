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
