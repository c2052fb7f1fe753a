"""Fixtures: a real ``docker-registry`` per module (open, and one with htpasswd auth)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from registry.regutil import Registry, start_registry, write_htpasswd

USER, PASSWORD = "tester", "s3cret-pw"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    work = tmp_path_factory.mktemp("auth-registry")
    htpasswd = work / "htpasswd"
    write_htpasswd(htpasswd, USER, PASSWORD)
    reg = start_registry(work / "reg", htpasswd=htpasswd)
    try:
        yield reg
    finally:
        reg.stop()
