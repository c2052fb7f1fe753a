"""Sizes, durations and times as podman prints them: go-units' HumanSizeWithPrecision
(``1.998MB``; ``images`` puts a space before the unit: ``2 MB``) and HumanDuration
(``About a minute``), Go's ``time.Time.String()`` and RFC 3339. Pure: no clock but the
one passed in.
"""

from __future__ import annotations

import datetime
import re

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def size(n: float, precision: int = 4) -> str:
    """``HumanSizeWithPrecision(n, precision)``: ``1.998MB``, ``0B``, ``976.6kB``."""
    value = float(n)
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1000
        unit += 1
    return _go_g(value, precision) + _UNITS[unit]


def _go_g(value: float, precision: int) -> str:
    """Go's %.*g: like Python's, but exponents have at least two digits in both."""
    return re.sub(r"e([+-])(\d)$", r"e\g<1>0\2", f"{value:.{precision}g}")


def image_size(n: int) -> str:
    """The SIZE column of ``podman images``: 3 digits and a space before the unit."""
    text = size(n, 3)
    split = len(text.rstrip("kMGTPEZYB"))
    return f"{text[:split]} {text[split:]}"


def duration(seconds: float) -> str:
    """go-units' HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(when: datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    """``3 minutes ago`` (podman's CREATED column); ``-`` for an unknown time."""
    if when is None:
        return "-"
    now = now or datetime.datetime.now(datetime.UTC)
    return duration((now - when).total_seconds()) + " ago"


def parse_time(text: object) -> datetime.datetime | None:
    """An RFC 3339 time (``2026-11-28T11:00:00.123456789Z``) or a Unix time, aware; None if
    it is neither. Nanoseconds are cut to microseconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return datetime.datetime.fromtimestamp(text, datetime.UTC)
    if not isinstance(text, str) or not text:
        return None
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    try:
        when = datetime.datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.UTC)


def go_time(when: datetime.datetime | None) -> str:
    """Go's ``time.Time.String()`` in local time: fractional seconds without trailing zeros."""
    if when is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    local = when.astimezone()
    frac = f".{local.microsecond:06d}".rstrip("0").rstrip(".")
    zone = local.strftime("%Z") or local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M:%S") + frac + local.strftime(" %z ") + zone


def rfc3339(when: datetime.datetime | None) -> str:
    """``2026-12-07T12:12:17Z`` (Go's RFC3339 in UTC, as podman's JSON ``CreatedAt``)."""
    if when is None:
        return "0001-01-01T00:00:00Z"
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
