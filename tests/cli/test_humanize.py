"""Sizes and durations in podman's words (docker's go-units)."""

from __future__ import annotations

import time

import pytest

from unionfs.cli import humanize


@pytest.mark.parametrize(
    ("n", "images", "df"),
    [
        (0, "0 B", "0B"),
        (868, "868 B", "868B"),
        (1997905, "2 MB", "1.998MB"),  # podman 4.3 on the busybox test image
        (12345678, "12.3 MB", "12.35MB"),
        (999500, "1e+03 kB", "999.5kB"),  # go's %.3g, as podman prints it
        (5 * 10**12, "5 TB", "5TB"),
    ],
)
def test_sizes_as_podman_images_and_system_df(n: int, images: str, df: str) -> None:
    assert humanize.image_size(n) == images
    assert humanize.size(n) == df


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0.4, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
        (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"),
        (3600, "About an hour"), (5400, "2 hours"), (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"), (14 * 86400, "2 weeks"), (61 * 86400, "2 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_durations_as_go_units(seconds: float, said: str) -> None:
    assert humanize.duration(seconds) == said


def test_times_as_go_prints_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        when = humanize.parse_time("2026-12-07T12:12:17.832094865Z")
        assert humanize.rfc3339(when) == "2026-12-07T12:12:17Z"
        assert humanize.go_time(when) == "2026-12-07 12:12:17.832094 +0000 UTC"
        assert humanize.go_time(humanize.parse_time("2026-12-07T12:12:17Z")) == (
            "2026-12-07 12:12:17 +0000 UTC"
        )
        assert humanize.parse_time("not a time") is None
    finally:
        monkeypatch.undo()
        time.tzset()
