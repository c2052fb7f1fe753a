"""The slow link of ``bench.lazypull``: Debian's ``docker-registry`` on a loopback, with
its blob answers counted from its access log, reached through a shaping proxy (a rate
and a one-way delay; ``tc``'s netem is missing on this kernel), in a network namespace of
our own. It measures nothing itself and knows no unionfs command.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import typing
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

_ACCESS = re.compile(r'"GET (\S+/blobs/\S+) HTTP/[0-9.]+" (\d{3}) (\d+)')


class ShapingProxy:
    """TCP from *port* to *target*: each direction a link of *rate* bytes/s (its bytes
    leave one after another) and *delay* seconds of propagation, order kept."""

    def __init__(self, target: int, rate: float, delay: float) -> None:
        import asyncio
        import threading

        self.target, self.rate, self.delay = target, rate, delay
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = 0

        async def start() -> None:
            server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            await server.serve_forever()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(start(),),
                                       daemon=True)  # fmt: skip
        self.thread.start()
        ready.wait()

    async def _client(self, reader: typing.Any, writer: typing.Any) -> None:
        import asyncio

        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)  # fmt: skip

    async def _pipe(self, reader: typing.Any, writer: typing.Any) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        link_free = loop.time()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(16384):
                link_free = max(loop.time(), link_free) + len(data) / self.rate
                await queue.put((link_free + self.delay, data))
                if link_free - loop.time() > 0.05:  # keep the sender's window honest
                    await asyncio.sleep(link_free - loop.time() - 0.05)
        finally:
            await queue.put((0.0, b""))
            await sender


class Registry:
    def __init__(self, work: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        config = work / "registry.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {work / 'storage'}\n"
            f"http:\n  addr: {self.host}\n"
        )
        self.log = work / "registry.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)],
                                         stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=5).close()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise SystemExit("bench: docker-registry did not start")

    def mark(self) -> int:
        return self.log.stat().st_size

    def blob_bytes(self, since: int) -> tuple[int, int]:
        """(bytes, requests) of blob GET answers logged after *since*."""
        text = self.log.read_bytes()[since:].decode(errors="replace")
        found = [int(m[3]) for m in _ACCESS.finditer(text) if m[2] in ("200", "206")]
        return sum(found), len(found)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait()


@contextlib.contextmanager
def netns(name: str) -> Iterator[str]:
    subprocess.run(["ip", "netns", "add", name], check=True, text=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
