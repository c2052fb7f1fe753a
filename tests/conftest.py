"""Shared test setup: ``slow`` tests on request, fixed or fresh property-test examples, a
private unionfs index dir, no leaked mounts, bytecode for the many Python processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# The shared helpers (mountutil, treecmp) live next to this file.
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from mountutil import force_unmount, fresh_dir, mounts  # noqa: E402
from skopeoutil import DATA_ENV  # noqa: E402
from zygoteutil import session_env, stop_marked  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    """Property tests draw the same examples on every default run (``derandomize``): the
    suite passes or fails by what the code does, not by the luck of one run's draw. The
    slow tier (``--run-slow``, ``-m slow``) and ``UNIONFS_EXPLORE=1`` draw new examples
    every time: that is where new cases are found, then kept as fixed sequences."""
    explore = (
        config.getoption("--run-slow")
        or "slow" in (config.getoption("markexpr") or "")
        or os.environ.get("UNIONFS_EXPLORE") == "1"
    )
    settings.register_profile("unionfs-fixed", derandomize=True)
    settings.register_profile("unionfs-explore", derandomize=False)
    settings.load_profile("unionfs-explore" if explore else "unionfs-fixed")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``slow`` tests unless ``--run-slow`` is given or ``-m`` names them."""
    if config.getoption("--run-slow") or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def private_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every unionfs started by the tests keeps its LMDB index in this session's temp dir,
    not in root's ~/.cache (unless UNIONFS_INDEX_DIR is set already)."""
    if os.environ.get("UNIONFS_INDEX_DIR"):
        yield
        return
    os.environ["UNIONFS_INDEX_DIR"] = str(tmp_path_factory.mktemp("unionfs-index"))
    try:
        yield
    finally:
        del os.environ["UNIONFS_INDEX_DIR"]


@pytest.fixture(scope="session", autouse=True)
def no_zygote_by_default() -> Iterator[None]:
    """The mount zygote (on by default for users) is off for the tests unless pytest's
    caller set UNIONFS_ZYGOTE: a resident process would outlive the test that started it,
    keep its user from being removed and its cgroup from going. The zygote's own tests
    turn it on; what any test started is stopped here, by its mark."""
    added = {k: v for k, v in session_env().items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        stop_marked(session_env()["UNIONFS_TEST_SESSION"])
        for key in added:
            del os.environ[key]


@pytest.fixture(scope="session", autouse=True)
def private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every unionfs started by the tests keeps its per-user runtime files (the mount
    daemons' records, what `unionfs login` writes) in this session's temp dir, not in
    /run (unless XDG_RUNTIME_DIR is set already)."""
    if os.environ.get("XDG_RUNTIME_DIR"):
        yield
        return
    os.environ["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("xdg-runtime"))
    try:
        yield
    finally:
        del os.environ["XDG_RUNTIME_DIR"]


@pytest.fixture(scope="session", autouse=True)
def private_skopeo_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """skopeo run through ``skopeoutil.skopeo`` keeps its blob-info cache in this session's
    temp dir, not in /var/lib/containers (see tests/skopeoutil.py)."""
    os.environ[DATA_ENV] = str(tmp_path_factory.mktemp("skopeo-data"))
    try:
        yield
    finally:
        del os.environ[DATA_ENV]


@pytest.fixture(scope="session", autouse=True)
def no_system_image_cache() -> Iterator[None]:
    """podman run as root keeps a blob-info cache in /var/lib/containers whatever its
    --root says (podman 4.3 has no option for it): remove it at the end if the session
    made it."""
    cache = Path("/var/lib/containers")
    existed = cache.exists()
    yield
    if not existed:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture
def newdir(tmp_path: Path) -> Callable[..., Path]:
    """``newdir("mnt")``: a new, uniquely named directory for this test."""
    return lambda prefix="d": fresh_dir(tmp_path, prefix)


@pytest.fixture(autouse=True)
def no_leaked_mounts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a mount in its ``tmp_path`` (and unmount it)."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    base = str(request.getfixturevalue("tmp_path")) + "/"
    yield
    leaked = [(p, fs) for p, fs in mounts() if p.startswith(base)]
    for point, _fs in reversed(leaked):
        force_unmount(Path(point))
        if any(p == point for p, _ in mounts()):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    assert not leaked, f"mounts left behind: {leaked}"
