"""Fixtures: a real ``docker-registry`` per module (open, and one with htpasswd auth)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from registry.regutil import Registry, TokenServer, self_signed, start_registry, write_htpasswd

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


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with bearer-token auth; its token server is ``reg.token``."""
    work = tmp_path_factory.mktemp("token-registry")
    token = TokenServer(work / "token", USER, PASSWORD)
    try:
        reg = start_registry(work / "reg", token=token)
        reg.token = token
        try:
            yield reg
        finally:
            reg.stop()
    finally:
        token.stop()


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry on https with a self-signed certificate."""
    work = tmp_path_factory.mktemp("tls-registry")
    reg = start_registry(work / "reg", tls=self_signed(work))
    try:
        yield reg
    finally:
        reg.stop()
