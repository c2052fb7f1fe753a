"""Where an image comes from or goes to, in podman's transport syntax: ``docker://REF``
(a registry; a bare reference means this too), ``oci-archive:PATH[:NAME]``,
``docker-archive:PATH[:NAME]`` and ``oci:DIR[:NAME]``. As containers/image, the path ends
at the first ``:``. Pure parsing; ``dir:`` and ``containers-storage:`` are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from unionfs.errors import UserError

ARCHIVES = ("oci-archive", "docker-archive", "oci")
REFUSED = ("dir", "containers-storage", "docker-daemon", "ostree", "sif", "tarball")


@dataclass(frozen=True, slots=True)
class Location:
    transport: str  # "docker", "oci-archive", "docker-archive" or "oci"
    target: str  # the reference for docker; the path otherwise
    name: str | None = None  # the image name inside an archive or layout

    @property
    def is_registry(self) -> bool:
        return self.transport == "docker"


def parse_location(text: str) -> Location:
    """``docker://quay.io/x`` -> registry quay.io/x; ``oci-archive:/tmp/x.tar:app:1`` ->
    that archive, image ``app:1``; anything without a transport -> a registry reference."""
    if text.startswith("docker://"):
        return Location("docker", text.removeprefix("docker://"))
    transport, colon, rest = text.partition(":")
    if colon and transport in ARCHIVES:
        path, sep, name = rest.partition(":")
        if not path:
            raise UserError(f"{text!r}: {transport}: needs a path", exit_code=2)
        return Location(transport, path, name if sep and name else None)
    if colon and transport in REFUSED and not rest.startswith("//") and "/" not in transport:
        raise UserError(f"{text!r}: the {transport}: transport is not supported (use "
                        "docker://, oci-archive:, docker-archive: or oci:)", 2)  # fmt: skip
    return Location("docker", text)
