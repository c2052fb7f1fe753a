"""What a rootless run checks before it makes anything (pure: fake files and trees), and
the id maps it asks newuidmap/newgidmap for."""

from __future__ import annotations

import pwd
from collections.abc import Callable
from pathlib import Path

import pytest

from unionfs.errors import UserError
from unionfs.runtime import cgroups, placement, userns
from unionfs.runtime.spec import Resources

SUBUID = "alice:100000:65536\n1234:300000:10\nbob:200000:65536\nbroken line\n"
ALICE = pwd.struct_passwd(("alice", "x", 1234, 1234, "", "/home/alice", "/bin/sh"))


def test_sub_ranges_by_name_or_id() -> None:
    assert userns.sub_ranges(SUBUID, "alice", 1234) == (
        userns.IdRange(100000, 65536),
        userns.IdRange(300000, 10),
    )
    assert userns.sub_ranges(SUBUID, "carol", 99) == ()


def test_map_lines_put_the_user_at_0_and_the_ranges_after() -> None:
    ranges = (userns.IdRange(100000, 65536), userns.IdRange(300000, 10))
    assert userns.map_lines(1234, ranges) == [
        (0, 1234, 1),
        (1, 100000, 65536),
        (65537, 300000, 10),
    ]


def _files(monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> None:
    monkeypatch.setattr(userns, "_read", files.get)


def test_disabled_user_namespaces_are_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    _files(monkeypatch, {"/proc/sys/user/max_user_namespaces": "0\n"})
    with pytest.raises(UserError, match=r"user namespaces are disabled .* user.max_user_name"):
        userns.check_userns_allowed()
    _files(monkeypatch, {"/proc/sys/kernel/unprivileged_userns_clone": "0\n"})
    with pytest.raises(UserError, match=r"kernel\.unprivileged_userns_clone=1"):
        userns.check_userns_allowed()


def test_missing_newuidmap_means_a_single_mapping_and_says_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(userns.shutil, "which", lambda tool: None)
    mapping, note = userns.plan_mapping(ALICE)
    assert mapping.single and mapping.uid == 1234
    assert note is not None and "newuidmap and newgidmap not found" in note
    assert "apt-get install uidmap" in note
    assert userns.needs_more_ids(mapping, 5, 0, ())
    assert not userns.needs_more_ids(mapping, 0, 0, ())


def test_ranges_from_subuid_and_subgid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(userns.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    _files(monkeypatch, {userns.SUBUID: SUBUID, userns.SUBGID: "alice:500000:1000\n"})
    mapping, note = userns.plan_mapping(ALICE)
    assert note is None and not mapping.single
    assert mapping.gid_ranges == (userns.IdRange(500000, 1000),)
    _files(monkeypatch, {userns.SUBUID: SUBUID})
    mapping, note = userns.plan_mapping(ALICE)
    assert mapping.single
    assert note is not None and "no range for alice in /etc/subgid" in note


def test_missing_fuse_device_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="modprobe fuse"):
        userns.check_fuse_device(str(tmp_path / "fuse"))


# -- delegated cgroups, against fake trees ---------------------------------------------------
SELF_V1 = "4:memory:/box\n8:pids:/box\n1:cpu:/\n0::/\n"


def _v1_tree(root: Path) -> None:
    for controller in ("memory", "pids", "cpu"):
        own = root / controller / ("box" if controller != "cpu" else "")
        own.mkdir(parents=True, exist_ok=True)
        (root / controller / "cgroup.procs").touch()


def _only(*controllers: str) -> Callable[[str], bool]:
    """A user who may create cgroups in the given controllers' own directories only."""
    return lambda parent: (
        Path(parent).parent.name in controllers or (Path(parent).name in controllers)
    )


def test_no_delegation_means_no_cgroup_said_in_one_line(tmp_path: Path) -> None:
    _v1_tree(tmp_path)
    found, note = placement.delegated("c1", Resources(), str(tmp_path), SELF_V1, _only())
    assert isinstance(found, cgroups.NoCgroup)
    assert note is not None and "no delegated cgroup" in note and "\n" not in note


def test_limits_need_their_controller_delegated(tmp_path: Path) -> None:
    _v1_tree(tmp_path)
    with pytest.raises(UserError, match="--memory needs a cgroup delegated to you"):
        placement.delegated("c1", Resources(memory=1 << 26), str(tmp_path), SELF_V1, _only("pids"))
    found, note = placement.delegated(
        "c1", Resources(pids=10), str(tmp_path), SELF_V1, _only("pids")
    )
    assert note is None
    assert isinstance(found, cgroups.V1Cgroup)
    assert found.dirs == {"pids": str(tmp_path / "pids" / "box" / "c1")}


def test_no_cgroup_round_trips_through_the_state() -> None:
    assert isinstance(cgroups.from_record(cgroups.NoCgroup().record()), cgroups.NoCgroup)
