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
    """``make_ops(*lowers, upper=None, features=None)``: the Operations of a new stack,
    not mounted."""
    made: list[UnionOperations] = []

    def make(
        *lowers: Spec, upper: Spec | None = None, features: Features | None = None
    ) -> UnionOperations:
        ops = UnionOperations(layers.stack(*lowers, upper=upper, features=features))
        made.append(ops)
        return ops

    yield make
    for ops in made:
        ops.handles.close_all()
        if ops.atime is not None:
            ops.atime.close()
