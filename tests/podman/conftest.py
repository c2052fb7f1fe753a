"""Fixtures for root podman with a private storage root per mount program.

Each ``podman(program)`` gets its own graphroot, runroot, config files and busybox image;
on the way out every container and image is removed, and the test fails if a mount, a
daemon serving that storage root, or a cgroup directory made for the test is left.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from podmanutil import CgroupParent, Podman, busybox_rootfs, missing_tools

IMAGE = "localhost/unionfs-test-busybox"


@pytest.fixture
def cgroup_parent() -> Iterator[CgroupParent]:
    if os.geteuid() != 0:
        pytest.skip("root podman needs root")
    if missing := missing_tools():
        pytest.skip(f"not installed: {', '.join(missing)}")
    parent = CgroupParent()
    try:
        yield parent
    finally:
        parent.cleanup()
        left = parent.leftovers()
        assert not left, f"cgroup directories left: {left}"


@pytest.fixture
def podman(tmp_path: Path, cgroup_parent: CgroupParent) -> Iterator[Callable[..., Podman]]:
    """``podman("/path/to/program")`` (or None: the kernel's overlayfs), image ``IMAGE``."""
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    made: list[Podman] = []
    # Root podman keeps a blob cache here whatever --root says; remove it if we made it.
    system_cache = Path("/var/lib/containers")
    cache_existed = system_cache.exists()

    def make(program: str | None, name: str) -> Podman:
        pm = Podman(tmp_path / name, program, cgroup_parent)
        made.append(pm)
        pm.import_rootfs(rootfs, IMAGE)
        return pm

    try:
        yield make
    finally:
        problems = [f"{pm.base.name}: {p}" for pm in made for p in pm.teardown()]
        if not cache_existed:
            shutil.rmtree(system_cache, ignore_errors=True)
        assert not problems, "\n".join(problems)
