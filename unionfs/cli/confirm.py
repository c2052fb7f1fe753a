"""The question a destructive verb asks before it acts (``image prune`` without ``-f``),
as podman asks it: ``Are you sure you want to continue? [y/N]`` on stdout, the answer
from stdin; anything but y/yes is no. No answer (stdin at its end) is an error that names
``-f``, so that a script does not silently do nothing."""

from __future__ import annotations

import sys

from unionfs.errors import UserError


def confirm(warning: str) -> bool:
    print(warning)
    print("Are you sure you want to continue? [y/N] ", end="", flush=True)
    line = sys.stdin.readline()
    if not line:
        print()
        raise UserError("no answer on stdin: give -f to go ahead without asking")
    return line.strip().lower() in ("y", "yes")
