"""``unionfs cp`` both ways, as ``podman cp``: through the container's mount (mounted for
the copy when it is not running), resolving container paths inside its root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from patience import Deadline

from runtime.containerutil import Runtime, unique_name

pytestmark = pytest.mark.usefixtures("unionfs_runtime_only")


def test_cp_in_and_out_of_a_stopped_and_a_running_container(
    runtime: Runtime, bb: str, tmp_path: Path
) -> None:
    c = unique_name()
    made = runtime("create", "--name", c, bb, "sh", "-c", "cat /in/hello; readlink /d/lnk")
    assert made.returncode == 0, made.stderr
    src = tmp_path / "d"
    src.mkdir()
    (src / "hello").write_text("hi\n")
    (src / "hello").chmod(0o640)
    (src / "lnk").symlink_to("/etc/passwd")
    assert runtime("cp", str(src), f"{c}:/in").returncode == 0  # no /in: d becomes /in
    assert runtime("cp", str(src), f"{c}:/").returncode == 0  # a directory: d goes into it
    assert runtime("start", "-a", c).stdout == "hi\n/etc/passwd\n"
    out = tmp_path / "out"
    assert runtime("cp", f"{c}:/d", str(out)).returncode == 0
    assert (out / "hello").read_text() == "hi\n" and os.readlink(out / "lnk") == "/etc/passwd"
    assert (out / "hello").stat().st_mode & 0o777 == 0o640
    # running: through its runtime's mount
    r = unique_name()
    made = runtime("run", "-d", "--name", r, bb, "sh", "-c", "echo up > /up; sleep 1000")
    assert made.returncode == 0, made.stderr
    got = tmp_path / "up"
    deadline = Deadline(30)
    while runtime("cp", f"{r}:/up", str(got)).returncode != 0:  # until the shell wrote it
        assert not deadline.expired()
    assert got.read_text() == "up\n"
    assert runtime("rm", "-f", r, c).returncode == 0


def test_container_symlinks_stay_inside_its_root(
    runtime: Runtime, bb: str, tmp_path: Path
) -> None:
    c = unique_name()
    assert runtime("create", "--name", c, bb, "ln", "-s", "/", "/escape").returncode == 0
    assert runtime("start", "-a", c).returncode == 0
    mark = tmp_path / "mark"
    mark.write_text("x")
    landed = tmp_path / "landed-on-the-host"
    done = runtime("cp", str(mark), f"{c}:/escape{landed}")
    assert not landed.exists()
    assert done.returncode != 0  # the container has no such directory
    assert runtime("cp", str(mark), f"{c}:/escape/tmp/m").returncode == 0
    assert not Path("/tmp/m").exists() or Path("/tmp/m").read_text() != "x"
    out = tmp_path / "back"
    assert runtime("cp", f"{c}:/tmp/m", str(out)).returncode == 0 and out.read_text() == "x"
    assert runtime("rm", c).returncode == 0


@pytest.mark.parametrize(("argv", "said"), [
    (["cp", "a", "b"], "unionfs: cp: give one side as CONTAINER:PATH (and the other a host path)"),
    (["cp", "nosuch:/x", "/tmp"], "unionfs: no such container: nosuch"),
])  # fmt: skip
def test_cp_bad_input_is_one_line(runtime: Runtime, argv: list[str], said: str) -> None:
    done = runtime(*argv)
    assert done.returncode != 0 and done.stderr == said + "\n"
