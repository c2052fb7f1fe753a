"""A container's network: ``--network none|host|private`` and ``-p`` publishing, through
Debian's ``pasta`` (package passt), as podman does rootless; no network code of our own.

``none`` is a network namespace with loopback only; ``host`` is the host's; ``private``
is a namespace of its own that ``pasta`` connects to the host (the container reaches out
through it) and into which it forwards the published ports (``-p [IP:]HOST:CTR[/tcp|udp]``;
a connection to the host's loopback reaches the container's). pasta is given the
namespace as a bind mount of /proc/PID/ns/net (a path of the container's directory), and
is stopped, the bind undone, by ``Pasta.close``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass

from unionfs.errors import UserError

MODES = ("none", "host", "private")
_PUBLISH = re.compile(r"(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(?P<host>\d+):(?P<ctr>\d+)"
                      r"(?:/(?P<proto>tcp|udp))?")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Port:
    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""  # "": every address of the host

    def __str__(self) -> str:
        """As podman's PORTS column: ``0.0.0.0:8080->80/tcp``."""
        host = self.host_ip or "0.0.0.0"
        return f"{host}:{self.host_port}->{self.container_port}/{self.protocol}"


def parse_publish(text: str) -> Port:
    """``8080:80``, ``127.0.0.1:8080:80/udp`` -> Port; anything else a one-line error."""
    match = _PUBLISH.fullmatch(text)
    if match is None:
        raise UserError(f"-p {text}: give [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp], e.g. 8080:80",
                        exit_code=2)  # fmt: skip
    ip = (match["ip"] or "").strip("[]")
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise UserError(f"-p {text}: {ip} is not an IP address", exit_code=2) from None
    ports = int(match["host"]), int(match["ctr"])
    for port in ports:
        if not 0 < port < 65536:
            raise UserError(f"-p {text}: {port} is not a port (1-65535)", exit_code=2)
    return Port(ports[0], ports[1], match["proto"] or "tcp", ip)


def mode_for(network: str | None, ports: tuple[Port, ...]) -> str:
    """The mode: the one given, else ``private`` when ports are published, else ``none``."""
    mode = network or ("private" if ports else "none")
    if mode not in MODES:
        raise UserError(f"--network {mode}: give none, host or private", exit_code=2)
    if ports and mode != "private":
        raise UserError(f"-p needs a network of the container's own, not --network {mode}",
                        exit_code=2)  # fmt: skip
    return mode


TUN = "/dev/net/tun"


def check_tun(mode: str) -> None:
    """As an ordinary user (before its user namespace is entered): pasta opens /dev/net/tun
    as that user, for a private network; refuse early, with the fix, when it cannot."""
    if mode == "private" and not os.access(TUN, os.R_OK | os.W_OK):
        raise UserError(f"--network private and -p need {TUN} usable by you (udev makes it "
                        f"0666; here it is not): as root, chmod 666 {TUN}")  # fmt: skip


def _spec(port: Port) -> list[str]:
    where = f"{port.host_ip}/" if port.host_ip else ""
    flag = "-t" if port.protocol == "tcp" else "-u"
    return [flag, f"{where}{port.host_port}:{port.container_port}"]


def is_pasta(comm: str) -> bool:
    """*comm* is pasta's (Debian's pasta re-executes passt.avx2 where the CPU has AVX2)."""
    return comm.split(".")[0] in ("pasta", "passt")


class Pasta:
    """pasta serving the network namespace of process *pid*; ``close`` stops it."""

    def __init__(self, pid: int, workdir: str, ports: tuple[Port, ...]) -> None:
        program = shutil.which("pasta")
        if program is None:
            raise UserError("--network private and -p need pasta: apt-get install passt")
        self.nsfile = os.path.join(workdir, "netns")
        self.pidfile = os.path.join(workdir, "pasta.pid")
        self.bound = False
        with open(self.nsfile, "w", encoding="ascii"):
            pass
        self._bind(f"/proc/{pid}/ns/net")
        args = [program, "--config-net", "-q", "--runas", str(os.geteuid()), "-P",
                self.pidfile, "--no-map-gw", "-T", "none", "-U", "none"]  # fmt: skip
        for flag, protocol in (("-t", "tcp"), ("-u", "udp")):
            # "none": only what is published (pasta's default forwards every bound port)
            specs = [_spec(p) for p in ports if p.protocol == protocol] or [[flag, "none"]]
            args += [word for spec in specs for word in spec]
        done = subprocess.run([*args, "--netns", self.nsfile], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            said = [ln for ln in done.stderr.splitlines() if "syslog" not in ln]
            self.close()
            raise UserError(f"pasta could not connect the container: "
                            f"{said[-1] if said else f'exit {done.returncode}'}")  # fmt: skip

    def _bind(self, source: str) -> None:
        done = subprocess.run(["mount", "--bind", source, self.nsfile], capture_output=True,
                              text=True, check=False)  # fmt: skip
        if done.returncode != 0:
            raise UserError(f"cannot hold the container's network namespace: "
                            f"{done.stderr.strip()}")  # fmt: skip
        self.bound = True

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            with open(self.pidfile, encoding="ascii") as f:
                pid = int(f.read().strip())
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                with open(f"/proc/{pid}/comm", encoding="ascii") as f:
                    mine = is_pasta(f.read().strip())
                if mine:
                    os.kill(pid, signal.SIGTERM)
            os.unlink(self.pidfile)
        if self.bound:
            subprocess.run(["umount", "-l", self.nsfile], capture_output=True, check=False)
            self.bound = False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.nsfile)

