"""Networking as podman gives it: ``--network none|host|private`` and ``-p`` publishing
through Debian's pasta, and the daily session of issue 21 (``run -d -p``, curl, ``logs``,
``ps --format json``, ``exec -it``, ``stop``, ``rm``, ``images --filter dangling=true -q``,
``image prune -f``) unchanged with unionfs in place of podman. Only loopback is used."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from patience import Deadline, scaled
from store.storeutil import oci_layout, tar_dir

from runtime.containerutil import Runtime, unique_name

NO_PASTA = "pasta is missing: ./dev.sh setup installs passt"
pytestmark = pytest.mark.skipif(shutil.which("pasta") is None, reason=NO_PASTA)


@pytest.fixture(autouse=True)
def _unionfs_runtime_only(oci_runtime: str) -> None:
    """Detached runs, pasta and the rest are unionfs's own runtime's (runc and crun get no
    monitor of ours): their parametrizations of the slow tier are skipped."""
    if oci_runtime != "unionfs":
        pytest.skip(f"unionfs's own runtime only, not {oci_runtime}")


@pytest.fixture
def web_image(runtime: Runtime, busybox_rootfs: Path, tmp_path: Path) -> str:
    """busybox with /www/index.html, WorkingDir /www (httpd -f serves its directory)."""
    site = tmp_path / "site"
    (site / "www").mkdir(parents=True)
    (site / "www" / "index.html").write_text("hello from the container\n")
    layers = [tar_dir(busybox_rootfs, tmp_path / "bb.tar").read_bytes(),
              tar_dir(site, tmp_path / "site.tar").read_bytes()]  # fmt: skip
    oci_layout(tmp_path / "layout", layers, settings={"WorkingDir": "/www",
               "Env": ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"], "Cmd": ["sh"]})  # fmt: skip
    done = runtime("import", str(tmp_path / "layout"), "web-img")
    assert done.returncode == 0, done.stderr
    return "web-img"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str) -> str:
    """GET *url*, retried until the server listens (it starts after run -d returns)."""
    deadline = Deadline(30)
    while True:
        try:
            with urllib.request.urlopen(url, timeout=scaled(10)) as answer:
                return str(answer.read().decode())
        except (urllib.error.URLError, ConnectionError) as exc:
            if deadline.expired():
                raise AssertionError(f"{url} did not answer: {exc}") from None
            time.sleep(0.05)


def test_a_podman_users_daily_session(runtime: Runtime, web_image: str) -> None:
    port = free_port()
    c = unique_name()
    made = runtime("run", "-d", "--name", c, "-p", f"{port}:80", web_image, "httpd", "-f", "-v")
    assert made.returncode == 0, made.stderr
    assert fetch(f"http://127.0.0.1:{port}/") == "hello from the container\n"
    logged = runtime("logs", c)  # httpd -v logs each request on stderr
    assert logged.returncode == 0 and "response:200" in logged.stderr, logged
    listed = json.loads(runtime("ps", "--format", "json").stdout)
    assert [(e["Names"], e["State"]) for e in listed] == [([c], "running")]
    assert listed[0]["Ports"] == [{"host_ip": "", "container_port": 80, "host_port": port,
                                   "range": 1, "protocol": "tcp"}]  # fmt: skip
    assert f"0.0.0.0:{port}->80/tcp" in runtime("ps").stdout
    shell = subprocess.run([sys.executable, "-m", "unionfs", "exec", "-it", c, "sh"],
                           input="echo inside-$((40+2)) $(pwd)\nexit\n", env=runtime.env,
                           capture_output=True, text=True, timeout=scaled(60))  # fmt: skip
    assert shell.returncode == 0 and "inside-42 /www" in shell.stdout, shell
    assert runtime("stop", "-t", "1", c).stdout == f"{c}\n"
    assert runtime("rm", c).stdout == "" and runtime("ps", "-aq").stdout == ""
    with pytest.raises(ConnectionRefusedError):  # the port is closed with the container
        socket.create_connection(("127.0.0.1", port), timeout=scaled(5)).close()
    assert runtime("images", "--filter", "dangling=true", "-q").stdout == ""
    pruned = runtime("image", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr


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
