"""Owner mapping between the ids stored in the layers and the ids a mount shows, as
fuse-overlayfs's ``uidmapping=``/``gidmapping=``/``squash_to_*`` options do. Pure: no I/O.

A mapping ``STORED:SHOWN:LEN`` (several joined by ``:``; podman's leading ``:`` allowed)
says: an id ``STORED + i`` on disk is shown as ``SHOWN + i`` (``i < LEN``), and an id
``SHOWN + i`` given to chown or owning a new entry is stored as ``STORED + i``. Ids with
no mapping become the overflow id 65534, both ways. Written as a user namespace's
``uid_map`` lines (``0 1000 1`` + ``1 100000 65536`` -> ``0:1000:1:1:100000:65536``), it
shows an image stored with container ids (root = 0) owned by the host ids the namespace
maps them to, so that inside the namespace they are right again, without a chown.
Squashing changes only what is shown: every owner shows as the squash id. In the issue's
and podman's words the fields are ``CONTAINER_ID:HOST_ID:LENGTH``: stored = container ids
(as the image has them), shown = host ids (what a daemon outside the namespace reports).
"""

from __future__ import annotations

from dataclasses import dataclass

from unionfs.errors import UserError

OVERFLOW_ID = 65534
MAX_ID = (1 << 32) - 2  # (uid_t)-1 means "no change" in chown


@dataclass(frozen=True, slots=True)
class Range:
    stored: int
    shown: int
    length: int


@dataclass(frozen=True, slots=True)
class IdMap:
    """One direction-pair of ranges for uids or for gids; empty = identity."""

    ranges: tuple[Range, ...] = ()

    def shown(self, stored: int) -> int:
        if not self.ranges:
            return stored
        for r in self.ranges:
            if r.stored <= stored < r.stored + r.length:
                return r.shown + stored - r.stored
        return OVERFLOW_ID

    def stored(self, shown: int) -> int:
        if not self.ranges:
            return shown
        for r in self.ranges:
            if r.shown <= shown < r.shown + r.length:
                return r.stored + shown - r.shown
        return OVERFLOW_ID


def parse_mapping(key: str, value: str) -> IdMap:
    """``0:1000:1:1:100000:65536`` (or ``:0:1000:1...``) -> an ``IdMap``."""
    fields = value.split(":")
    if fields and fields[0] == "":
        fields = fields[1:]  # podman writes uidmapping=:0:1000:1 (its own list separator)
    example = f"{key}=CONTAINER_ID:HOST_ID:LENGTH[:...], e.g. {key}=0:1000:1:1:100000:65536"
    if not fields or len(fields) % 3:
        raise UserError(f"malformed {key}={value!r}: give triples, {example}")
    try:
        numbers = [int(f, 10) for f in fields]
    except ValueError:
        raise UserError(f"malformed {key}={value!r}: not a number; {example}") from None
    ranges = []
    for i in range(0, len(numbers), 3):
        stored, shown, length = numbers[i : i + 3]
        if min(stored, shown) < 0 or length <= 0 or max(stored, shown) + length - 1 > MAX_ID:
            raise UserError(f"malformed {key}={value!r}: range {stored}:{shown}:{length} "
                            "is empty or out of bounds")  # fmt: skip
        ranges.append(Range(stored, shown, length))
    return IdMap(tuple(ranges))


def parse_id(key: str, value: str) -> int:
    if not value.isdigit() or int(value) > MAX_ID:
        raise UserError(f"malformed {key}={value!r}: give a numeric id")
    return int(value)


@dataclass(frozen=True, slots=True)
class Owners:
    """The whole owner translation of one mount. ``IDENTITY`` when no option was given."""

    uids: IdMap = IdMap()
    gids: IdMap = IdMap()
    squash_uid: int | None = None
    squash_gid: int | None = None

    @property
    def identity(self) -> bool:
        return self == IDENTITY

    def shown(self, uid: int, gid: int) -> tuple[int, int]:
        """Owner of a stored entry as the mount shows it."""
        return (
            self.uids.shown(uid) if self.squash_uid is None else self.squash_uid,
            self.gids.shown(gid) if self.squash_gid is None else self.squash_gid,
        )

    def stored_uid(self, uid: int) -> int:
        return self.uids.stored(uid)

    def stored_gid(self, gid: int) -> int:
        return self.gids.stored(gid)


IDENTITY = Owners()


def with_squash(owners: Owners, key: str, value: str) -> Owners:
    """*owners* with one ``squash_*`` option applied. ``squash_to_uid``/``_gid`` win over
    ``squash_to_root`` whatever their order, as in fuse-overlayfs."""
    if key == "squash_to_root":
        return Owners(owners.uids, owners.gids,
                      0 if owners.squash_uid is None else owners.squash_uid,
                      0 if owners.squash_gid is None else owners.squash_gid)  # fmt: skip
    number = parse_id(key, value)
    if key == "squash_to_uid":
        return Owners(owners.uids, owners.gids, number, owners.squash_gid)
    return Owners(owners.uids, owners.gids, owners.squash_uid, number)
