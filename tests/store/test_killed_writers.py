"""``kill -9`` in the middle of ``import`` or ``commit`` leaves temps that the next store
command reclaims, and a live command's temps are never taken from it (issue 16.8).

A command is killed while it writes a blob (``blobs/sha256/.tmp-*``) or extracts a layer
(``layers/.tmp-*``): the test waits for the temp to appear, stops the command, checks the
temp is still there (else lets it go on to its next temp), and only then kills it. Then
any store command (``images``) must leave no temp of the dead command behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from patience import Deadline

from .conftest import Run
from .storeutil import rootfs

SMALL_FILES = 600
BIG = 4 << 20
DEADLINE = 300.0  # generous: the machine is shared; a command that stays alive is waited on


def big_rootfs(path: Path, seed: int) -> Path:
    """Many small files and one big incompressible one: each temp lives a while."""
    files: dict[str, bytes | str] = {f"d{i % 30}/f{i}": f"{seed}:{i}\n" for i in range(SMALL_FILES)}
    files["big"] = os.urandom(BIG)
    return rootfs(path, files)


def temps(directory: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(directory) if n.startswith(".tmp-"))
    except FileNotFoundError:
        return []


def all_temps(store: Path) -> list[str]:
    """Every temp name in the store's places for them, lock files included."""
    places = [store, store / "blobs/sha256", store / "layers"]
    places += [p for p in (store / "containers").glob("*") if p.is_dir()]
    return [f"{p.relative_to(store)}/{n}" for p in places for n in temps(p)]


def start(store: Path, *args: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "unionfs", "--root", str(store), *args]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip


def stop_while_writing(proc: subprocess.Popen[bytes], directory: Path) -> bool:
    """Wait until *proc* has a temp in *directory*, and stop it (SIGSTOP) while it has one.
    False when it exits first."""
    deadline = Deadline(DEADLINE)
    while proc.poll() is None:
        assert not deadline.expired(), f"no temp in {directory} after {deadline}"
        if [n for n in temps(directory) if not n.endswith(".lock")]:
            os.kill(proc.pid, signal.SIGSTOP)
            os.waitpid(proc.pid, os.WUNTRACED)  # it is stopped now
            if [n for n in temps(directory) if not n.endswith(".lock")]:
                return True
            os.kill(proc.pid, signal.SIGCONT)  # it had just finished that one: the next
        time.sleep(0.001)
    return False


def kill_while_writing(store: Path, directory: str, command: Callable[[int], list[str]]) -> None:
    """Run the store command ``command(attempt)`` and ``kill -9`` it while it has a temp in
    *directory*. An attempt that finished a temp before it could be stopped and then
    succeeded is followed by another, which must write new content (a new *attempt*)."""
    for attempt in range(5):
        proc = start(store, *command(attempt))
        if stop_while_writing(proc, store / directory):
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait() == -signal.SIGKILL
            return
        _, err = proc.communicate()
        assert proc.returncode == 0, err.decode()
    raise AssertionError(f"{command(0)}: never caught with a temp in {directory}")


@pytest.mark.parametrize("directory", ["blobs/sha256", "layers"])
def test_a_killed_import_leaves_nothing_after_the_next_command(
    uf: Run, tmp_path: Path, store_root: Path, directory: str
) -> None:
    def source(i: int) -> Path:
        path = tmp_path / f"rootfs{i}"
        return path if path.exists() else big_rootfs(path, i)

    kill_while_writing(store_root, directory, lambda i: ["import", str(source(i)), f"big:{i}"])
    assert temps(store_root / directory), "the killed import left no temp: nothing was tested"
    uf("images")
    assert all_temps(store_root) == []
    assert uf("import", str(source(0)), "again:1").stdout.startswith("localhost/again:1 ")
    assert all_temps(store_root) == []


@pytest.mark.parametrize("directory", ["blobs/sha256", "layers"])
def test_a_killed_commit_leaves_nothing_after_the_next_command(
    uf: Run, tmp_path: Path, store_root: Path, directory: str
) -> None:
    uf("import", str(rootfs(tmp_path / "base")), "base:1")
    cid = uf("create", "base:1", "--name", "c-killed").stdout.strip()
    upper = store_root / "containers" / cid / "upper"
    big_rootfs(upper / "added", 2)
    layers_before = sorted(os.listdir(store_root / "layers"))

    def commit(attempt: int) -> list[str]:
        (upper / f"attempt{attempt}").write_bytes(os.urandom(1000))  # a new layer each time
        return ["commit", "c-killed", f"derived:{attempt}"]

    kill_while_writing(store_root, directory, commit)
    assert temps(store_root / directory), "the killed commit left no temp: nothing was tested"
    uf("images")
    assert all_temps(store_root) == []
    if directory == "blobs/sha256":
        assert sorted(os.listdir(store_root / "layers")) == layers_before
    uf("commit", "c-killed", "derived:9")
    assert "derived" in uf("images").stdout
    assert all_temps(store_root) == []


def test_a_live_commands_temps_are_kept_while_a_dead_ones_go(
    uf: Run, tmp_path: Path, store_root: Path
) -> None:
    def dead(i: int) -> list[str]:
        return ["import", str(big_rootfs(tmp_path / f"dead{i}", 10 + i)), f"dead:{i}"]

    kill_while_writing(store_root, "layers", dead)
    left = temps(store_root / "layers")
    assert left
    live = start(store_root, "import", str(big_rootfs(tmp_path / "live", 20)), "live:1")
    try:
        assert stop_while_writing(live, store_root / "blobs/sha256")
        held = temps(store_root / "blobs/sha256")
        # the live import extracts its layer as it writes the blob: a temp in layers/ too
        held_layers = [n for n in temps(store_root / "layers") if n not in left]
        uf("images")  # reclaims, under the store lock, while the live import is stopped
        assert temps(store_root / "layers") == held_layers, "the dead import's temps were left"
        assert temps(store_root / "blobs/sha256") == held, "a live import's temp was taken"
    finally:
        os.kill(live.pid, signal.SIGCONT)
        _, err = live.communicate()
    assert live.returncode == 0, err.decode()
    assert "live" in uf("images").stdout
    assert all_temps(store_root) == []
