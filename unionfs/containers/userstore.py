"""An ordinary user's store (``~/.local/share/unionfs``): its files carry the ids they
have on the host under the user's mapping, as podman's rootless storage does.

Host ids outside a user namespace's mapping show as 65534 inside it, so a layer meant for
a rootless container must be stored with *host* ids: container uid 0 -> the user's uid,
1..N -> the user's /etc/subuid range (gids likewise). ``enter`` moves a store command
(import, pull, create, diff, commit, save, rmi, ...) into a user namespace with that full
mapping before it touches the store; there the command runs as for root: extraction
chowns to container ids, which the kernel stores as host ids, and reading an upper or a
layer (diff, commit, save) sees container ids again, so tar entries carry container ids
with no translation in our code. Without subordinate ranges only the user's own id is
mapped: files that an image gives to other owners are stored as the user, with one notice
(podman's ``ignore_chown_errors``), given to the store as its warning callback by
``open_store``. ``mount_options`` is for ``unionfs mount C``, which mounts outside the
namespace (so the user's shell sees it): ``uidmapping``/``gidmapping`` show the stored host
ids as the container ids again.
"""

from __future__ import annotations

import os
import pwd

from unionfs.runtime import userns
from unionfs.store.images import ImageStore, Warn

_OWNERS_WARNING = "owners are not kept"


def open_store(root: str, warn: Warn) -> ImageStore:
    """The store at *root*, entered as ``enter`` does; its warnings go to *warn*, with the
    single-mapping notice in place of extraction's owner warnings when that is the reason."""
    note = enter(root)
    return ImageStore(root, owner_warnings(warn, note))


def enter(root: str) -> str | None:
    """As an ordinary user, move this (single-threaded) process into a user and mount
    namespace with the user's full mapping; as root (or already inside), nothing. The
    notice to give when only the user's own id could be mapped, else None."""
    if os.geteuid() == 0:
        return None
    userns.check_userns_allowed()
    mapping, note = userns.plan_mapping(pwd.getpwuid(os.getuid()))
    # Inside, euid is 0: children (the mount helper) and default_home() must keep using
    # this store, not /var/lib/unionfs.
    os.environ["UNIONFS_HOME"] = os.path.abspath(root)
    userns.enter(mapping)
    return single_mapping_notice(note) if note is not None else None


def single_mapping_notice(note: str) -> str:
    reason, _, rest = note.partition(": only your own id is mapped in the container")
    return f"{reason}: files that images give to other owners are stored as yours{rest}"


def owner_warnings(warn: Warn, note: str | None) -> Warn:
    """*warn*, with extraction's "owners are not kept" replaced by *note* (shown once) when
    there is one: only the user's own id is mapped, which is the reason."""
    if note is None:
        return warn
    said = False

    def wrapped(message: str) -> None:
        nonlocal said
        if not message.startswith(_OWNERS_WARNING):
            warn(message)
        elif not said:
            said = True
            userns.notice(note)

    return wrapped


def mount_options() -> tuple[str, ...]:
    """Mount options that show a user's store (host ids) with container ids, for a mount
    made outside the namespace; none for root."""
    if os.geteuid() == 0:
        return ()
    mapping, _ = userns.plan_mapping(pwd.getpwuid(os.getuid()))

    def triples(own: int, ranges: tuple[userns.IdRange, ...]) -> str:
        return ":".join(f"{outside}:{inside}:{count}"
                        for inside, outside, count in userns.map_lines(own, ranges))  # fmt: skip

    uid_ranges = () if mapping.single else mapping.uid_ranges
    gid_ranges = () if mapping.single else mapping.gid_ranges
    return (f"uidmapping={triples(mapping.uid, uid_ranges)}",
            f"gidmapping={triples(mapping.gid, gid_ranges)}")  # fmt: skip
