"""The daemon's open-file limit is not its clients' (issue 16.6).

A user's shell usually has a soft RLIMIT_NOFILE of 1,024 under a higher hard limit. The
daemon holds descriptors for the files its clients open, so it raises its soft limit to the
hard one when it starts: mounted from such a shell, clients must together be able to hold
more than 1,024 files of the mount open.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from mountutil import build_stack, daemon_pid, fresh_dir, tree, unionfs_mount
from patience import Deadline

SHELL_SOFT_LIMIT = 1024
CLIENTS = 3
PER_CLIENT = 600  # 1,800 together: more than the shell's limit, well below the hard one
DEADLINE = 120.0  # for the daemon to answer the releases: generous, the machine is shared

# A client: opens its share of the files and holds them; says how many it got (or the
# first error), then waits for a line on stdin before it lets them go.
CLIENT = """
import os, sys
mnt, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = []
try:
    for i in range(first, first + count):
        held.append(os.open(os.path.join(mnt, "files", f"f{i % 50}"), os.O_RDONLY))
    print(len(held), flush=True)
except OSError as exc:
    print(f"{len(held)} {exc!r}", flush=True)
sys.stdin.readline()
"""


@contextlib.contextmanager
def soft_limit(limit: int) -> Iterator[None]:
    """This process's soft RLIMIT_NOFILE is *limit* while the body runs (children started
    meanwhile inherit it), as after ``ulimit -Sn`` in a shell."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard > CLIENTS * PER_CLIENT + 100, f"the hard limit ({hard}) is too low to test"
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_clients_together_hold_more_files_open_than_the_mounting_shells_limit(
    tmp_path: Path,
) -> None:
    lowers = build_stack(tmp_path, [tree({"files": {f"f{i}": b"x" * i for i in range(50)}})], True)
    with contextlib.ExitStack() as stack:
        with soft_limit(SHELL_SOFT_LIMIT):
            mnt = stack.enter_context(unionfs_mount(lowers, fresh_dir(tmp_path, "mnt")))
        daemon = daemon_pid(mnt)
        at_rest = len(os.listdir(f"/proc/{daemon}/fd"))
        argv = [sys.executable, "-c", CLIENT, str(mnt)]
        clients = [
            subprocess.Popen(
                [*argv, str(i * PER_CLIENT), str(PER_CLIENT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(CLIENTS)
        ]
        try:
            said = []
            for client in clients:  # each answers once it holds all its files, or failed
                assert client.stdout is not None
                said.append(client.stdout.readline().strip())
        finally:
            for client in clients:
                client.communicate("done\n")
        assert said == [str(PER_CLIENT)] * CLIENTS
        # The kernel sends the releases in the background: let the daemon answer them all
        # before the unmount (which would abort those still queued).
        deadline = Deadline(DEADLINE)
        while len(os.listdir(f"/proc/{daemon}/fd")) > at_rest + 1:
            assert not deadline.expired(), "the daemon still holds the clients' files"
            time.sleep(0.01)
