"""Mount options as OCI config.json and ``mount(8)`` write them -> mount(2) flags and data.

Pure. Known flags become ``MS_*`` bits (``ro``, ``nosuid``, ``bind``, ``rbind``...),
propagation words become a separate propagation change, ``key=value`` and the few bare
filesystem words (``newinstance``) go to the filesystem as its data string. Any other word is
an error: a misspelt ``nosiud`` must not silently mount without ``nosuid``.
"""

from __future__ import annotations

from dataclasses import dataclass

from unionfs.errors import UserError

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

# word -> (bits to set, bits to clear)
_FLAGS = {
    "ro": (MS_RDONLY, 0), "rw": (0, MS_RDONLY),
    "nosuid": (MS_NOSUID, 0), "suid": (0, MS_NOSUID),
    "nodev": (MS_NODEV, 0), "dev": (0, MS_NODEV),
    "noexec": (MS_NOEXEC, 0), "exec": (0, MS_NOEXEC),
    "sync": (MS_SYNCHRONOUS, 0), "async": (0, MS_SYNCHRONOUS),
    "dirsync": (MS_DIRSYNC, 0), "mand": (MS_MANDLOCK, 0), "nomand": (0, MS_MANDLOCK),
    "noatime": (MS_NOATIME, 0), "atime": (0, MS_NOATIME),
    "nodiratime": (MS_NODIRATIME, 0), "diratime": (0, MS_NODIRATIME),
    "relatime": (MS_RELATIME, 0), "norelatime": (0, MS_RELATIME),
    "strictatime": (MS_STRICTATIME, 0), "nostrictatime": (0, MS_STRICTATIME),
    "lazytime": (MS_LAZYTIME, 0), "nolazytime": (0, MS_LAZYTIME),
    "nosymfollow": (MS_NOSYMFOLLOW, 0), "symfollow": (0, MS_NOSYMFOLLOW),
    "bind": (MS_BIND, 0), "rbind": (MS_BIND | MS_REC, 0),
    "silent": (MS_SILENT, 0), "loud": (0, MS_SILENT),
    "defaults": (0, 0),
}  # fmt: skip
_PROPAGATION = {
    "private": MS_PRIVATE, "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC,
}  # fmt: skip
# Bare words that are filesystem data, not VFS flags.
_DATA_WORDS = frozenset({"newinstance", "noacl", "acl"})


@dataclass(frozen=True, slots=True)
class MountFlags:
    flags: int
    data: str
    propagation: int  # 0: leave it as it is


def parse(options: tuple[str, ...] | list[str], where: str) -> MountFlags:
    flags = 0
    propagation = 0
    data: list[str] = []
    for word in options:
        if word in _FLAGS:
            on, off = _FLAGS[word]
            flags = (flags | on) & ~off
        elif word in _PROPAGATION:
            propagation = _PROPAGATION[word]
        elif "=" in word or word in _DATA_WORDS:
            if "," in word:
                raise UserError(f"{where}: mount option {word!r} contains a comma")
            data.append(word)
        else:
            raise UserError(f"{where}: unknown mount option {word!r}")
    return MountFlags(flags, ",".join(data), propagation)


def option_words() -> set[str]:
    """Every option word ``parse`` knows (flags, propagation, filesystem data words)."""
    return set(_FLAGS) | set(_PROPAGATION) | _DATA_WORDS
