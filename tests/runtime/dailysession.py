"""The issue-21 session of a podman user's daily habits, run through the unionfs CLI by
whoever calls it (root in tests/runtime, a fresh user in tests/rootless): ``run -d -p``,
an HTTP GET of the published port, ``logs``, ``ps --format json``, ``exec -it sh`` on a
real terminal, ``stop``, ``rm``, ``images --filter dangling=true -q``, ``image prune -f``.
The image is busybox with /www/index.html (``web_layout``), imported by the caller."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from patience import Deadline, scaled
from store.storeutil import oci_layout, tar_dir

from runtime import ptyutil

PAGE = "hello from the container\n"
Cli = Callable[..., subprocess.CompletedProcess[str]]


def busybox_root(root: Path) -> Path:
    """Debian's busybox-static, installed with ``busybox --install -s`` into *root*."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    assert os.path.exists(busybox), "busybox is missing: ./dev.sh setup installs busybox-static"
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    subprocess.run(["chroot", str(root), "/bin/busybox", "--install", "-s"], check=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\ntty:x:5:\n")
    (root / "tmp").chmod(0o1777)
    return root


def web_layout(rootfs: Path, work: Path) -> Path:
    """An OCI layout: *rootfs* (busybox) plus /www/index.html, WorkingDir /www."""
    site = work / "site"
    (site / "www").mkdir(parents=True)
    (site / "www" / "index.html").write_text(PAGE)
    layers = [tar_dir(rootfs, work / "bb.tar").read_bytes(),
              tar_dir(site, work / "site.tar").read_bytes()]  # fmt: skip
    oci_layout(work / "layout", layers, settings={"WorkingDir": "/www",
               "Env": ["PATH=/bin:/sbin:/usr/bin:/usr/sbin"], "Cmd": ["sh"]})  # fmt: skip
    return work / "layout"


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


def run_session(cli: Cli, pty_argv: Callable[[Sequence[str]], list[str]],
                env: dict[str, str], image: str, name: str) -> None:  # fmt: skip
    """The session, each step checked as a user would see it. *cli(*args)* runs unionfs;
    *pty_argv(args)* is the command line that runs ``unionfs *args`` on a terminal."""
    port = free_port()
    made = cli("run", "-d", "--name", name, "-p", f"{port}:80", image, "httpd", "-f", "-v")
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"[0-9a-f]{32,64}\n", made.stdout), made.stdout  # the id alone
    assert fetch(f"http://127.0.0.1:{port}/") == PAGE
    logged = cli("logs", name)  # httpd -v logs each request on stderr
    assert logged.returncode == 0 and "response:200" in logged.stderr, logged
    listed = json.loads(cli("ps", "--format", "json").stdout)
    assert [(e["Names"], e["State"]) for e in listed] == [([name], "running")]
    assert listed[0]["Ports"] == [{"host_ip": "", "container_port": 80, "host_port": port,
                                   "range": 1, "protocol": "tcp"}]  # fmt: skip
    assert f"0.0.0.0:{port}->80/tcp" in cli("ps").stdout
    shell = ptyutil.run(pty_argv(["exec", "-it", name, "sh"]), env,
                        script=[(b"# ", b"echo inside-$((40+2)) $(pwd) $TERM; tty; exit 5\r")])
    said = shell.output.decode(errors="replace")
    assert "inside-42 /www xterm" in said and "/dev/pts/" in said, said
    assert shell.code == 5, said
    assert cli("stop", "-t", "1", name).stdout == f"{name}\n"
    removed = cli("rm", name)
    assert (removed.returncode, removed.stdout) == (0, name + "\n"), removed
    assert cli("ps", "-aq").stdout == ""
    with socket.socket() as s:  # the port is closed with the container
        s.settimeout(scaled(5))
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert cli("images", "--filter", "dangling=true", "-q").stdout == ""
    pruned = cli("image", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
