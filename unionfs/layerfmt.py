"""The on-disk markers of a layer, shared with kernel overlayfs and OCI tarballs.

Whiteout: a character device 0/0 named like the hidden entry, an empty file ``.wh.NAME``,
or (Linux 6.7's "xwhiteout") an empty regular file with the xattr ``overlay.whiteout``.
Opaque directory: xattr ``trusted.overlay.opaque=y`` or ``user.overlay.opaque=y``, or a
``.wh..wh..opq`` entry inside it. Every form is read everywhere; none is ever shown
through the mount (not in readdir, not in listxattr). The overlay's own xattrs are in
``PRIVATE_XATTR_PREFIXES``, or with ``userxattr`` in ``USERXATTR_PREFIXES`` only (then
``trusted.overlay.*`` is data like any other xattr). Pure functions, no I/O.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass

WHITEOUT_PREFIX = b".wh."
OPAQUE_MARKER = b".wh..wh..opq"
OPAQUE_XATTRS = (b"trusted.overlay.opaque", b"user.overlay.opaque")
# Names the overlay keeps for itself; hidden from listxattr and getxattr of the merged view
# (the kernel hides its own trusted.overlay.* prefix, and user.overlay.* with userxattr).
PRIVATE_XATTR_PREFIXES = (b"trusted.overlay.", b"user.overlay.")
USERXATTR_PREFIXES = (b"user.overlay.",)  # -o userxattr: the kernel's only namespace then

NAME_MAX = 255


def is_whiteout_device(mode: int, rdev: int) -> bool:
    """True for the kernel's whiteout: a character device with device number 0/0."""
    return stat.S_ISCHR(mode) and rdev == 0


def is_marker_name(name: bytes) -> bool:
    """True for every ``.wh.`` name: whiteout files, the opaque marker and AUFS metadata."""
    return name.startswith(WHITEOUT_PREFIX)


def whiteout_file_name(name: bytes) -> bytes:
    """The ``.wh.NAME`` file that hides *name*."""
    return WHITEOUT_PREFIX + name


def whited_out_name(marker: bytes) -> bytes | None:
    """For a ``.wh.NAME`` file, the NAME it hides; None for ``.wh..wh.*`` metadata."""
    if not marker.startswith(WHITEOUT_PREFIX) or marker.startswith(b".wh..wh."):
        return None
    hidden = marker[len(WHITEOUT_PREFIX) :]
    return hidden or None


def is_opaque_value(value: bytes | None) -> bool:
    """The kernel's test: the opaque xattr is set to exactly ``y``."""
    return value == b"y"


Prefixes = tuple[bytes, ...]


def is_opaque(
    xattr: Callable[[bytes], bytes | None], has_marker: Callable[[], bool],
    names: Prefixes = OPAQUE_XATTRS,
) -> bool:  # fmt: skip
    """The one rule for an opaque directory, whoever reads it (the overlay, the index, a
    diff, a tar export): either opaque xattr (of *names*: one namespace with userxattr) set
    to ``y``, or a ``.wh..wh..opq`` entry in it. *xattr(name)* is the directory's value of
    xattr *name* (None if unset); *has_marker()* whether the marker entry is there. Asked
    in this order, each only if needed: most directories are not opaque, and the xattrs
    are one call each."""
    return any(is_opaque_value(xattr(name)) for name in names) or has_marker()


def private_prefixes(userxattr: bool) -> Prefixes:
    return USERXATTR_PREFIXES if userxattr else PRIVATE_XATTR_PREFIXES


def _private_prefix(name: bytes, prefixes: Prefixes) -> bytes | None:
    for prefix in prefixes:
        if name.startswith(prefix):
            return prefix
    return None


def is_private_xattr(name: bytes, prefixes: Prefixes = PRIVATE_XATTR_PREFIXES) -> bool:
    """An overlay marker or other private xattr: never shown, never copied up. Escaped
    names (``trusted.overlay.overlay.X``) are user data, not private."""
    prefix = _private_prefix(name, prefixes)
    return prefix is not None and not name[len(prefix) :].startswith(b"overlay.")


def escape_xattr(name: bytes, prefixes: Prefixes = PRIVATE_XATTR_PREFIXES) -> bytes:
    """How a name set through the mount is stored: the kernel (6.7+) escapes its own
    prefix, ``trusted.overlay.X`` -> ``trusted.overlay.overlay.X``, so overlays nest."""
    prefix = _private_prefix(name, prefixes)
    return name if prefix is None else prefix + b"overlay." + name[len(prefix) :]


def shown_xattr(name: bytes, prefixes: Prefixes = PRIVATE_XATTR_PREFIXES) -> bytes | None:
    """How a stored name shows through the mount: unescaped, or None for a marker."""
    prefix = _private_prefix(name, prefixes)
    if prefix is None:
        return name
    rest = name[len(prefix) :]
    return prefix + rest[len(b"overlay.") :] if rest.startswith(b"overlay.") else None


def opaque_xattrs(prefixes: Prefixes) -> Prefixes:
    return tuple(prefix + b"opaque" for prefix in prefixes)


def xwhiteout_xattrs(prefixes: Prefixes) -> Prefixes:
    """The xattrs that make an empty regular file a whiteout (any value, even empty)."""
    return tuple(prefix + b"whiteout" for prefix in prefixes)


def may_be_xwhiteout(mode: int, size: int) -> bool:
    """Only an empty regular file can be an xwhiteout (``ovl_path_check_xwhiteout_xattr``)."""
    return stat.S_ISREG(mode) and size == 0


@dataclass(frozen=True, slots=True)
class MarkerStyle:
    """How markers are *written* into an upper layer (every form is always read).

    As root: character device 0/0 whiteouts and ``trusted.overlay.opaque``, the kernel's own
    forms. Where mknod of 0/0 or trusted xattrs are refused (rootless): ``.wh.NAME`` files,
    and ``user.overlay.opaque`` plus a ``.wh..wh..opq`` file.
    """

    device_whiteouts: bool = True
    opaque_xattr: bytes = b"trusted.overlay.opaque"
    opaque_file: bool = False


KERNEL_STYLE = MarkerStyle()
ROOTLESS_STYLE = MarkerStyle(False, b"user.overlay.opaque", True)
