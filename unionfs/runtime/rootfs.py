"""The container's merged root: a unionfs mount made by ``python -m unionfs mount``.

The FUSE daemon is its own process (the mount command returns once the mount is live), so
the runtime never loads pyfuse3 or trio and the namespace helper starts single-threaded.
Unmounting tries ``fusermount3 -u`` and falls back to a lazy unmount; the daemon then
exits by itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from unionfs.errors import UserError
from unionfs.runtime.ocistate import in_user_namespace

ZYGOTE_ENV = "UNIONFS_ZYGOTE"  # unionfs.zygote.client.ENV (runtime does not import zygote)


def _option_path(path: str) -> str:
    """A path as one value of ``-o``: ``\\`` and ``:`` escaped; commas and quotes refused."""
    if "," in path or '"' in path:
        raise UserError(f"cannot use {path!r} as a layer: it contains a comma or a quote")
    return path.replace("\\", "\\\\").replace(":", "\\:")


def mount_env(environ: Mapping[str, str], private_userns: bool) -> dict[str, str] | None:
    """The mount command's environment: ours, but in a user namespace of its own (a
    rootless run makes one per container) no zygote unless asked for, as it would serve
    that one mount and then keep the namespace alive while idle (``unionfs.zygote``)."""
    if not private_userns or ZYGOTE_ENV in environ:
        return None
    return {**environ, ZYGOTE_ENV: "0"}


def mount(lowers: list[str], upper: str, work: str, target: str, indexdir: str,
          extra: tuple[str, ...] = ()) -> None:  # fmt: skip
    options = ",".join([
        "lowerdir=" + ":".join(_option_path(p) for p in lowers),
        f"upperdir={_option_path(upper)}",
        f"workdir={_option_path(work)}",
        f"indexdir={_option_path(indexdir)}",
        *extra,
    ])  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "unionfs", "mount", "-o", options, target],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        env=mount_env(os.environ, in_user_namespace()),
    )
    if proc.returncode != 0:
        said = proc.stderr.strip().splitlines()
        reason = said[-1].removeprefix("unionfs: ") if said else f"exit {proc.returncode}"
        raise UserError(f"cannot mount the container's root: {reason}")


def unmount(target: str) -> None:
    """Unmount *target* if it is mounted; lazily when it is busy."""
    for args in (["fusermount3", "-u"], ["fusermount3", "-uz"], ["umount", "-l"]):
        if not os.path.ismount(target):
            return
        subprocess.run([*args, target], capture_output=True, check=False)
    if os.path.ismount(target):
        raise UserError(f"cannot unmount {target}")
