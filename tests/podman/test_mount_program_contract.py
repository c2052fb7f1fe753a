"""unionfs called the way podman calls its mount program, without podman (a real mount).

``PROGRAM -o OPTS TARGET`` from ``<graphroot>/overlay``, stdin and stdout /dev/null, stderr a
pipe read until EOF (and, as podman does, another inherited descriptor): the call returns
once the mount is live and every pipe is closed; errors are one line on stderr; the daemon
exits by itself when another process runs ``fusermount3 -u``.
"""

from __future__ import annotations

import errno
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mountutil import force_unmount, is_mounted
from patience import scaled
from podmanutil import live_processes_mentioning, wait_until_gone

UNIONFS = str(Path(sys.executable).with_name("unionfs"))  # not Debian's /usr/bin/unionfs
CALL_TIMEOUT = 60.0
LAYERS = 500


def call_like_podman(cwd: Path, opts: str, target: Path | str) -> tuple[int, str, bytes]:
    """(exit code, stderr, what the extra inherited pipe saw) once both pipes hit EOF."""
    extra_read, extra_write = os.pipe()
    try:
        proc = subprocess.Popen(
            [UNIONFS, "-o", opts, str(target)], cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(extra_write,),
        )  # fmt: skip
        os.close(extra_write)
        extra_write = -1
        # communicate() returns only at EOF on stderr: a daemon holding it would hang here.
        _out, err = proc.communicate(timeout=scaled(CALL_TIMEOUT))
        # EOF only once the daemon closed its inherited copy too.
        ready, _w, _x = select.select([extra_read], [], [], scaled(CALL_TIMEOUT))
        assert ready, "the daemon kept a descriptor its caller passed it open"
        return proc.returncode, err.decode(), os.read(extra_read, 100)
    finally:
        for fd in (extra_read, extra_write):
            if fd >= 0:
                os.close(fd)


@pytest.fixture
def graph(tmp_path: Path) -> Path:
    """A containers/storage-like overlay dir: ``<id>/diff`` layers, ``l/`` short links."""
    overlay = tmp_path / "graph" / "overlay"
    (overlay / "l").mkdir(parents=True)
    for i in range(LAYERS):
        diff = overlay / f"layer{i:03d}" / "diff"
        diff.mkdir(parents=True)
        os.symlink(f"../layer{i:03d}/diff", overlay / "l" / f"L{i:03d}")
    bottom = overlay / f"layer{LAYERS - 1:03d}" / "diff"
    (bottom / "etc").mkdir()
    (bottom / "etc" / "gone").write_text("gone\n")
    (bottom / "etc" / "kept").write_text("kept\n")
    (bottom / "opq").mkdir()
    (bottom / "opq" / "old").write_text("old\n")
    # A layer podman wrote from a tar: AUFS/OCI whiteouts (0000 empty files), an opaque dir.
    middle = overlay / "layer250" / "diff"
    (middle / "etc").mkdir()
    wh = middle / "etc" / ".wh.gone"
    wh.touch()
    wh.chmod(0)
    (middle / "opq").mkdir()
    (middle / "opq" / ".wh..wh..opq").touch()
    (middle / "opq" / "new").write_text("new\n")
    (overlay / "layer000" / "diff" / "top").write_text("top\n")
    return overlay


@pytest.fixture
def target(graph: Path) -> Iterator[Path]:
    merged = graph / "c1" / "merged"
    merged.mkdir(parents=True)
    try:
        yield merged
    finally:
        force_unmount(merged)
        assert not wait_until_gone(str(merged)), "the daemon outlived its mount"


def lowerdir(graph: Path) -> str:
    return "lowerdir=" + ":".join(str(graph / "l" / f"L{i:03d}") for i in range(LAYERS))


def test_a_container_mount_is_live_on_return_and_ends_with_fusermount(
    graph: Path, target: Path
) -> None:
    upper, work = graph / "c1" / "diff", graph / "c1" / "work"
    upper.mkdir()
    work.mkdir()
    opts = (
        f"{lowerdir(graph)},upperdir={upper},workdir={work},,volatile,fsync=0,"
        'context="system_u:object_r:container_file_t:s0:c1,c2",xattr_permissions=0,'
    )
    assert len(opts) > 20_000
    rc, err, extra = call_like_podman(graph, opts, target)
    assert (rc, err, extra) == (0, "", b"")
    assert is_mounted(target)  # live on return: no waiting
    assert sorted(os.listdir(target)) == ["etc", "opq", "top"]
    assert sorted(os.listdir(target / "etc")) == ["kept"]
    assert sorted(os.listdir(target / "opq")) == ["new"]
    (target / "etc" / "kept").write_text("changed\n")
    os.unlink(target / "top")
    assert (upper / "etc" / "kept").read_text() == "changed\n"
    # podman unmounts from another process; the daemon must notice and exit by itself.
    daemons = live_processes_mentioning(str(target))
    assert daemons, "no daemon serves the mount"
    subprocess.run(["fusermount3", "-u", str(target)], check=True)
    assert not wait_until_gone(str(target))
    assert not is_mounted(target)


def test_an_image_mount_without_upper_is_read_only(graph: Path, target: Path) -> None:
    rc, err, _extra = call_like_podman(graph, lowerdir(graph), target)
    assert (rc, err) == (0, "")
    with pytest.raises(OSError) as info:
        (target / "new").write_text("x")
    assert info.value.errno == errno.EROFS
    assert (target / "etc" / "kept").read_text() == "kept\n"


def test_a_failure_is_one_line_on_stderr_and_leaves_nothing(graph: Path, target: Path) -> None:
    rc, err, extra = call_like_podman(graph, f"lowerdir={graph}/l/MISSING,,volatile", target)
    assert rc != 0 and extra == b""
    assert err == f"unionfs: lowerdir '{graph}/l/MISSING' does not exist\n"
    assert not is_mounted(target)


def test_a_keep_id_uid_map_shows_translated_owners(graph: Path, target: Path) -> None:
    """podman --userns=keep-id (user 1001): stored 0..1000 show as 1..1001, 1001 as 0."""
    os.chown(graph / f"layer{LAYERS - 1:03d}" / "diff" / "etc" / "kept", 1001, 1001)
    opts = f"{lowerdir(graph)},uidmapping=:0:1:1001:1001:0:1:1002:1002:64535"
    rc, err, _extra = call_like_podman(graph, opts, target)
    assert (rc, err) == (0, "")
    assert (target / "etc" / "kept").stat().st_uid == 0
    assert (target / "etc").stat().st_uid == 1


def test_version_answers_podman_info() -> None:
    proc = subprocess.run([UNIONFS, "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("unionfs ")


def test_relative_paths_from_the_overlay_dir_as_for_long_stacks(graph: Path, target: Path) -> None:
    """containers/storage switches to ``l/``-relative paths when the options get long."""
    (graph / "c1" / "diff").mkdir()
    (graph / "c1" / "work").mkdir()
    lowers = ":".join(f"l/L{i:03d}" for i in range(LAYERS))
    opts = f"lowerdir={lowers},upperdir=c1/diff,workdir=c1/work,,volatile"
    rc, err, _extra = call_like_podman(graph, opts, target.relative_to(graph))
    assert (rc, err) == (0, "")
    assert sorted(os.listdir(target / "etc")) == ["kept"]
    (target / "new").write_text("new\n")
    assert (graph / "c1" / "diff" / "new").read_text() == "new\n"
