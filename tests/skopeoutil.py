"""skopeo as the tests run it: ``skopeo(...)`` is the argv. Run as root, skopeo keeps its
blob-info cache in /var/lib/containers/cache whatever its other options say; here it runs
as containers/image runs for a user (``_CONTAINERS_ROOTLESS_UID``), whose cache lives in
``$XDG_DATA_HOME/containers/cache``: this test session's temp dir (tests/conftest.py sets
it). Nothing else about skopeo changes; what a test checks stays in the test."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "UNIONFS_TEST_SKOPEO_DATA"
NOBODY = 65534  # any uid but 0: containers/image then takes the user's cache directory


def skopeo(*args: str | Path) -> list[str]:
    data = os.environ.get(DATA_ENV)
    assert data, f"{DATA_ENV} is set by tests/conftest.py for the whole session"
    return ["env", f"_CONTAINERS_ROOTLESS_UID={NOBODY}", f"XDG_DATA_HOME={data}",
            "skopeo", *(str(a) for a in args)]  # fmt: skip
