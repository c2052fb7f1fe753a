"""``unionfs index verify|rebuild|path``, run as a user runs it (``python -m unionfs``)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
from layers import WHITEOUT_CHR, Opaque
from layers import build as make_layer
from mountutil import unionfs_cmd
from patience import scaled

from unionfs.index import codec
from unionfs.index.env import IndexEnv

from .indexutil import stack_records, tamper, with_size

STACK = [
    {"a": "top", "gone": WHITEOUT_CHR, "o/": Opaque({"t": "t"}), "d/": {"x": "xx"}},
    {"a": "bottom", "gone": "hidden", "o/": {"hidden": "h"}, "d/": {"y": "yyy"}},
]


@pytest.fixture
def stack(tmp_path: Path) -> list[Path]:
    return [make_layer(tmp_path / f"l{i}", spec) for i, spec in enumerate(STACK)]


def index_cmd(action: str, *options: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    args = [a for o in options for a in ("-o", o)]
    return subprocess.run(
        unionfs_cmd("index", action, *args),
        capture_output=True,
        text=True,
        timeout=scaled(120),
        env=env,
        cwd=cwd,
    )


def opts(layers: list[Path], indexdir: Path) -> str:
    return f"lowerdir={':'.join(str(p) for p in layers)},indexdir={indexdir}"


def stack_table(indexdir: Path) -> int:
    env = IndexEnv(str(indexdir))
    try:
        (record,) = stack_records(env).values()
        return int(record["table"])  # type: ignore[call-overload]
    finally:
        env.close()


def test_index_verify_builds_the_index_and_says_it_matches(
    stack: list[Path], indexdir: Path
) -> None:
    result = index_cmd("verify", opts(stack, indexdir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "the index matches the layers"
    assert result.stderr == ""
    assert (indexdir / "data.mdb").exists()


def test_index_verify_names_the_path_the_index_gets_wrong_and_rebuild_fixes_it(
    stack: list[Path], indexdir: Path
) -> None:
    assert index_cmd("verify", opts(stack, indexdir)).returncode == 0
    table = stack_table(indexdir)
    env = IndexEnv(str(indexdir))
    try:
        tamper(env, table, b"d/y", with_size(12345))
    finally:
        env.close()
    result = index_cmd("verify", opts(stack, indexdir))
    assert result.returncode == 1
    assert "d/y: differs in st_size" in result.stderr
    assert "1 place" in result.stderr
    assert "matches" not in result.stdout
    rebuilt = index_cmd("rebuild", opts(stack, indexdir))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "reindexed 2 layer(s)" in rebuilt.stdout
    result = index_cmd("verify", opts(stack, indexdir))
    assert result.returncode == 0, result.stderr


def test_index_verify_finds_an_entry_missing_from_the_index(
    stack: list[Path], indexdir: Path
) -> None:
    assert index_cmd("verify", opts(stack, indexdir)).returncode == 0
    table = stack_table(indexdir)
    env = IndexEnv(str(indexdir))
    try:
        extra = ((b"user.bogus", b"1"),)
        tamper(env, table, b"o/t", lambda r: dataclasses.replace(r, xattrs=extra))
        with env.write() as txn:
            assert txn.delete(codec.entry_key(table, b"d/x"), db=env.entries)
    finally:
        env.close()
    result = index_cmd("verify", opts(stack, indexdir))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "d/x: missing from the index" in lines
    assert "o/t: differs in xattrs" in lines
    assert "2 place" in result.stderr


def test_index_rebuild_of_a_stack_never_indexed_builds_it(
    stack: list[Path], indexdir: Path
) -> None:
    result = index_cmd("rebuild", opts(stack, indexdir))
    assert result.returncode == 0, result.stderr
    assert index_cmd("verify", opts(stack, indexdir)).returncode == 0


def test_index_path_prints_the_directory_given(tmp_path: Path) -> None:
    result = index_cmd("path", f"indexdir={tmp_path / 'here'}")
    assert result.returncode == 0
    assert result.stdout.strip() == str(tmp_path / "here")


def test_index_path_follows_the_environment_and_the_cache_dir(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("UNIONFS_INDEX_DIR", "XDG_CACHE_HOME")}
    result = index_cmd("path", env={**base, "UNIONFS_INDEX_DIR": str(tmp_path / "env")})
    assert result.stdout.strip() == str(tmp_path / "env")
    result = index_cmd("path", env={**base, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert result.stdout.strip() == str(tmp_path / "cache/unionfs/index")
    result = index_cmd("path", "indexdir=off", env={**base, "UNIONFS_INDEX_DIR": "/x"})
    assert result.stdout.strip() == "off"


def test_index_verify_uses_the_environment_when_no_indexdir_is_given(
    stack: list[Path], tmp_path: Path
) -> None:
    where = tmp_path / "from-env"
    lowers = f"lowerdir={':'.join(str(p) for p in stack)}"
    result = index_cmd("verify", lowers, env={**os.environ, "UNIONFS_INDEX_DIR": str(where)})
    assert result.returncode == 0, result.stderr
    assert (where / "data.mdb").exists()


def test_index_commands_refuse_an_index_that_is_off_in_one_line(stack: list[Path]) -> None:
    lowers = ":".join(str(p) for p in stack)
    result = index_cmd("verify", f"lowerdir={lowers},indexdir=off")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_index_verify_of_a_missing_layer_fails_in_one_line(tmp_path: Path) -> None:
    result = index_cmd("verify", f"lowerdir={tmp_path / 'nope'},indexdir={tmp_path / 'i'}")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert "does not exist" in result.stderr
