"""Overlapping layers and in-use marks (``unionfs.layercheck``) on plain directories."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from unionfs import layercheck
from unionfs.errors import UserError
from unionfs.layercheck import Layer


def layers(tmp_path: Path, *spec: tuple[str, str]) -> list[Layer]:
    found = []
    for role, rel in spec:
        path = tmp_path / rel
        path.mkdir(parents=True, exist_ok=True)
        found.append(Layer(role, rel, str(path)))
    return found


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ((("lowerdir", "l"), ("lowerdir", "l")), "given twice"),
        ((("lowerdir", "w"), ("upperdir", "u"), ("workdir", "w")), "also the workdir"),
        ((("lowerdir", "l/sub"), ("lowerdir", "l")), "inside the lowerdir 'l'"),
        ((("lowerdir", "l"), ("lowerdir", "l/sub")), "inside the lowerdir 'l'"),
        ((("lowerdir", "u/in"), ("upperdir", "u"), ("workdir", "w")), "inside the upperdir"),
        ((("lowerdir", "w/x/y"), ("upperdir", "u"), ("workdir", "w")), "inside the workdir"),
    ],
)
def test_overlapping_layers_are_refused(
    tmp_path: Path, spec: tuple[tuple[str, str], ...], words: str
) -> None:
    with pytest.raises(UserError) as info:
        layercheck.overlaps(layers(tmp_path, *spec))
    assert words in info.value.message and "ELOOP" in info.value.message


def test_separate_layers_and_an_upper_inside_a_lower_pass(tmp_path: Path) -> None:
    layercheck.overlaps(layers(tmp_path, ("lowerdir", "a"), ("lowerdir", "b"),
                               ("upperdir", "a/up"), ("workdir", "w")))  # fmt: skip


def test_a_lower_given_through_a_symlink_is_the_same_layer(tmp_path: Path) -> None:
    (tmp_path / "l").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "l")
    twice = [Layer("lowerdir", "l", str(tmp_path / "l")),
             Layer("lowerdir", "link", str(tmp_path / "link"))]  # fmt: skip
    with pytest.raises(UserError):
        layercheck.overlaps(twice)


def test_a_mark_is_seen_below_it_and_goes_with_its_descriptor(tmp_path: Path) -> None:
    (tmp_path / "u" / "in").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    assert not layercheck.in_use(str(tmp_path / "u" / "in"), set())
    marks = layercheck.mark_in_use([str(tmp_path / "u")])
    assert len(marks) == 1
    assert not layercheck.marked_by_others(marks[0])  # one's own mark
    assert layercheck.in_use(str(tmp_path / "u"), set())
    assert layercheck.in_use(str(tmp_path / "u" / "in"), set())
    assert not layercheck.in_use(str(tmp_path / "other"), set())
    os.close(marks[0])
    assert not layercheck.in_use(str(tmp_path / "u" / "in"), set())


def test_in_use_refuses_with_index_and_warns_without(tmp_path: Path) -> None:
    (tmp_path / "u").mkdir()
    marks = layercheck.mark_in_use([str(tmp_path / "u")])
    try:
        layer = Layer("upperdir", "u", str(tmp_path / "u"))
        warnings = layercheck.check_in_use([layer], index=False)
        assert len(warnings) == 1 and "undefined" in warnings[0]
        with pytest.raises(UserError) as info:
            layercheck.check_in_use([layer], index=True)
        assert "EBUSY" in info.value.message
    finally:
        os.close(marks[0])


def test_an_upper_keeps_the_origin_of_its_first_lower(tmp_path: Path) -> None:
    for d in ("u", "l1", "l2"):
        (tmp_path / d).mkdir()
    upper = str(tmp_path / "u")
    layercheck.check_origin(upper, "u", str(tmp_path / "l1"))  # records it
    layercheck.check_origin(upper, "u", str(tmp_path / "l1"))
    with pytest.raises(UserError) as info:
        layercheck.check_origin(upper, "u", str(tmp_path / "l2"))
    assert "ESTALE" in info.value.message


HOLDER = """
import os, sys, time
from unionfs import layercheck, livemounts
marks = layercheck.mark_in_use(sys.argv[1:3])
livemounts.register(livemounts.Listing(sys.argv[3], (), sys.argv[1], sys.argv[2], "unionfs",
                                       os.getpid(), livemounts.process_start(os.getpid())))
print("ready", flush=True)
if sys.argv[4] != "never":
    time.sleep(float(sys.argv[4]))
    for fd in marks:
        os.close(fd)
time.sleep(600)
"""


@pytest.fixture
def leaving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """A daemon on its way out: recorded for a mount point that is no longer mounted, still
    marking u and w; it lets go after the given seconds (or never)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    started: list[subprocess.Popen[str]] = []

    def start(after: str) -> None:
        argv = [sys.executable, "-c", HOLDER, str(tmp_path / "u"), str(tmp_path / "w"),
                str(tmp_path / "gone"), after]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_a_daemon_whose_mount_is_gone_is_waited_for(
    tmp_path: Path, leaving: Callable[[str], None]
) -> None:
    """``umount; mount`` of the same layers: the kernel's in-use flag goes with the unmount,
    a daemon's mark a moment later. A mount waits for a daemon it finds recorded for a
    mount point that is no longer mounted."""
    spec = layers(tmp_path, ("lowerdir", "l"), ("upperdir", "u"), ("workdir", "w"))
    leaving("0.3")
    assert layercheck.check_in_use(spec, index=True) == []


def test_a_leaving_daemon_that_never_lets_go_is_in_use(
    tmp_path: Path, leaving: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = layers(tmp_path, ("lowerdir", "l"), ("upperdir", "u"), ("workdir", "w"))
    monkeypatch.setattr(layercheck, "LEAVING", 0.2)
    leaving("never")
    with pytest.raises(UserError, match="EBUSY"):
        layercheck.check_in_use(spec, index=True)
