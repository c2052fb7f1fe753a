"""A detached container's output: ``ctr.log`` in its state directory, bounded in size.

Lines as podman's k8s-file driver writes them (``TIME STREAM P|F TEXT``: P a partial line,
F a full one), so ``logs -t`` shows when each came and on which stream. When ``ctr.log``
passes its limit it becomes ``ctr.log.1`` (replacing the older one): at most twice the
limit is kept. This module writes and reads those files only; ``Streams`` feeds the sink.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_MAX = 1 << 20  # bytes of one file; two are kept


def now_text() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}+00:00"


class Sink:
    """Appends what the container wrote to *path*, a line per entry, rotating at *limit*."""

    def __init__(self, path: str, limit: int = DEFAULT_MAX) -> None:
        self.path = path
        self.limit = max(limit, 4096)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self.fd).st_size

    def write(self, stream: str, data: bytes) -> None:
        """*data* read from *stream* (stdout or stderr): each line an entry, the rest P."""
        stamp = now_text().encode()
        most = self.limit // 4  # a longer line is cut into P entries
        for line in data.splitlines(keepends=True):
            for at in range(0, len(line), most):
                piece = line[at : at + most]
                full = piece.endswith(b"\n")
                text = piece[:-1] if full else piece
                entry = b"%s %s %s %s\n" % (stamp, stream.encode(), b"PF"[full : full + 1], text)
                if self.size and self.size + len(entry) > self.limit:
                    self._rotate()
                os.write(self.fd, entry)
                self.size += len(entry)

    def _rotate(self) -> None:
        os.replace(self.path, self.path + ".1")
        os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                          0o600)  # fmt: skip
        self.size = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(frozen=True, slots=True)
class Entry:
    time: str
    stream: str
    text: bytes  # with its newline unless partial


def parse(line: bytes) -> Entry | None:
    """One line of a log file; None for a line that is not an entry (cut by a crash)."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"P", b"F"):
        return None
    text = parts[3] if len(parts) == 4 else b""
    return Entry(parts[0].decode(), parts[1].decode(), text + (b"\n" if parts[2] == b"F" else b""))


def entries(path: str) -> Iterator[Entry]:
    """What is in the rotated file, then the current one (missing ones are empty)."""
    for name in (path + ".1", path):
        try:
            with open(name, "rb") as f:
                for line in f:
                    if line.endswith(b"\n"):
                        found = parse(line)
                        if found is not None:
                            yield found
        except FileNotFoundError:
            continue
