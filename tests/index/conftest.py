from __future__ import annotations

from pathlib import Path

import pytest

from .indexutil import Calls


@pytest.fixture
def indexdir(tmp_path: Path) -> Path:
    """This test's own index directory (created by the index itself)."""
    return tmp_path / "index"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Counts of the scans, fingerprints and stack merges the index performs."""
    return Calls(monkeypatch)
