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
(podman's ``ignore_chown_errors``). ``mount_options`` is for ``unionfs mount C``, which
mounts outside the namespace (so the user's shell sees it): ``uidmapping``/``gidmapping``
show the stored host ids as the container ids again.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable

from unionfs.runtime import userns

_OWNERS_WARNING = "owners are not kept"
_state: dict[str, str | bool] = {}  # "note": the single-mapping notice; "said": shown once


def enter(root: str) -> None:
    """As an ordinary user, move this (single-threaded) process into a user and mount
    namespace with the user's full mapping; as root (or already inside), nothing."""
    if os.geteuid() == 0:
        return
    userns.check_userns_allowed()
    mapping, note = userns.plan_mapping(pwd.getpwuid(os.getuid()))
    # Inside, euid is 0: children (the mount helper) and default_home() must keep using
    # this store, not /var/lib/unionfs.
    os.environ["UNIONFS_HOME"] = os.path.abspath(root)
    userns.enter(mapping)
    if note is not None:
        _state["note"] = single_mapping_notice(note)


def single_mapping_notice(note: str) -> str:
    reason, _, rest = note.partition(": only your own id is mapped in the container")
    return f"{reason}: files that images give to other owners are stored as yours{rest}"


def owner_warnings(warn: Callable[[str], None]) -> Callable[[str], None]:
    """*warn*, with extraction's "owners are not kept" replaced by the single-mapping
    notice (once per command) when that is the reason."""
    note = _state.get("note")
    if not isinstance(note, str):
        return warn

    def wrapped(message: str) -> None:
        if not message.startswith(_OWNERS_WARNING):
            warn(message)
        elif not _state.get("said"):
            _state["said"] = True
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
