"""``unionfs stop [-t N] C...``: SIGTERM to each container's process, SIGKILL after N
seconds (its saved ``--stop-timeout``, 10 by default), then wait until its runtime has
recorded the exit and cleaned up; prints each C, as podman. ``restart`` shares it.
"""

from __future__ import annotations

import argparse
import os
import signal

from unionfs.errors import UserError
from unionfs.runtime import detach
from unionfs.runtime.state import ContainerDirs, State, default_home, describe

RUNTIME_PATIENCE = 120.0  # seconds for a runtime to clean up after its process is gone


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("stop", help="stop running containers (TERM, then KILL)",
                       description=__doc__)  # fmt: skip
    add_timeout(p)
    p.add_argument("containers", nargs="+", metavar="C", help="name or id")


def add_timeout(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--time", type=float, default=None, metavar="SECONDS",
                   help="SIGKILL this long after SIGTERM (default: the container's "
                   "--stop-timeout, 10)")  # fmt: skip


def stop(dirs: ContainerDirs, state: State, timeout: float | None) -> None:
    """Stop *state*'s container if it runs; return once its runtime is done."""
    status = describe(state)
    if status == "starting":
        raise UserError(f"container {state.name} is starting: try again")
    if status not in ("running", "stopping"):
        return
    if timeout is None:
        saved = dirs.load_spec(state)
        timeout = saved.stop_timeout if saved is not None else 10.0
    if timeout < 0:
        raise UserError(f"stop -t {timeout:g}: give 0 or more seconds", exit_code=2)
    assert state.pid is not None
    try:
        os.kill(state.pid, signal.SIGTERM)
        if not detach.wait_for_exit(state, timeout):
            os.kill(state.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it exited meanwhile
    if not detach.wait_for_runtime(state, RUNTIME_PATIENCE):
        raise UserError(f"container {state.name}: its runtime did not finish in "
                        f"{RUNTIME_PATIENCE:g}s (pid {state.runtime_pid})")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    dirs = ContainerDirs(default_home())
    for ref in args.containers:
        stop(dirs, dirs.find(ref), args.time)
        print(ref)
    return 0
