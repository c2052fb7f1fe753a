"""``MountState.changing``, the mutation lock: free, it is taken without a round through
trio's scheduler; held (a copy-up in a worker thread), a second change waits its turn."""

from __future__ import annotations

import trio
import trio.testing

from .conftest import MakeOps


def test_a_free_lock_is_taken_without_letting_other_tasks_run(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "x"}, upper={})
    seen: list[bool] = []

    async def main() -> None:
        ran = trio.Event()

        async def other() -> None:
            ran.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)  # runs at this task's next checkpoint
            async with ops.changing():
                seen.append(ran.is_set())
            await ran.wait()

    trio.run(main)
    assert seen == [False]
    assert not ops.lock.locked()


def test_a_held_lock_makes_the_next_change_wait(make_ops: MakeOps) -> None:
    ops = make_ops({"f": "x"}, upper={})
    order: list[str] = []

    async def main() -> None:
        inside, go_on = trio.Event(), trio.Event()

        async def first() -> None:
            async with ops.changing():
                order.append("first in")
                inside.set()
                await go_on.wait()  # as a copy-up sent to a thread awaits
                order.append("first out")

        async def second() -> None:
            await inside.wait()
            async with ops.changing():
                order.append("second in")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            nursery.start_soon(second)
            await inside.wait()
            await trio.testing.wait_all_tasks_blocked()
            order.append("released")
            go_on.set()

    trio.run(main)
    assert order == ["first in", "released", "first out", "second in"]
    assert not ops.lock.locked()
