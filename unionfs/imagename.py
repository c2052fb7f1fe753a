"""Image references and names, one grammar for the registry client and the store:
``[host[:port]/]repo[:tag][@sha256:hex]`` as the distribution spec has it (lowercase path
components, a tag of at most 128 characters). A short name means Docker Hub when pulling
(``library/`` for one component) and ``localhost/`` when naming an image in the store, as
podman names local images. Malformed input is a one-line ``UserError`` (exit 2). Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from unionfs.errors import UserError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
LOCAL = "localhost"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_HEX64 = re.compile(r"[a-f0-9]{64}")
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

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or 'latest'}"


def has_registry(text: str) -> bool:
    """Whether *text* names its registry (its first component is a host), as podman tells a
    fully qualified name from a short one."""
    first, slash, _ = text.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == LOCAL or first.startswith("["))


def parse_reference(text: str, default_registry: str = DOCKER_HUB,
                    what: str = "malformed image reference") -> Reference:  # fmt: skip
    """Parse *text*, raising ``UserError`` naming what is wrong with it. A short name gets
    *default_registry* (``library/`` is added for Docker Hub only)."""

    def bad(why: str) -> UserError:
        return UserError(f"{what} {text!r}: {why}", exit_code=2)

    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise bad("empty or with spaces")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise bad("a digest is sha256: and 64 lowercase hex digits")
    if has_registry(rest):
        registry, _, path = rest.partition("/")
        if not _HOST.fullmatch(registry):
            raise bad(f"bad registry host {registry!r}")
    else:
        registry, path = default_registry, rest
    tag = None
    name, colon, maybe_tag = path.rpartition(":")
    if colon:
        path, tag = name, maybe_tag
        if not _TAG.fullmatch(tag):
            raise bad(f"bad tag {tag!r}" if tag else "a ':' with no tag after it")
    if not path:
        raise bad("no repository name")
    parts = path.split("/")
    for part in parts:
        if not part:
            raise bad("an empty path component ('//' or a '/' at an end)")
        if not _COMPONENT.fullmatch(part):
            raise bad(f"bad repository component {part!r} (lowercase letters, digits, . _ -)")
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and len(parts) == 1:
        path = "library/" + path
    if len(path) > 255:
        raise bad("repository name longer than 255 characters")
    return Reference(registry, path, tag, digest)


def local_name(text: str) -> str:
    """The name an image gets in the store for *text*: ``registry/repo:tag``, a short name
    under ``localhost/``, ``latest`` when no tag is given (podman's ``tag``/``commit``)."""
    if text.startswith("sha256:") or _HEX64.fullmatch(text.rsplit(":", 1)[0]):
        raise UserError(f"invalid image name {text!r}: it looks like an image id", exit_code=2)
    ref = parse_reference(text, LOCAL, "invalid image name")
    if ref.digest is not None:
        raise UserError(f"invalid image name {text!r}: give a tag, not a digest", exit_code=2)
    return str(ref)


def short_suffix(text: str) -> str | None:
    """For a short name (``busybox``, ``library/busybox:1``): the ``/repo:tag`` a stored name
    must end with to match it (podman matches local images so); None for a full name."""
    if has_registry(text) or "@" in text:
        return None
    path, colon, tag = text.rpartition(":")
    if not colon:
        path, tag = text, "latest"
    return f"/{path}:{tag}"
