"""``unionfs kill C [SIGNAL]``: send a signal (default KILL, as docker) to a container's
process. The pid is checked against its recorded start time, so a reused pid is never hit.
"""

from __future__ import annotations

import argparse
import os
import signal

from unionfs.errors import UserError
from unionfs.runtime.enter import running
from unionfs.runtime.state import ContainerDirs, default_home


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("kill", help="send a signal to a container's process")
    p.add_argument("container", help="name or id")
    p.add_argument("signal", nargs="?", default="KILL", help="name or number (default KILL)")


def parse_signal(text: str) -> signal.Signals:
    name = text.upper()
    try:
        if name.isdigit():
            return signal.Signals(int(name))
        return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
    except (KeyError, ValueError):
        raise UserError(f"unknown signal {text!r}") from None


def run(args: argparse.Namespace) -> int:
    sig = parse_signal(args.signal)
    state = running(ContainerDirs(default_home()), args.container)
    assert state.pid is not None
    try:
        os.kill(state.pid, sig)
    except ProcessLookupError:
        raise UserError(f"container {state.name} is not running") from None
    return 0
