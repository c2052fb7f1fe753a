"""``python -m unionfs.runtime.child FD``: the helper process that becomes the container.

Entry point only: read the plan from the channel on FD and hand it to the executor. It
is exec'd fresh by ``helper.Helper`` so that it has exactly one thread; it must import
nothing that starts threads.
"""

from __future__ import annotations

import os
import sys
import typing

from unionfs.runtime import executor, steps
from unionfs.runtime.helper import SETUP_FAILED, Channel, inherited_channel


def main(argv: list[str]) -> None:
    serve(inherited_channel(int(argv[1])))


def serve(channel: Channel) -> typing.NoReturn:
    """Read the plan from *channel* and perform it (the last step execs)."""
    data = channel.recv()
    if not data:
        os._exit(SETUP_FAILED)
    try:
        plan = steps.loads(data)
    except Exception as exc:
        executor.fail(channel, SETUP_FAILED, f"unreadable plan: {exc!r}")
    executor.execute(plan, channel)


if __name__ == "__main__":
    main(sys.argv)
