"""The pyfuse3 that ./dev.sh set up is the patched build of third_party/pyfuse3, and the
feature probe (unionfs.fuse.features) reads what a binding offers."""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
import types
from pathlib import Path

import pyfuse3
import pytest

from unionfs.fuse import features

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "third_party" / "pyfuse3"
UNAVAILABLE_WITH_LIBFUSE_3_14 = {"killpriv_v2", "tmpfile"}


def series_label() -> str:
    """The local version label install.sh gives the build: the hash of series + patches."""
    series = (PATCHES / "series").read_bytes()
    names = [n for n in series.decode().splitlines() if n.strip() and not n.startswith("#")]
    data = series + b"".join((PATCHES / n).read_bytes() for n in names)
    return "unionfs." + hashlib.sha256(data).hexdigest()[:12]


def test_installed_pyfuse3_is_the_patched_build_of_this_series() -> None:
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("not running in the virtualenv that ./dev.sh setup builds")
    version = importlib.metadata.version("pyfuse3")
    assert version == f"3.5.0+{series_label()}", (
        f"pyfuse3 {version} is not the build of third_party/pyfuse3 as it is now: "
        "run ./dev.sh setup (a patch that no longer applies fails there)"
    )


def test_patched_binding_offers_every_feature_libfuse_3_14_allows() -> None:
    assert features.available() == set(features.KNOWN) - UNAVAILABLE_WITH_LIBFUSE_3_14
    assert features.missing_line() == (
        f"pyfuse3 {pyfuse3.__version__} lacks FUSE features: killpriv_v2, tmpfile"
    )


def stock_like() -> types.ModuleType:
    """A stand-in with the API of an unpatched pyfuse3 3.5.0."""

    class Operations:
        enable_writeback_cache = False
        enable_acl = False

        async def open(self) -> None:
            """Open a inode *inode* with *flags*."""

    class EntryAttributes:
        st_ino = 0

    class FileInfo:
        fh = 0
        keep_cache = True

    module = types.ModuleType("pyfuse3")
    module.Operations = Operations  # type: ignore[attr-defined]
    module.EntryAttributes = EntryAttributes  # type: ignore[attr-defined]
    module.FileInfo = FileInfo  # type: ignore[attr-defined]
    module.__version__ = "3.5.0"  # type: ignore[attr-defined]
    return module


def test_stock_binding_reports_every_feature_missing_in_one_line() -> None:
    stock = stock_like()
    assert features.available(stock) == frozenset()
    assert features.missing(stock) == features.KNOWN
    line = features.missing_line(stock)
    assert line is not None and "\n" not in line
    assert line.startswith("pyfuse3 3.5.0 lacks FUSE features: node_id, fallocate, ioctl")
