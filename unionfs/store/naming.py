"""Which stored image name a reference means, as podman looks names up: as given (tag
``latest`` added), then normalized (``localhost/`` for a short name), then, for a short
name, the one stored name ending in ``/NAME:TAG``. Pure: it reads only the name ->
manifest map it is given and never opens the store.
"""

from __future__ import annotations

from unionfs import imagename
from unionfs.errors import UserError


def normalize(name: str) -> str:
    """The name an image gets for *name*: ``NAME`` -> ``localhost/NAME:latest``, a full
    name keeps its registry (``imagename.local_name``); a malformed one is refused."""
    return imagename.local_name(name)


def name_for(ref: str, names: dict[str, str]) -> str | None:
    """The stored name (a key of *names*, name -> manifest) that *ref* means, or None."""
    tagged = ref if ":" in ref.rsplit("/", 1)[-1] or "@" in ref else ref + ":latest"
    for candidate in (ref, tagged):  # as stored, also names stored before localhost/ was added
        if candidate in names:
            return candidate
    try:
        full = normalize(ref)
    except UserError:
        return None
    if full in names:
        return full
    suffix = imagename.short_suffix(ref)
    if suffix is None:
        return None
    found = sorted(n for n in names if n.endswith(suffix))
    if len({names[n] for n in found}) > 1:
        raise UserError(f"short name {ref!r} matches {found[0]} and {found[1]}: "
                        "give the full name")  # fmt: skip
    return found[0] if found else None
