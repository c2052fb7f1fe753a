"""A tar member's attributes given to what extraction made of it: owner, mode, xattrs
(overlay names escaped: a tar may not set a marker) and mtime. Where the store may not keep
owners or an xattr it says so once and goes on; any other failure is raised. It makes no
entry, and reaches paths only through the ``LayerDir`` it is given.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from unionfs import layerfmt
from unionfs.safepath import LayerDir
from unionfs.store.tarread import Member, show

_XATTR_SKIPPABLE = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES, errno.E2BIG)


class MemberAttrs:
    """Sets attributes in one layer being extracted. ``chown`` turns False at the first
    owner the store may not keep (a rootless store): one warning, then owners are skipped."""

    def __init__(self, layer: LayerDir, warn: Callable[[str], None],
                 warn_once: Callable[[str, str], None]) -> None:  # fmt: skip
        self.layer = layer
        self.warn = warn
        self.warn_once = warn_once  # (key, message): the extraction's one warning per key
        self.chown = os.geteuid() == 0

    def _owner(self, member: Member, fchown: Callable[[int, int], None]) -> None:
        if not self.chown:
            return
        try:
            fchown(member.uid, member.gid)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EINVAL):
                raise
            self.chown = False
            self.warn(f"owners are not kept ({exc.strerror} for {show(member.name)})")

    def _xattrs(self, member: Member, setter: Callable[[bytes, bytes], None]) -> None:
        for name, value in member.xattrs.items():
            try:
                # A tar may not set an overlay marker: its overlay names stay user data.
                setter(layerfmt.escape_xattr(name), value)
            except OSError as exc:
                if exc.errno not in _XATTR_SKIPPABLE:
                    raise
                self.warn_once(
                    f"x:{name!r}:{exc.errno}",
                    f"xattr {show(name)} not kept ({exc.strerror}), first on {show(member.name)}",
                )

    def on_fd(self, fd: int, member: Member) -> None:
        self._owner(member, lambda u, g: os.fchown(fd, u, g))
        os.fchmod(fd, member.mode)  # after chown, which clears set-id bits
        self._xattrs(member, lambda n, v: os.setxattr(fd, n, v))
        os.utime(fd, ns=(member.mtime_ns, member.mtime_ns))

    def on_path(self, path: bytes, member: Member, symlink: bool = False) -> None:
        fd = self.layer.opath(path)
        try:
            where = f"/proc/self/fd/{fd}"
            if symlink:  # lchown: the magic link would be followed to the symlink's target
                base, name = self.layer.at(path)
                self._owner(
                    member,
                    lambda u, g: os.chown(name, u, g, dir_fd=base, follow_symlinks=False),
                )
            else:
                self._owner(member, lambda u, g: os.chown(where, u, g))
                os.chmod(where, member.mode)
            self._xattrs(member, lambda n, v: os.setxattr(where, n, v))
        finally:
            os.close(fd)
        self.layer.utime(path, (member.mtime_ns, member.mtime_ns))
