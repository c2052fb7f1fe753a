"""The store's temps: what ``scratch.reclaim`` removes and what it must leave to its writer."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from unionfs.store import scratch


def reclaim(directory: Path) -> list[str]:
    problems: list[str] = []
    gone = scratch.reclaim(str(directory), problems.append)
    assert problems == []
    return gone


def test_a_temp_in_use_is_kept_and_goes_with_its_writer(tmp_path: Path) -> None:
    with scratch.temp_dir(str(tmp_path)) as path:
        (Path(path) / "f").write_bytes(b"x")
        assert reclaim(tmp_path) == []
        assert (Path(path) / "f").read_bytes() == b"x"
    assert os.listdir(tmp_path) == []  # not renamed away: removed, lock file and all


def test_a_temp_renamed_into_place_stays_and_its_lock_file_goes(tmp_path: Path) -> None:
    with scratch.temp_file(str(tmp_path)) as (path, f):
        f.write(b"blob")
        f.flush()
        os.rename(path, tmp_path / "final")
    assert os.listdir(tmp_path) == ["final"]
    assert (tmp_path / "final").read_bytes() == b"blob"


def test_temps_nobody_holds_are_removed_read_only_trees_too(tmp_path: Path) -> None:
    unheld = tmp_path / ".tmp-1-aa"  # its lock file exists, nobody holds it
    (unheld / "ro").mkdir(parents=True)
    (unheld / "ro/f").write_bytes(b"x")
    (unheld / "ro").chmod(0o555)
    unheld.chmod(0o500)
    (tmp_path / ".tmp-1-aa.lock").write_bytes(b"")
    (tmp_path / ".tmp-2-bb").write_bytes(b"no lock file: its writer had removed it")
    (tmp_path / ".tmp-3-cc.lock").write_bytes(b"")  # a writer killed before its temp
    (tmp_path / ".rm-sha256-4").mkdir()  # a layer removal cut short (made under the lock)
    (tmp_path / "kept").mkdir()
    assert reclaim(tmp_path) == [".rm-sha256-4", ".tmp-1-aa.lock", ".tmp-2-bb", ".tmp-3-cc.lock"]
    assert os.listdir(tmp_path) == ["kept"]


def test_a_lock_held_through_another_descriptor_keeps_its_temp(tmp_path: Path) -> None:
    """flock belongs to an open file: the check works within one process too."""
    (tmp_path / ".tmp-1-aa").mkdir()
    fd = os.open(tmp_path / ".tmp-1-aa.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert reclaim(tmp_path) == []
        assert sorted(os.listdir(tmp_path)) == [".tmp-1-aa", ".tmp-1-aa.lock"]
    finally:
        os.close(fd)
    assert reclaim(tmp_path) == [".tmp-1-aa.lock"]
    assert os.listdir(tmp_path) == []


def test_a_writer_whose_lock_file_was_reclaimed_takes_a_new_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between creating the lock file and locking it: a reclaim there removes
    the lock file, and the writer, finding it unlinked once locked, starts over."""
    real_flock = fcntl.flock
    raced: list[str] = []
    calls = []

    def flock_after_a_reclaim(fd: int, op: int) -> None:
        calls.append(op)
        if len(calls) == 1:  # the writer's first lock: a reclaim runs first
            raced.extend(reclaim(tmp_path))
        real_flock(fd, op)

    monkeypatch.setattr(scratch.fcntl, "flock", flock_after_a_reclaim)
    with scratch.temp_dir(str(tmp_path)) as path:
        assert len(raced) == 1 and raced[0].endswith(".lock")
        assert not path.startswith(str(tmp_path / raced[0].removesuffix(".lock")))
        assert sorted(os.listdir(tmp_path)) == [
            os.path.basename(path),
            f"{os.path.basename(path)}.lock",
        ]
