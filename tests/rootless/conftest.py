"""The ``rootless_user`` fixture; the user-making code is in ``rootlessutil``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from rootlessutil import NoUserPython, RootlessUser, fresh_user


@pytest.fixture(scope="session")
def rootless_user() -> Iterator[RootlessUser]:
    if os.geteuid() != 0:
        pytest.skip("the rootless tests create a user: they need root")
    for tool in ("useradd", "userdel", "runuser", "unshare", "fusermount3"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    try:
        with fresh_user() as user:
            yield user
    except NoUserPython as exc:
        pytest.skip(str(exc))
