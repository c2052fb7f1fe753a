"""FUSE_PARALLEL_DIROPS, not mounted: unionfs asks for it (third_party/pyfuse3 patch 0017;
tests/binding/test_loop.py shows what the kernel then does). Its lookups and listings change
nothing and never wait, so several in one directory at once are safe."""

from __future__ import annotations

from unionfs.fuse import features
from unionfs.fuse.ops import UnionOperations


def test_parallel_dirops_are_asked_for() -> None:
    assert UnionOperations.enable_parallel_dirops is True
    assert "parallel_dirops" in features.KNOWN
