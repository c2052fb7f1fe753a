"""Image references as the registry client takes them: the grammar is ``unionfs.imagename``'s
(one grammar for the client and the store); a short name means Docker Hub here, with
``library/`` for a one-component name, and no tag means ``latest``."""

from __future__ import annotations

from unionfs.imagename import DOCKER_HUB, DOCKER_HUB_API, Reference, has_registry, parse_reference

__all__ = ["DOCKER_HUB", "DOCKER_HUB_API", "Reference", "has_registry", "parse_reference"]
