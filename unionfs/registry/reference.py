"""Image references: ``[host[:port]/]repo[:tag|@sha256:hex]``, with Docker Hub's defaults.

A first component with a dot or a port, or ``localhost``, is a registry host; otherwise the
registry is ``docker.io`` and a one-part repository gets ``library/``. No tag means
``latest``. Anything malformed is a one-line ``UserError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from unionfs.errors import UserError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


@dataclass(frozen=True, slots=True)
class Reference:
    """One parsed reference. ``digest`` wins over ``tag`` when both are given."""

    registry: str  # as written by the user (docker.io for the Hub), with :port
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Where the HTTP API of the registry answers."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """The tag or digest part of the manifest URL."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.registry}/{self.repository}@{self.digest}"
        return f"{self.registry}/{self.repository}:{self.tag or 'latest'}"


def parse_reference(text: str) -> Reference:
    """Parse *text*, raising ``UserError`` naming what is wrong with it."""

    def bad(why: str) -> UserError:
        return UserError(f"malformed image reference {text!r}: {why}", exit_code=2)

    if not text or text != text.strip():
        raise bad("empty or surrounded by spaces")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise bad("a digest is sha256: and 64 lowercase hex digits")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, path = first, remainder
        if not _HOST.fullmatch(registry):
            raise bad(f"bad registry host {registry!r}")
    else:
        registry, path = DOCKER_HUB, rest
    tag = None
    name, colon, maybe_tag = path.rpartition(":")
    if colon:
        path, tag = name, maybe_tag
        if not _TAG.fullmatch(tag):
            raise bad(f"bad tag {tag!r}")
    if not path:
        raise bad("no repository name")
    parts = path.split("/")
    for part in parts:
        if not _COMPONENT.fullmatch(part):
            raise bad(f"bad repository component {part!r} (lowercase letters, digits, . _ -)")
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and len(parts) == 1:
        path = "library/" + path
    if len(path) > 255:
        raise bad("repository name longer than 255 characters")
    return Reference(registry, path, tag, digest)
