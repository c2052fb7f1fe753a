from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from layers import (
    LayerFactory,
    Spec,
    layer_factory,  # noqa: F401 -- the ``layers`` fixture
)

from unionfs.fuse.ops import UnionOperations
from unionfs.union.stack import Features

MakeOps = Callable[..., UnionOperations]


@pytest.fixture
def make_ops(layers: LayerFactory) -> Iterator[MakeOps]:
    """``make_ops(*lowers, upper=None, features=None, separate_ids=True)``: the Operations
    of a new stack, not mounted; ``separate_ids=False`` as with a binding whose node ids
    are the ``st_ino`` (a stock pyfuse3)."""
    made: list[UnionOperations] = []

    def make(
        *lowers: Spec,
        upper: Spec | None = None,
        features: Features | None = None,
        separate_ids: bool = True,
    ) -> UnionOperations:
        stack = layers.stack(*lowers, upper=upper, features=features)
        ops = UnionOperations(stack, separate_ids=separate_ids)
        made.append(ops)
        return ops

    yield make
    for ops in made:
        ops.handles.close_all()
        ops.inodes.close()
        if ops.atime is not None:
            ops.atime.close()
