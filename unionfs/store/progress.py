"""Progress bars for long imports, saves and commits: on stderr, only when it is a terminal.

``Progress(label, total)`` is a callable taking a byte count; it redraws at most ten times a
second and ends its line on ``done()``. Off a terminal every call is a no-op, so output
captured by scripts and tests never holds control characters.
"""

from __future__ import annotations

import sys
import time


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class Progress:
    def __init__(self, label: str, total: int | None = None, enabled: bool | None = None):
        self.label = label
        self.total = total
        self.done_bytes = 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0
        self._drawn = False

    def __call__(self, n: int) -> None:
        self.done_bytes += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        width = 30
        if self.total:
            frac = min(1.0, self.done_bytes / self.total)
            bar = "#" * int(frac * width)
            text = f"{self.label} [{bar:<{width}}] {_size(self.done_bytes)}/{_size(self.total)}"
        else:
            text = f"{self.label} {_size(self.done_bytes)}"
        sys.stderr.write("\r\033[K" + text[:120])
        sys.stderr.flush()
        self._drawn = True

    def done(self) -> None:
        if self.enabled:
            self._draw()
            sys.stderr.write("\n")
            sys.stderr.flush()
