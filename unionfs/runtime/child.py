"""``python -m unionfs.runtime.child FD``: the helper process that becomes the container.

Entry point only: read the plan from the channel on FD and hand it to the executor. It
is exec'd fresh by ``helper.Helper`` so that it has exactly one thread; it must import
nothing that starts threads.
"""

from __future__ import annotations

import os
import sys

from unionfs.runtime import executor, steps
from unionfs.runtime.helper import SETUP_FAILED, inherited_channel


def main(argv: list[str]) -> None:
    channel = inherited_channel(int(argv[1]))
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
