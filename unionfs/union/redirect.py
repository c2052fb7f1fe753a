"""Redirects (the kernel's ``overlay.redirect``): reading them, and recording them.

A directory with lower parts that is renamed (``redirect_dir=on``) records where those
parts are; a metacopy file that is renamed or gets a second name records where its data is
(``metacopy=on``). A record is the old name when the entry stays in its directory, else
the absolute path of its lower parts; lookup follows it (``redirect_of``). Writing one
never copies anything up: the caller has done that.
"""

from __future__ import annotations

import errno
import os
import stat

from unionfs import layerfmt
from unionfs.safepath import split
from unionfs.union.stack import Resolved, Stack, upper_of, xattr_of

REDIRECT_MAX = 256  # the kernel's redirect_max module parameter (its default)


def _fail(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def has_lower(res: Resolved) -> bool:
    """A directory (or file) with a part in a lower layer."""
    return any(i != 0 for i in res.layers)


def redirect_of(stack: Stack, index: int, path: bytes, is_dir: bool) -> bytes | None:
    """The valid ``overlay.redirect`` of *path* in layer *index*, if redirects are followed.

    As the kernel checks it: an absolute path (``/a/b``) or one name; never ``.``/``..``
    or an empty component. Anything else is ignored, as if there were none.
    """
    if not stack.features.follow:
        return None
    value = xattr_of(stack.layers[index], path, stack.redirect_xattr, is_dir)
    if not value or b"\0" in value:
        return None
    if value.startswith(b"/"):
        parts = value[1:].split(b"/")
    elif b"/" in value:
        return None  # a relative redirect is one name
    else:
        parts = [value]
    if any(part in (b"", b".", b"..") or len(part) > layerfmt.NAME_MAX for part in parts):
        return None
    return value


def set_redirect(stack: Stack, moving: Resolved, samedir: bool) -> bool:
    """Record where directory *moving*'s lower parts, or metacopy file *moving*'s data,
    are before it moves (the kernel's ovl_set_redirect); False when there is nothing below
    it (a plain upper entry needs no record).

    In the same directory its old name is enough (relative); elsewhere the absolute path
    of its lower parts, built as ovl_get_redirect does: from its own name upwards, each
    component replaced by that directory's own redirect, up to an absolute one or the root.
    A redirect already there stays if it still fits.
    """
    if not ((moving.is_dir and has_lower(moving)) or moving.metacopy):
        return False
    upper = upper_of(stack)
    if moving.is_dir:
        current = upper.dir_getxattr(moving.path, stack.redirect_xattr)
    else:
        current = upper.getxattr(moving.path, stack.redirect_xattr)
    if current and (samedir or current.startswith(b"/")):
        return True
    value = redirect_value(stack, moving.path, samedir)
    if len(value) > REDIRECT_MAX:
        raise _fail(errno.EXDEV)  # the kernel too: mv then copies
    upper.setxattr(moving.path, stack.redirect_xattr, value)
    return True


def redirect_value(stack: Stack, path: bytes, samedir: bool) -> bytes:
    """The redirect the kernel records for *path* before it moves (ovl_get_redirect): its
    name within the same directory; otherwise, from its name upwards, each component
    replaced by that directory's own redirect, up to an absolute one or the root."""
    if samedir:
        return split(path)[1]
    upper = upper_of(stack)
    parts: list[bytes] = []
    while path:
        parent, name = split(path)
        own = None
        st = upper.lstat(path)
        if st is not None and (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            own = redirect_of(stack, 0, path, stat.S_ISDIR(st.st_mode))
        parts.append(own or name)
        if own is not None and own.startswith(b"/"):
            break
        path = parent
    value = b"/".join(reversed(parts))
    return value if value.startswith(b"/") else b"/" + value


def check_file_redirect(stack: Stack, moving: Resolved, samedir: bool) -> None:
    """EXDEV where the kernel with ``metacopy=on`` gives it for a regular file, before
    anything is done: the redirect its move or new name needs would pass redirect_max."""
    if not (stack.features.metacopy and stat.S_ISREG(moving.st.st_mode)):
        return
    if moving.top == 0 and not moving.metacopy:
        return  # its data is up already: nothing to record
    upper = upper_of(stack)
    current = upper.getxattr(moving.path, stack.redirect_xattr) if moving.top == 0 else None
    if current and (samedir or current.startswith(b"/")):
        return
    if len(redirect_value(stack, moving.path, samedir)) > REDIRECT_MAX:
        raise _fail(errno.EXDEV)


def set_link_redirect(stack: Stack, source: Resolved) -> None:
    """A metacopy file about to get a second name records the absolute path of its data,
    which both names then find (the kernel's ovl_set_link_redirect)."""
    if source.metacopy:
        set_redirect(stack, source, samedir=False)
