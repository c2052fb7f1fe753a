"""Parsing the values of limit flags: ``--memory 64m``, ``--cpus 0.5``, ``--pids 100``.

Pure. Every bad value is a ``UserError`` that names the flag and says what is accepted.
"""

from __future__ import annotations

import re

from unionfs.errors import UserError

CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000  # the kernel refuses a CFS quota below 1 ms
MIN_MEMORY = 6 * 1024 * 1024  # as docker: less cannot even start a process reliably

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_bytes(text: str, flag: str) -> int:
    """``64m`` -> 67108864. Suffixes b, k, m, g, t, p (binary, as docker), optional b/ib."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise UserError(f"{flag} {text!r}: not a size (examples: 64m, 1g, 512k, 1048576)")
    number, unit, _ = match.groups()
    return int(float(number) * 1024 ** _POWERS[unit.lower()])


def parse_memory(text: str, flag: str = "--memory") -> int:
    """``64m`` -> 67108864, at least 6m."""
    value = parse_bytes(text, flag)
    if value < MIN_MEMORY:
        raise UserError(f"{flag} {text!r}: the minimum memory limit is 6m")
    return value


def parse_cpus(text: str, flag: str = "--cpus") -> tuple[int, int]:
    """``0.5`` -> (quota, period) in microseconds: (50000, 100000)."""
    try:
        cpus = float(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: not a number of CPUs (example: 0.5)") from None
    if not cpus > 0 or cpus != cpus or cpus == float("inf"):
        raise UserError(f"{flag} {text!r}: must be a number of CPUs greater than 0")
    quota = round(cpus * CPU_PERIOD_US)
    if quota < MIN_CPU_QUOTA_US:
        raise UserError(f"{flag} {text!r}: the smallest CPU limit is 0.01")
    return quota, CPU_PERIOD_US


def parse_pids(text: str, flag: str = "--pids") -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: not a whole number of processes") from None
    if value < 1:
        raise UserError(f"{flag} {text!r}: must be at least 1")
    return value


def format_bytes(value: int | None) -> str:
    """1536 -> '1.5KiB'; None -> '-'."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.4g}{unit}"
        size /= 1024
    raise AssertionError("unreachable")
