"""tests/binding: the ``toy`` fixture mounts toyfs.py with chosen features (toymount.py)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from toymount import Toy, toy_mount


@pytest.fixture
def toy(newdir: Callable[..., Path]) -> Callable[..., AbstractContextManager[Toy]]:
    """``with toy("cache_readdir") as t:``: a fresh backing dir mounted with those features."""

    def make(*features: str) -> AbstractContextManager[Toy]:
        return toy_mount(newdir("backing"), newdir("mnt"), features)

    return make
