"""POSIX ACLs as the kernel's ``fs/posix_acl.c`` computes them: the xattr form
(``system.posix_acl_*``, version 2), what a new entry inherits from its parent's default
ACL (``posix_acl_create``), and the mode an access ACL implies (``posix_acl_equiv_mode``).

Pure values and arithmetic: reads and writes no layer, knows nothing of FUSE.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from dataclasses import dataclass

ACCESS = b"system.posix_acl_access"
DEFAULT = b"system.posix_acl_default"

VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_ENTRY = struct.Struct("<HHI")
_HEADER = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Entry:
    tag: int
    perm: int
    id: int


def parse(value: bytes) -> tuple[Entry, ...]:
    """The entries of an ACL xattr *value* (EINVAL if it is not one)."""
    if len(value) < _HEADER.size or (len(value) - _HEADER.size) % _ENTRY.size:
        raise OSError(errno.EINVAL, "not a POSIX ACL")
    if _HEADER.unpack_from(value)[0] != VERSION:
        raise OSError(errno.EOPNOTSUPP, "unknown POSIX ACL version")
    return tuple(
        Entry(*_ENTRY.unpack_from(value, offset))
        for offset in range(_HEADER.size, len(value), _ENTRY.size)
    )


def pack(entries: tuple[Entry, ...]) -> bytes:
    return _HEADER.pack(VERSION) + b"".join(_ENTRY.pack(e.tag, e.perm, e.id) for e in entries)


@dataclass(frozen=True, slots=True)
class Inherited:
    """What a new entry gets under a default ACL: its mode (type and all bits), the access
    ACL to set (None: the mode says it all) and the default ACL (directories only)."""

    mode: int
    access: bytes | None
    default: bytes | None


def inherit(default: bytes, mode: int) -> Inherited:
    """A new entry of *mode* (unmasked: the default ACL takes the umask's place) in a
    directory whose default ACL is *default*: ``posix_acl_create`` and
    ``posix_acl_create_masq``. The entry's owner, group and other classes keep only what
    the ACL grants; with a mask entry, the mask (not the owning group's entry) bounds the
    group class."""
    entries = list(parse(default))
    group_obj = mask = None
    not_equiv = False
    for i, e in enumerate(entries):
        if e.tag == USER_OBJ:
            perm = e.perm & (mode >> 6) & 7
            mode &= (perm << 6) | ~stat.S_IRWXU
        elif e.tag in (USER, GROUP):
            not_equiv = True
            continue
        elif e.tag == GROUP_OBJ:
            group_obj = i
            continue
        elif e.tag == OTHER:
            perm = e.perm & mode & 7
            mode &= perm | ~stat.S_IRWXO
        elif e.tag == MASK:
            mask = i
            not_equiv = True
            continue
        else:
            raise OSError(errno.EINVAL, "not a POSIX ACL")
        entries[i] = Entry(e.tag, perm, e.id)
    bounding = mask if mask is not None else group_obj
    if bounding is None:
        raise OSError(errno.EINVAL, "a POSIX ACL without a group entry")
    e = entries[bounding]
    perm = e.perm & (mode >> 3) & 7
    mode &= (perm << 3) | ~stat.S_IRWXG
    entries[bounding] = Entry(e.tag, perm, e.id)
    return Inherited(
        mode,
        pack(tuple(entries)) if not_equiv else None,
        default if stat.S_ISDIR(mode) else None,
    )


def mode_of(access: bytes, mode: int) -> int:
    """*mode* with its permission bits as access ACL *access* sets them
    (``posix_acl_equiv_mode``): owner, group (or the mask, if there is one) and other."""
    owner = group = other = mask = None
    for e in parse(access):
        if e.tag == USER_OBJ:
            owner = e.perm & 7
        elif e.tag == GROUP_OBJ:
            group = e.perm & 7
        elif e.tag == OTHER:
            other = e.perm & 7
        elif e.tag == MASK:
            mask = e.perm & 7
        elif e.tag not in (USER, GROUP):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    if owner is None or group is None or other is None:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
    bits = owner << 6 | (group if mask is None else mask) << 3 | other
    return mode & ~0o777 | bits
