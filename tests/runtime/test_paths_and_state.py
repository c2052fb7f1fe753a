"""Resolving paths inside a container root, mount options, and the state directory: temp
dirs only, no privileges."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from unionfs.errors import UserError
from unionfs.runtime import mountflags, spec
from unionfs.runtime.executor import resolve_in_root
from unionfs.runtime.mountflags import MS_BIND, MS_NOSUID, MS_RDONLY, MS_REC, MS_SLAVE
from unionfs.runtime.state import ContainerDirs, State, _from_json, _to_json, describe


def test_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "lib").symlink_to("/usr/lib")  # absolute: the root's /usr/lib
    (root / "escape").symlink_to("../../../etc")  # .. stops at the root
    (root / "abs_escape").symlink_to("/etc/passwd")
    (root / "loop").symlink_to("loop")
    r = str(root)
    assert resolve_in_root(r, "/lib/x") == f"{r}/usr/lib/x"
    assert resolve_in_root(r, "/escape/shadow") == f"{r}/etc/shadow"
    assert resolve_in_root(r, "/abs_escape") == f"{r}/etc/passwd"
    assert resolve_in_root(r, "/../../x/./y") == f"{r}/x/y"
    assert resolve_in_root(r, "/") == r
    with pytest.raises(OSError, match="too many symlinks"):
        resolve_in_root(r, "/loop/x")


def test_mount_options_become_flags_and_data() -> None:
    parsed = mountflags.parse(["rbind", "ro", "nosuid", "rslave", "mode=755"], "t")
    assert parsed.flags == MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID
    assert parsed.propagation == MS_SLAVE | MS_REC and parsed.data == "mode=755"
    assert mountflags.parse(["ro", "rw"], "t").flags == 0
    assert mountflags.parse(["newinstance", "gid=5"], "t").data == "newinstance,gid=5"
    with pytest.raises(UserError, match="unknown mount option 'bogus'"):
        mountflags.parse(["bogus"], "t")


def state(store: ContainerDirs, name: str | None = None) -> State:
    return store.create(name, ("sh", "-c", "x"), "/rootfs", remove=False)


def test_a_new_container_gets_its_directories_and_a_unique_name(tmp_path: Path) -> None:
    store = ContainerDirs(str(tmp_path))
    first = state(store, "web")
    paths = store.paths(first.id)
    assert all(os.path.isdir(d) for d in (paths.upper, paths.work, paths.rootfs))
    assert store.load(first.id) == first
    with pytest.raises(UserError, match=r"the name 'web' is in use .*unionfs rm web"):
        state(store, "web")
    other = state(store)
    assert other.name == other.id[:12] and len(other.id) == 32
    assert [s.id for s in store.all()] == [first.id, other.id]


def test_containers_are_found_by_name_id_or_prefix(tmp_path: Path) -> None:
    store = ContainerDirs(str(tmp_path))
    c = state(store, "db")
    assert store.find("db") == c and store.find(c.id) == c and store.find(c.id[:5]) == c
    with pytest.raises(UserError, match="no such container: nope"):
        store.find("nope")


@pytest.mark.parametrize("name", ["-x", "a b", "a/b", "", "x" * 200])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError, match="invalid container name"):
        state(ContainerDirs(str(tmp_path)), name)


def test_state_with_a_process_survives_json(tmp_path: Path) -> None:
    process = spec.from_cli(rootfs="/r", command=["sh"], host_env={}, user="3:4").process
    process = spec.Process(
        **{
            **{f: getattr(process, f) for f in process.__dataclass_fields__},
            "rlimits": (spec.Rlimit("RLIMIT_NOFILE", 8, 9),),
        }
    )
    s = State(
        "a" * 32,
        "n",
        1.0,
        ("sh",),
        "/r",
        False,
        status="running",
        pid=5,
        pid_start=9,
        cgroup=(("version", "2"), ("path", "/x")),
        namespaces=("mount", "pid"),
        process=process,
    )
    assert _from_json(_to_json(s)) == s


def test_a_running_state_whose_process_is_gone_is_dead(tmp_path: Path) -> None:
    s = State(
        "a" * 32,
        "n",
        1.0,
        ("sh",),
        "/r",
        False,
        status="running",
        pid=2**22 + 1,
        pid_start=1,
        runtime_pid=os.getpid(),
    )
    assert describe(s) == "dead (runtime gone)"
    assert (
        describe(
            State(
                "b" * 32, "m", 1.0, (), "/r", False, status="exited", exit_code=137, oom_killed=True
            )
        )
        == "exited (137, OOM)"
    )
