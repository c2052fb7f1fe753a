"""Counting the FUSE requests of one mount from the kernel's side, for any FUSE daemon alike.

Linux (6.15 on) has the tracepoints ``fuse:fuse_request_send`` and ``fuse:fuse_request_end``
with the connection, the request's unique id and its opcode. A private tracefs instance
(its own ring buffer, filtered to one connection) records them while a workload runs;
pairing send and end by id gives requests per opcode and the round-trip time of each as
the kernel saw it (queueing in the daemon included). Owns its tracefs mount and instance
and removes both; knows nothing of workloads.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BUFFER_KB = 32768  # per CPU; the reader drains it while the workload runs
LINE = re.compile(
    rb"\s(\d+\.\d+): fuse_request_(send|end): connection \d+ req (\d+)"
    rb"(?: opcode \d+ \((\w+)\))?(?: len \d+ error (-?\d+))?"
)


@dataclass
class OpStats:
    requests: int = 0
    answered: int = 0  # requests whose end was seen (FORGET has none)
    seconds: float = 0.0  # summed round trips of the answered ones
    errors: dict[int, int] = field(default_factory=dict)  # errno answered -> how often


@dataclass
class Trace:
    ops: dict[str, OpStats] = field(default_factory=dict)
    lost: int = 0  # events the ring buffer overwrote (the counts are then a floor)

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.ops.values())

    def as_json(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "lost_events": self.lost,
            "ops": {
                k: {"requests": s.requests, "answered": s.answered,
                    "seconds": round(s.seconds, 6), "errors": s.errors}
                for k, s in sorted(self.ops.items())
            },
        }


def parse(chunks: list[bytes]) -> Trace:
    """Pair the send and end events in *chunks* (trace_pipe text) into per-opcode stats."""
    trace = Trace()
    pending: dict[bytes, tuple[str, float]] = {}
    for line in b"".join(chunks).splitlines():
        m = LINE.search(line)
        if m is None:
            continue
        ts, kind, unique, opname, error = m.groups()
        if kind == b"send":
            name = (opname or b"?").decode().removeprefix("FUSE_")
            trace.ops.setdefault(name, OpStats()).requests += 1
            pending[unique] = (name, float(ts))
        elif unique in pending:
            name, sent = pending.pop(unique)
            stats = trace.ops[name]
            stats.answered += 1
            stats.seconds += float(ts) - sent
            if error and error != b"0":
                code = -int(error)
                stats.errors[code] = stats.errors.get(code, 0) + 1
    return trace


def connection(mnt: Path) -> int:
    """The kernel's dev_t of a FUSE mount (what the tracepoints call its connection)."""
    dev = os.stat(mnt).st_dev
    return (os.major(dev) << 20) | os.minor(dev)


def available() -> str | None:
    """None if tracing FUSE requests works here, else why not."""
    if not Path("/proc/filesystems").read_text().count("tracefs"):
        return "no tracefs in this kernel"
    return None


class Tracer:
    """A tracefs mount under *place* with one instance; ``record(mnt)`` traces one pass."""

    def __init__(self, place: Path) -> None:
        self.place = place
        self.root = place / "tracefs"
        self.instance: Path | None = None

    def __enter__(self) -> Tracer:
        self.root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(self.root)], check=True)
        inst = self.root / "instances" / f"unionfs-bench-{os.getpid()}"
        inst.mkdir()
        self.instance = inst
        (inst / "buffer_size_kb").write_text(f"{BUFFER_KB}\n")
        if not (inst / "events" / "fuse" / "fuse_request_send").is_dir():
            self.__exit__(None, None, None)
            raise OSError("the kernel has no fuse_request_send tracepoint (Linux < 6.15)")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.instance is not None:
            for event in ("fuse_request_send", "fuse_request_end"):
                (self.instance / "events" / "fuse" / event / "enable").write_text("0\n")
            try:
                self.instance.rmdir()
            except OSError:
                pass
            self.instance = None
        subprocess.run(["umount", str(self.root)], capture_output=True, check=False)
        subprocess.run(["umount", "-l", str(self.root)], capture_output=True, check=False)
        try:
            self.root.rmdir()
        except OSError:
            pass

    @contextmanager
    def record(self, mnt: Path) -> Iterator[Trace]:
        """Trace the requests of *mnt*'s connection during the ``with`` block; the Trace
        yielded is filled in when the block ends."""
        assert self.instance is not None
        inst = self.instance
        conn = connection(mnt)
        events = [inst / "events" / "fuse" / e for e in ("fuse_request_send", "fuse_request_end")]
        for ev in events:
            (ev / "filter").write_text(f"connection == {conn}\n")
        (inst / "trace").write_text("")  # clears the buffer
        fd = os.open(inst / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
        chunks: list[bytes] = []
        stop = threading.Event()

        def drain() -> None:
            while True:
                try:
                    data = os.read(fd, 1 << 20)
                except BlockingIOError:
                    if stop.is_set():
                        return
                    time.sleep(0.05)
                    continue
                if not data:
                    return
                chunks.append(data)

        lost_before = self._overruns()
        reader = threading.Thread(target=drain, daemon=True)
        for ev in events:
            (ev / "enable").write_text("1\n")
        reader.start()
        result = Trace()
        try:
            yield result
        finally:
            for ev in events:
                (ev / "enable").write_text("0\n")
            stop.set()
            reader.join()
            os.close(fd)
            got = parse(chunks)
            result.ops, result.lost = got.ops, self._overruns() - lost_before

    def _overruns(self) -> int:
        assert self.instance is not None
        lost = 0
        for stats in (self.instance / "per_cpu").glob("cpu*/stats"):
            m = re.search(r"^overrun: (\d+)", stats.read_text(), re.M)
            lost += int(m[1]) if m else 0
        return lost
