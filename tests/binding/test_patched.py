"""The pyfuse3 that ./dev.sh set up is the patched build of third_party/pyfuse3, linked to the
libfuse that third_party/libfuse built into the virtualenv, and the feature probe
(unionfs.fuse.features) reads what a binding offers."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import subprocess
import sys
import types
from pathlib import Path

import pyfuse3
import pytest

from unionfs.fuse import features

REPO = Path(__file__).resolve().parents[2]
PATCHES = REPO / "third_party" / "pyfuse3"
LIBFUSE = REPO / "third_party" / "libfuse"
NEEDS_LIBFUSE_3_17 = ("killpriv_v2", "tmpfile", "passthrough", "no_export")


def series(path: Path) -> list[str]:
    """The patch names a series file lists, as install.sh reads them."""
    lines = path.read_text().splitlines()
    return [n for n in lines if n.strip() and not n.lstrip().startswith("#")]


def libfuse_stamp() -> bytes:
    """The stamp third_party/libfuse/install.sh leaves: the hash of it and of its patches."""
    names = ["install.sh", "debian-patches/series", "patches/series"]
    for folder in ("debian-patches", "patches"):
        names += [f"{folder}/{n}" for n in series(LIBFUSE / folder / "series")]
    data = b"".join((LIBFUSE / n).read_bytes() for n in names)
    return hashlib.sha256(data).hexdigest()[:12].encode() + b"\n"


def series_label() -> str:
    """The local version label install.sh gives the build: the hash of series + patches,
    of install.sh and of the libfuse build it was compiled against."""
    data = (PATCHES / "series").read_bytes()
    data += b"".join((PATCHES / n).read_bytes() for n in series(PATCHES / "series"))
    data += (PATCHES / "install.sh").read_bytes()
    return "unionfs." + hashlib.sha256(data + libfuse_stamp()).hexdigest()[:12]


def in_dev_venv() -> None:
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("not running in the virtualenv that ./dev.sh setup builds")


def test_installed_pyfuse3_is_the_patched_build_of_this_series() -> None:
    in_dev_venv()
    version = importlib.metadata.version("pyfuse3")
    assert version == f"3.5.0+{series_label()}", (
        f"pyfuse3 {version} is not the build of third_party/pyfuse3 (and third_party/libfuse) "
        "as it is now: run ./dev.sh setup (a patch that no longer applies fails there)"
    )


def test_pyfuse3_loads_the_libfuse_built_into_the_venv_without_ld_library_path() -> None:
    in_dev_venv()
    prefix = subprocess.run(
        ["bash", str(LIBFUSE / "install.sh"), "--prefix", str(REPO / ".venv")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert (Path(prefix) / ".unionfs-build").read_bytes() == libfuse_stamp()
    probe = (
        "import ctypes, re, pyfuse3\n"
        "maps = open('/proc/self/maps').read()\n"
        "(path,) = set(re.findall(r'(/\\S*/libfuse3\\.so\\S*)', maps))\n"
        "lib = ctypes.CDLL(path)\n"
        "lib.fuse_pkgversion.restype = ctypes.c_char_p\n"
        "print(path, lib.fuse_pkgversion().decode(), *pyfuse3.libfuse_version)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env
    ).stdout.split()
    version = prefix.rsplit("-", 1)[1]  # .venv/opt/libfuse-3.17.2
    major, minor, _ = version.split(".")
    # Loaded from the prefix, that version, and compiled against its headers.
    assert out == [os.path.realpath(Path(prefix) / "lib" / "libfuse3.so"), version, major, minor]


def pinned(script: Path, name: str) -> str:
    """The value of NAME=... in an install.sh."""
    (line,) = [x for x in script.read_text().splitlines() if x.startswith(f"{name}=")]
    return line.split("=", 1)[1]


def test_series_applies_to_the_pinned_sdist_and_its_unit_tests_pass(tmp_path: Path) -> None:
    """Each patch applies exactly (as install.sh applies them) to the sdist install.sh kept,
    and the unit tests the patches add to pyfuse3's test/test_api.py pass on the build."""
    in_dev_venv()
    version = pinned(PATCHES / "install.sh", "PYFUSE3_VERSION")
    sdist = REPO / ".venv" / "build" / "pyfuse3" / f"pyfuse3-{version}.tar.gz"
    assert sdist.is_file(), f"{sdist} is gone: rm -rf .venv/build && ./dev.sh setup"
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    assert digest == pinned(PATCHES / "install.sh", "SDIST_SHA256")
    subprocess.run(["tar", "-xzf", str(sdist), "-C", str(tmp_path)], check=True)
    src = tmp_path / f"pyfuse3-{version}"
    for name in series(PATCHES / "series"):
        applied = subprocess.run(
            ["patch", "-d", str(src), "-p1", "--forward", "--batch", "--fuzz=0",
             "--no-backup-if-mismatch", "--reject-file=-", "--quiet",
             "-i", str(PATCHES / name)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert applied.returncode == 0, f"{name} does not apply: {applied.stdout}"
    api = (src / "test" / "test_api.py").read_text()
    added = ("test_node_id_defaults_to_st_ino", "test_setattr_fields_kill_suidgid",
             "test_passthrough_needs_a_session", "test_libfuse_version_and_capabilities",
             "test_version_is_looked_up_lazily",
             "test_parallel_dirops_is_requested_only_when_asked")
    assert all(f"def {test}(" in api for test in added)
    # Run from the patched tree, but import the installed (compiled) pyfuse3: src/ layout.
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/test_api.py"],
        cwd=src, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-2000:]
    assert " passed" in ran.stdout and " skipped" not in ran.stdout, ran.stdout[-1000:]


def test_patched_binding_on_libfuse_3_17_offers_every_feature() -> None:
    assert features.available() == set(features.KNOWN)
    assert features.missing_line() is None


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


def patched_on_libfuse_3_14() -> types.ModuleType:
    """A stand-in for the patched pyfuse3 compiled against Debian 12's libfuse 3.14."""
    module = types.ModuleType("pyfuse3")
    for name in ("Operations", "EntryAttributes", "FileInfo", "RequestContext", "passthrough_open"):
        setattr(module, name, getattr(pyfuse3, name))
    module.__version__ = pyfuse3.__version__  # type: ignore[attr-defined]
    module.libfuse_version = (3, 14)  # type: ignore[attr-defined]
    module.libfuse_capabilities = pyfuse3.libfuse_capabilities - {  # type: ignore[attr-defined]
        "handle_killpriv_v2",
        "passthrough",
        "no_export_support",
    }
    return module


def test_patched_binding_on_libfuse_3_14_lacks_what_needs_3_17() -> None:
    assert features.missing(patched_on_libfuse_3_14()) == NEEDS_LIBFUSE_3_17


def test_stock_binding_reports_every_feature_missing_in_one_line() -> None:
    stock = stock_like()
    assert features.available(stock) == frozenset()
    assert features.missing(stock) == features.KNOWN
    line = features.missing_line(stock)
    assert line is not None and "\n" not in line
    assert line.startswith("pyfuse3 3.5.0 lacks FUSE features: node_id, fallocate, ioctl")
