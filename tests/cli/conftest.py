"""The CLI tests' fixtures: the store tests' private store root and ``uf`` runner."""

from __future__ import annotations

from store.conftest import store_root, uf

__all__ = ["store_root", "uf"]
