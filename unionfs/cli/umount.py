"""``unionfs umount MNT|C``: unmount a unionfs mount (its daemon then exits by itself)."""

from __future__ import annotations

import argparse
import os
import subprocess

from unionfs import livemounts
from unionfs.errors import UserError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("umount", help="unmount a unionfs mount, or a container's root")
    p.add_argument("mountpoint", metavar="MOUNTPOINT|CONTAINER")
    p.add_argument("-z", "--lazy", action="store_true", help="detach now, clean up when unused")


def run(args: argparse.Namespace) -> int:
    mnt = os.path.realpath(args.mountpoint)
    fstype = livemounts.fstype_at(mnt)
    if fstype is None and "/" not in args.mountpoint:
        from unionfs.cli.storecli import umount_container  # `unionfs umount C`

        if umount_container(args.mountpoint) is not None:
            return 0
    if fstype is None:
        raise UserError(f"{args.mountpoint} is not mounted")
    if fstype != "fuse.unionfs":
        raise UserError(f"{args.mountpoint} is a {fstype} mount, not a unionfs one")
    cmd = ["fusermount3", "-u" + ("z" if args.lazy else ""), mnt]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        reason = proc.stderr.strip().splitlines()[-1:] or ["fusermount3 failed"]
        raise UserError(f"cannot unmount {args.mountpoint}: {reason[0]}")
    return 0
