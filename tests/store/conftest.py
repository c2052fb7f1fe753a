"""The store tests' fixtures: a private store root per test (UNIONFS_HOME and ``--root``),
the CLI run as a child process, and containers' mounts undone at teardown.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mountutil import force_unmount, mounts
from patience import scaled

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def store_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "store"
    monkeypatch.setenv("UNIONFS_HOME", str(root))
    yield root
    prefix = str(root) + "/"
    for point, _fs in reversed(mounts()):
        if point.startswith(prefix):
            force_unmount(Path(point))


@pytest.fixture
def uf(store_root: Path) -> Run:
    """``uf("images")``: the CLI on the test's store; fails the test on a non-zero exit
    unless ``ok=False``; output checked to hold no traceback."""

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "unionfs", "--root", str(store_root), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              check=False, timeout=scaled(120))  # fmt: skip
        assert "Traceback" not in proc.stderr, proc.stderr
        if ok:
            assert proc.returncode == 0, f"{args}: exit {proc.returncode}: {proc.stderr}"
        return proc

    return run
