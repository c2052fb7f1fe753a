"""Mount options, in the syntax of ``mount -t overlay`` and fuse-overlayfs. Pure: no I/O.

``-o`` strings are split on commas outside double quotes (``context="a,b"``); empty entries
are ignored (podman sends ``...,work,`` and ``,,volatile``). In ``lowerdir=`` a backslash
escapes the next character, so ``\\:`` is a colon inside a path; the leftmost lower is the top.
``uidmapping=``/``gidmapping=`` are accepted only when they map every id to itself.
Validation against the filesystem lives in ``unionfs.cli.mount``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from unionfs import idmap
from unionfs.errors import UserError

# Passed to FUSE as they are.
FUSE_FLAGS = frozenset(
    {
        "allow_other", "allow_root", "default_permissions", "dev", "nodev", "suid",
        "nosuid", "exec", "noexec", "ro", "rw", "sync", "async", "dirsync",
    }
)  # fmt: skip
# The atime flags of the mount (``atime_policy``); the daemon applies them, since the
# kernel's FUSE ignores them for its inodes.
ATIME_FLAGS = frozenset(
    {"atime", "noatime", "relatime", "norelatime", "strictatime", "nostrictatime",
     "nodiratime", "diratime"}
)  # fmt: skip
FUSE_VALUED = frozenset({"fsname", "subtype", "blksize"})

# Accepted and ignored: mount(8)/fstab bookkeeping, and overlayfs or fuse-overlayfs
# switches whose behaviour unionfs already has or that do not apply to it.
IGNORED_FLAGS = frozenset(
    {
        "defaults", "auto", "noauto", "nofail", "_netdev", "user", "users", "nouser",
        "owner", "group", "volatile", "noacl", "acl", "silent", "loud",
        "lazytime", "nolazytime",
        "nfs_export=off", "plugin_dir",
    }
)  # fmt: skip
IGNORED_VALUED = frozenset(
    {
        "comment", "fsync", "xino", "nfs_export",
        "uuid", "context", "fscontext", "defcontext", "rootcontext", "timeout",
        "threaded", "override_creds", "verity", "max_idle_threads", "max_read",
    }
)  # fmt: skip
# Known but not supported yet: refusing is safer than pretending.
UNSUPPORTED = frozenset(
    {"datadir", "datadir+"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MountOptions:
    lowerdirs: tuple[str, ...]
    upperdir: str | None = None
    workdir: str | None = None
    fuse_options: tuple[str, ...] = ()
    indexdir: str | None = None  # None: the default place; "off": no index
    owners: idmap.Owners = idmap.IDENTITY  # uidmapping=, gidmapping=, squash_to_*
    # Overlay features, as the kernel's options (see union.stack.Features). Defaults:
    # rename of any directory (its upper stays readable by a default kernel mount, which
    # follows redirects); metacopy and index change what a kernel mount without the same
    # options would show, so they are asked for.
    redirect_dir: str = "on"
    metacopy: bool = False
    index: bool = False
    atime: tuple[str, ...] = ()  # the atime flags given, in order
    userxattr: bool = False  # the overlay's xattrs are user.overlay.* only

    # The lower layers are immutable (the store's, renamed in complete and never written
    # again): their index is trusted without the walk that checks a hand-given layer.
    sealed: bool = False
    # Open files of the upper served by FUSE passthrough (``unionfs.fuse.passthrough``).
    passthrough: bool = False

    @property
    def atime_mode(self) -> tuple[str, bool]:
        """("relatime" | "noatime" | "strictatime", nodiratime), combined as the kernel
        combines the mount flags: strictatime beats noatime; relatime is the default."""
        noatime = strict = nodir = False
        for word in self.atime:
            noatime = {"noatime": True, "atime": False}.get(word, noatime)
            strict = {"strictatime": True, "nostrictatime": False}.get(word, strict)
            nodir = {"nodiratime": True, "diratime": False}.get(word, nodir)
        return ("strictatime" if strict else "noatime" if noatime else "relatime"), nodir

    @property
    def readonly(self) -> bool:
        return self.upperdir is None or "ro" in self.fuse_options


def split_options(text: str) -> list[str]:
    """Split an ``-o`` string on commas that are outside double quotes; drop empty items."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            current.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            current.append(ch)
        elif ch == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise UserError(f"unbalanced quote in options: {text!r}")
    items.append("".join(current))
    return [item for item in items if item]


def is_remount(option_strings: list[str]) -> bool:
    """Whether ``-o`` strings ask for a remount (mount(8) passes ``remount`` among the
    mount's current flags): decided here, so that a plain mount needs no remount code."""
    return any("remount" in split_options(text) for text in option_strings)


def split_lowerdir(value: str) -> list[str]:
    """``a:b\\:c`` -> ``["a", "b:c"]``. An empty component is an error, as in overlayfs."""
    dirs: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            dirs.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    dirs.append("".join(current))
    if any(not d for d in dirs):
        raise UserError(f"malformed lowerdir={value!r}: empty layer path")
    return dirs


def _unescape(value: str) -> str:
    out: list[str] = []
    escaped = False
    for ch in value:
        if escaped or ch != "\\":
            out.append(ch)
            escaped = False
        else:
            escaped = True
    return "".join(out)


FEATURE_VALUES = {
    "redirect_dir": ("on", "off", "follow", "nofollow"),
    "metacopy": ("on", "off"),
    "index": ("on", "off"),
}


def parse(option_strings: list[str]) -> MountOptions:
    """Merge every ``-o`` string into one ``MountOptions``; later values win."""
    lowers: list[str] = []
    upper: str | None = None
    work: str | None = None
    fuse: list[str] = []
    indexdir: str | None = None
    sealed = False
    passthrough = False
    owners = idmap.IDENTITY
    features: dict[str, str] = {}
    atime: list[str] = []
    userxattr = False
    for text in option_strings:
        for item in split_options(text):
            key, eq, value = item.partition("=")
            if key == "lowerdir":
                if not eq or not value:
                    raise UserError("malformed lowerdir=: no layer given")
                lowers = split_lowerdir(value)
            elif key == "lowerdir+":
                lowers.append(_unescape(value) if value else "")
                if not lowers[-1]:
                    raise UserError("malformed lowerdir+=: no layer given")
            elif key in ("upperdir", "workdir"):
                if not value:
                    raise UserError(f"malformed {key}=: no directory given")
                if key == "upperdir":
                    upper = _unescape(value)
                else:
                    work = _unescape(value)
            elif key == "indexdir":
                if not value:
                    raise UserError("malformed indexdir=: give a directory or 'off'")
                indexdir = _unescape(value)
            elif item == "noindexdir":
                indexdir = "off"
            elif item == "sealed":
                sealed = True
            elif item == "passthrough":
                passthrough = True
            elif key in ("uidmapping", "gidmapping") and eq:
                ids = idmap.parse_mapping(key, value)
                if key == "uidmapping":
                    owners = dataclasses.replace(owners, uids=ids)
                else:
                    owners = dataclasses.replace(owners, gids=ids)
            elif (item == "squash_to_root") or (eq and key in ("squash_to_uid", "squash_to_gid")):
                owners = idmap.with_squash(owners, key, value)
            elif key in FEATURE_VALUES:
                if value not in FEATURE_VALUES[key]:
                    allowed = "|".join(FEATURE_VALUES[key])
                    raise UserError(f"malformed {key}={value!r}: give {allowed}")
                features[key] = value
            elif key in UNSUPPORTED:
                raise UserError(f"option {key!r} is not supported yet")
            elif key == "xattr_permissions":
                if value not in ("0", "1", "2"):
                    raise UserError(f"malformed {item!r}: give 0, 1 or 2")
                if value != "0":  # owners and modes kept in xattrs (podman's force_mask)
                    raise UserError(f"option {key!r} is not supported yet")
            elif not eq and key in ATIME_FLAGS:
                atime.append(key)
            elif item == "userxattr":
                userxattr = True
            elif (not eq and key in FUSE_FLAGS) or (eq and key in FUSE_VALUED):
                fuse.append(item)
            elif (not eq and (key in IGNORED_FLAGS or item in IGNORED_FLAGS)) or (
                eq and (key in IGNORED_VALUED or item in IGNORED_FLAGS)
            ):
                continue
            elif key.startswith("x-"):
                continue  # fstab comments for other programs (x-systemd.*)
            else:
                raise UserError(f"unknown option {item!r}")
    if not lowers:
        raise UserError("missing lowerdir=: give at least one lower layer")
    if userxattr:
        _userxattr_features(features)
    if upper is None and work is not None:
        work = None  # overlayfs ignores a workdir without an upperdir
    if upper is not None and work is None:
        raise UserError("upperdir= needs workdir= (an empty directory on the same filesystem)")
    return MountOptions(
        tuple(lowers), upper, work, tuple(fuse), indexdir, owners,
        features.get("redirect_dir", "nofollow" if userxattr else "on"),
        features.get("metacopy", "off") == "on",
        features.get("index", "off") == "on", tuple(atime), userxattr,
        sealed, passthrough,
    )  # fmt: skip


def _userxattr_features(features: dict[str, str]) -> None:
    """``userxattr`` and what conflicts with it, as the kernel's ``ovl_fs_params_verify``:
    redirects (but nofollow) and metacopy given with it are refused; not given, they are
    off (redirect_dir=nofollow: a merged directory's rename is EXDEV)."""
    for key, allowed in (("redirect_dir", "nofollow"), ("metacopy", "off")):
        value = features.get(key, allowed)
        if value != allowed:
            raise UserError(f"conflicting options: userxattr,{key}={value}")
