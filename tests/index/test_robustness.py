"""Bad input never gives a wrong answer: a corrupt, foreign, truncated or old index is set
aside with a warning and rebuilt; a build killed at any moment leaves an index that is
complete or rebuilt; a full disk makes the index unavailable (``IndexUnavailable``), never
a crash.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import lmdb
import pytest
from layers import WHITEOUT_CHR, Opaque
from layers import build as make_layer
from mountutil import unionfs_cmd
from patience import scaled

from unionfs.index import build, verify
from unionfs.index.env import FORMAT, IndexEnv, IndexUnavailable

from .indexutil import (
    Calls,
    compare,
    dir_layers,
    opened,
    real,
    tables_in_use,
    tables_on_disk,
    tiny_tmpfs,
)

STACK = [
    {"a": "top", "gone": WHITEOUT_CHR, "o/": Opaque({"t": "t"}), "d/": {"x": "x"}},
    {"a": "bottom", "gone": "hidden", "o/": {"hidden": "h"}, "d/": {"y": "y"}},
]


def make_stack(tmp_path: Path) -> list[Path]:
    return [make_layer(tmp_path / f"l{i}", spec) for i, spec in enumerate(STACK)]


def big_layer(root: Path, dirs: int = 100, files: int = 200) -> Path:
    """A layer of dirs * files small files (20,000 by default)."""
    root.mkdir()
    for i in range(dirs):
        d = root / f"d{i:03}"
        d.mkdir()
        for j in range(files):
            (d / f"f{j:03}").write_bytes(b"%d" % j)
    return root


def warnings_about(caplog: pytest.LogCaptureFixture, where: Path) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and str(where) in r.getMessage()
    ]


def assert_right(indexdir: Path, dirs: list[Path]) -> None:
    with opened(indexdir, dirs) as index:
        assert verify.verify(index.view, index.layers) == []
        assert compare(index.view, index.layers) == []


# -- files that are not our index ----------------------------------------------------------


@pytest.mark.parametrize("size", [16, 4096, 12288, 65536])
def test_a_data_file_of_garbage_is_set_aside_with_a_warning_and_rebuilt(
    size: int, tmp_path: Path, indexdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dirs = make_stack(tmp_path)
    indexdir.mkdir()
    (indexdir / "data.mdb").write_bytes(random.Random(size).randbytes(size))
    with caplog.at_level(logging.WARNING, logger="unionfs.index"):
        assert_right(indexdir, dirs)
    assert len(warnings_about(caplog, indexdir)) == 1


def test_a_corrupted_index_is_rebuilt(
    tmp_path: Path, indexdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real index whose pages after the two meta pages were overwritten."""
    dirs = make_stack(tmp_path)
    assert_right(indexdir, dirs)
    data = indexdir / "data.mdb"
    with open(data, "r+b") as f:
        f.seek(2 * 4096)
        f.write(random.Random(1).randbytes(data.stat().st_size - 2 * 4096))
    with caplog.at_level(logging.WARNING, logger="unionfs.index"):
        assert_right(indexdir, dirs)
    assert warnings_about(caplog, indexdir)


def test_a_truncated_index_is_set_aside_and_rebuilt(tmp_path: Path, indexdir: Path) -> None:
    """A data file shorter than its meta page says (a partial copy, a damaged disk).
    Run in a child: reading past the end of a mapped file is SIGBUS, not an exception."""
    dirs = [big_layer(tmp_path / "big", dirs=20, files=200)]
    with opened(indexdir, dirs):
        pass
    data = indexdir / "data.mdb"
    os.truncate(data, data.stat().st_size // 2)
    opts = f"lowerdir={dirs[0]},indexdir={indexdir}"
    result = subprocess.run(
        unionfs_cmd("index", "verify", "-o", opts),
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "matches" in result.stdout


def test_a_foreign_lmdb_environment_is_set_aside_and_rebuilt(
    tmp_path: Path, indexdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another program's LMDB database at the index path: not ours to write into."""
    dirs = make_stack(tmp_path)
    foreign = lmdb.open(str(indexdir), max_dbs=4)
    other = foreign.open_db(b"other-app")
    with foreign.begin(write=True) as txn:
        txn.put(b"their-key", b"their value", db=other)
        txn.put(b"config", b"{}")
    foreign.close()
    with caplog.at_level(logging.WARNING, logger="unionfs.index"):
        assert_right(indexdir, dirs)
    assert warnings_about(caplog, indexdir), "a foreign database was used without a word"
    env = lmdb.open(str(indexdir), max_dbs=4, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            names = {bytes(k) for k, _ in txn.cursor()}
    finally:
        env.close()
    assert b"other-app" not in names and b"config" not in names


def test_a_foreign_environment_with_a_plain_meta_key_is_rebuilt(
    tmp_path: Path, indexdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dirs = make_stack(tmp_path)
    foreign = lmdb.open(str(indexdir))
    with foreign.begin(write=True) as txn:
        txn.put(b"meta", b"not a database")
    foreign.close()
    with caplog.at_level(logging.WARNING, logger="unionfs.index"):
        assert_right(indexdir, dirs)
    assert len(warnings_about(caplog, indexdir)) == 1


def test_an_index_of_another_format_version_is_rebuilt(
    tmp_path: Path, indexdir: Path, caplog: pytest.LogCaptureFixture, calls: Calls
) -> None:
    dirs = make_stack(tmp_path)
    assert_right(indexdir, dirs)
    env = lmdb.open(str(indexdir), max_dbs=4)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        assert txn.get(b"format", db=meta) == FORMAT
        txn.put(b"format", b"unionfs-index-1", db=meta)
    env.close()
    calls.reset()
    with caplog.at_level(logging.WARNING, logger="unionfs.index"):
        assert_right(indexdir, dirs)
    assert len(warnings_about(caplog, indexdir)) == 1
    assert sorted(calls.scanned) == sorted(real(d) for d in dirs)


def test_entries_without_a_format_record_are_not_trusted(
    tmp_path: Path, indexdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dirs = make_stack(tmp_path)
    assert_right(indexdir, dirs)
    env = lmdb.open(str(indexdir), max_dbs=4)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.delete(b"format", db=meta)
    env.close()
    with caplog.at_level(logging.WARNING, logger="unionfs.index"):
        assert_right(indexdir, dirs)
    assert len(warnings_about(caplog, indexdir)) == 1


def test_an_index_path_that_is_a_file_makes_the_index_unavailable(tmp_path: Path) -> None:
    where = tmp_path / "a-file"
    where.write_text("not a directory")
    with pytest.raises(IndexUnavailable):
        IndexEnv(str(where))


# -- a build killed at any moment ----------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A 20,000-file layer and how long a first build of its index takes."""
    base = tmp_path_factory.mktemp("big")
    layer = big_layer(base / "layer")
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _build_and_exit(base / "timing-index", [layer])
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return layer, time.monotonic() - start


def _build_and_exit(indexdir: Path, dirs: list[Path], notify: int | None = None) -> None:
    """In a forked child: build the index of *dirs*, then leave without cleanup. With
    *notify*, write a byte to that descriptor as each table starts being written."""
    code = 1
    try:
        if notify is not None:
            write_table = build._write_table

            def announced(*args: object) -> None:
                os.write(notify, b"w")
                write_table(*args)  # type: ignore[arg-type]

            build._write_table = announced  # type: ignore[assignment]  # this child only
        with dir_layers(dirs) as layers:
            env = IndexEnv(str(indexdir))
            build.open_lowers(env, layers)
            env.close()
        code = 0
    finally:
        os._exit(code)


def _killed_while_building(indexdir: Path, dirs: list[Path], delay: float) -> int:
    """Fork a child that builds the index; SIGKILL it after *delay* seconds. Returns the
    child's wait status."""
    pid = os.fork()
    if pid == 0:
        _build_and_exit(indexdir, dirs)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return status


# The default tier kills a first build early and late and a reindex midway; the slow tier
# sweeps the rest of the moments. The deterministic kills inside the write transaction
# (below) run in every tier: they hit the moments that matter most on purpose.
FRACTIONS = [pytest.param(0.1, marks=pytest.mark.slow), 0.35,
             pytest.param(0.6, marks=pytest.mark.slow), 0.85,
             pytest.param(1.2, marks=pytest.mark.slow)]  # fmt: skip


@pytest.mark.parametrize("fraction", FRACTIONS)
def test_a_first_build_killed_at_any_moment_leaves_a_complete_or_rebuilt_index(
    fraction: float, big: tuple[Path, float], tmp_path: Path, indexdir: Path
) -> None:
    layer, took = big
    extra = make_layer(tmp_path / "top", {"d000/": Opaque({"only": "o"}), "d001": WHITEOUT_CHR})
    dirs = [extra, layer]
    jitter = random.Random(fraction).uniform(0.9, 1.1)
    _killed_while_building(indexdir, dirs, took * fraction * jitter)
    with opened(indexdir, dirs) as index:
        assert verify.verify(index.view, index.layers) == []


@pytest.mark.parametrize("nth", [2, 3], ids=["big-layer-table", "stack-table"])
@pytest.mark.parametrize("delay", [0.0, 0.002, 0.008])
def test_a_build_killed_while_writing_a_table_leaves_a_complete_or_rebuilt_index(
    nth: int, delay: float, big: tuple[Path, float], tmp_path: Path, indexdir: Path
) -> None:
    """The moments that matter most, hit on purpose: inside the write transaction."""
    layer, _ = big
    top = make_layer(tmp_path / "top", {"d005/": {"x": "x"}, "d006": WHITEOUT_CHR})
    dirs = [top, layer]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        _build_and_exit(indexdir, dirs, notify=write_end)
    os.close(write_end)
    try:
        for _ in range(nth):  # the top layer's table, then the big layer's, then the stack's
            assert os.read(read_end, 1) == b"w", "the child ended before writing"
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    finally:
        os.close(read_end)
    with opened(indexdir, dirs) as index:
        assert verify.verify(index.view, index.layers) == []


@pytest.mark.parametrize("fraction", [pytest.param(0.2, marks=pytest.mark.slow), 0.5,
                                      pytest.param(0.8, marks=pytest.mark.slow)])  # fmt: skip
def test_a_reindex_killed_at_any_moment_never_serves_the_old_or_a_partial_view(
    fraction: float, big: tuple[Path, float], tmp_path: Path, indexdir: Path
) -> None:
    layer, took = big
    top = make_layer(tmp_path / "top", {"d002/": {"extra": "e"}})
    dirs = [top, layer]
    with opened(indexdir, dirs):
        pass
    (top / "d002/extra").unlink()
    (top / "d003").mkdir()
    (top / "d003/.wh..wh..opq").write_text("")
    _killed_while_building(indexdir, dirs, took * fraction)
    with opened(indexdir, dirs) as index:
        assert index.view.lstat(b"d002/extra") is None
        assert list(index.view.scandir(b"d003")) == []
        assert verify.verify(index.view, index.layers) == []


def test_mounts_building_the_same_index_at_once_agree_and_leave_no_orphans(
    big: tuple[Path, float], tmp_path: Path, indexdir: Path
) -> None:
    children = 3
    layer, _ = big
    top = make_layer(tmp_path / "top", {"d004/": Opaque({"x": "x"})})
    dirs = [top, layer]
    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            _build_and_exit(indexdir, dirs)
        pids.append(pid)
    statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert statuses == [0] * children
    with opened(indexdir, dirs) as index:
        assert verify.verify(index.view, index.layers) == []
        assert tables_on_disk(index.env) == tables_in_use(index.env)
        assert len(tables_in_use(index.env)) == 3


# -- a full disk ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", ["8k", "16k", "32k", "64k", "256k"])
def test_an_index_that_cannot_fit_on_its_disk_is_unavailable(size: str, tmp_path: Path) -> None:
    dirs = [big_layer(tmp_path / "layer", dirs=20, files=100)]
    with tiny_tmpfs(tmp_path / "tiny", size) as tiny, dir_layers(dirs) as layers:
        env = None
        try:
            with pytest.raises(IndexUnavailable):
                env = IndexEnv(str(tiny / "index"))
                build.open_lowers(env, layers)
        finally:
            if env is not None:
                env.close()


def test_a_full_disk_leaves_an_index_that_works_once_there_is_room(tmp_path: Path) -> None:
    """After a failed build the same index directory, given room, builds and is right."""
    dirs = [big_layer(tmp_path / "layer", dirs=20, files=100)]
    with tiny_tmpfs(tmp_path / "tiny", "64k") as tiny:
        with dir_layers(dirs) as layers:
            env = IndexEnv(str(tiny / "index"))
            try:
                with pytest.raises(Exception):  # noqa: B017 -- any failure, as long as it fails
                    build.open_lowers(env, layers)
            finally:
                env.close()
        subprocess.run(["mount", "-o", "remount,size=16m", str(tiny)], check=True)
        assert_right(tiny / "index", dirs)
