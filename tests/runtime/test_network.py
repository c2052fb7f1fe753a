"""Networking as podman gives it: ``--network none|host|private`` and ``-p`` publishing
through Debian's pasta, and the daily session of issue 21 (``run -d -p``, curl, ``logs``,
``ps --format json``, ``exec -it``, ``stop``, ``rm``, ``images --filter dangling=true -q``,
``image prune -f``) unchanged with unionfs in place of podman. Only loopback is used."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from runtime import dailysession
from runtime.containerutil import Runtime, unique_name
from runtime.dailysession import fetch, free_port
from unionfs.runtime import network

NO_PASTA = "pasta is missing: ./dev.sh setup installs passt"
pytestmark = pytest.mark.skipif(shutil.which("pasta") is None, reason=NO_PASTA)


pytestmark = pytest.mark.usefixtures("unionfs_runtime_only")


@pytest.fixture
def web_image(runtime: Runtime, busybox_rootfs: Path, tmp_path: Path) -> str:
    """busybox with /www/index.html, WorkingDir /www (httpd -f serves its directory)."""
    done = runtime("import", str(dailysession.web_layout(busybox_rootfs, tmp_path)), "web-img")
    assert done.returncode == 0, done.stderr
    return "web-img"


def test_a_podman_users_daily_session(runtime: Runtime, web_image: str) -> None:
    dailysession.run_session(runtime, lambda args: runtime.cmd(*args), runtime.env, web_image,
                             f"clidaily-{unique_name()}")  # fmt: skip


def _interfaces(runtime: Runtime, image: str, *flags: str) -> list[str]:
    done = runtime("run", "--rm", *flags, image, "cat", "/proc/net/dev")
    assert done.returncode == 0, done.stderr
    return sorted(line.split(":")[0].strip() for line in done.stdout.splitlines()[2:])


def test_network_modes(runtime: Runtime, web_image: str) -> None:
    host = sorted(name for _, name in socket.if_nameindex())
    assert _interfaces(runtime, web_image) == ["lo"]  # none: loopback only
    assert _interfaces(runtime, web_image, "--network", "none") == ["lo"]
    assert _interfaces(runtime, web_image, "--network", "host") == host
    private = _interfaces(runtime, web_image, "--network", "private")
    assert "lo" in private and len(private) == 2, private  # and pasta's interface


def test_a_port_on_one_host_address(runtime: Runtime, web_image: str) -> None:
    port = free_port()
    c = unique_name()
    made = runtime("run", "-d", "--name", c, "-p", f"127.0.0.1:{port}:8080/tcp", web_image,
                   "httpd", "-f", "-p", "8080")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert fetch(f"http://127.0.0.1:{port}/") == "hello from the container\n"
    assert f"127.0.0.1:{port}->8080/tcp" in runtime("ps").stdout
    assert runtime("rm", "-f", c).returncode == 0


@pytest.mark.parametrize(("flags", "said"), [
    (["-p", "80"], "unionfs: -p 80: give [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp], e.g. 8080:80"),
    (["-p", "1:99999"], "unionfs: -p 1:99999: 99999 is not a port (1-65535)"),
    (["-p", "300.1.1.1:1:2"], "unionfs: -p 300.1.1.1:1:2: 300.1.1.1 is not an IP address"),
    (["--network", "host", "-p", "1:2"],
     "unionfs: -p needs a network of the container's own, not --network host"),
    (["--network", "bridge"], "unionfs: run: argument --network/--net: invalid choice: "
     "'bridge' (choose from 'none', 'host', 'private') (see --help)"),
])  # fmt: skip
def test_bad_network_flags_are_one_line(runtime: Runtime, web_image: str, flags: list[str],
                                        said: str) -> None:  # fmt: skip
    done = runtime("run", "--rm", *flags, web_image, "true")
    assert (done.returncode, done.stderr) == (2, said + "\n")
    assert not (runtime.home / "containers").exists()  # refused before anything was made


@pytest.mark.parametrize(("comm", "mine"), [("pasta", True), ("passt", True),
                                            ("passt.avx2", True), ("pasta.avx2", True),
                                            ("sh", False), ("pastabake", False)])  # fmt: skip
def test_pasta_is_known_by_each_of_its_names(comm: str, mine: bool) -> None:
    """close() stops pasta by its pid only if the pid is still pasta's: under the name of
    the binary Debian's pasta re-executes too (it was left running as passt.avx2)."""
    assert network.is_pasta(comm) is mine
