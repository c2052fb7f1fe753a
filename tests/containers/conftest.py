"""The container tests use the store tests' fixtures: a private store root per test and
the CLI on it, with containers' mounts undone at teardown."""

from __future__ import annotations

from store.conftest import store_root, uf

__all__ = ["store_root", "uf"]
