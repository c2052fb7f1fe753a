"""Opening an index asks the kernel to read its file ahead: LMDB maps it with readahead off,
so on a cold cache a mount's first lookups faulted it in one page at a time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unionfs.index.env import READ_AHEAD, IndexEnv


def test_opening_an_index_reads_its_file_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[str, int, int, int]] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        asked.append((os.readlink(f"/proc/self/fd/{fd}"), offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", spy)
    for _ in range(2):  # a new index, then the same one again
        IndexEnv(str(tmp_path / "index")).close()
    data = str(tmp_path / "index" / "data.mdb")
    assert asked == [(data, 0, READ_AHEAD, os.POSIX_FADV_WILLNEED)] * 2
