"""The run flags of issue 21 beyond the basics, through the CLI: ``--ulimit``, ``--label``
(with ``ps --filter label=`` and ``inspect``), ``--init`` (catatonit as PID 1),
``--mount type=bind|tmpfs|volume``, named volumes (``-v NAME:/dir``, ``volume
create|ls|inspect|rm|prune``) and ``--device``; bad values are one line with the fix."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from runtime.containerutil import Runtime, unique_name

pytestmark = pytest.mark.usefixtures("unionfs_runtime_only")



def test_ulimit_sets_soft_and_hard_limits(runtime: Runtime, bb: str) -> None:
    said = runtime.ok("run", "--rm", "--ulimit", "nofile=100:200", "--ulimit", "core=0", bb,
              "sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c")  # fmt: skip
    assert said.split() == ["100", "200", "0"]


def test_labels_are_listed_filtered_and_inspected(runtime: Runtime, bb: str) -> None:
    c, other = f"clidaily-{unique_name()}", f"clidaily-{unique_name()}"
    runtime.ok("create", "--name", c, "--label", "tier=web", "-l", "plain", bb, "true")
    runtime.ok("create", "--name", other, "--label", "tier=db", bb, "true")
    assert runtime.ok("ps", "-a", "--filter", "label=tier=web", "--format", "{{.Names}}") \
        == f"{c}\n"  # fmt: skip
    assert runtime.ok("ps", "-a", "--filter", "label=tier", "-q").count("\n") == 2
    assert runtime.ok("ps", "-a", "--filter", "label=plain", "--format",
              "{{.Labels}}") == "map[plain: tier:web]\n"  # fmt: skip
    (shown,) = json.loads(runtime.ok("inspect", c))
    assert shown["Config"]["Labels"] == {"tier": "web", "plain": ""}
    listed = json.loads(runtime.ok("ps", "-a", "--format", "json"))
    assert {e["Names"][0]: e["Labels"] for e in listed} == {
        c: {"tier": "web", "plain": ""}, other: {"tier": "db"}}
    runtime.ok("rm", c, other)


def test_init_is_pid_1_and_the_command_its_child(runtime: Runtime, bb: str) -> None:
    if shutil.which("catatonit") is None:
        pytest.skip("catatonit is missing: ./dev.sh setup installs it")
    said = runtime.ok("run", "--rm", "--init", bb, "sh", "-c",
              "tr '\\0' ' ' </proc/1/cmdline; echo; echo $$")  # fmt: skip
    done = runtime("run", "--rm", "--init", bb, "sh", "-c", "exit 7")
    assert said.splitlines()[0].startswith("/run/podman-init -- sh -c ")
    assert said.splitlines()[1] == "2"  # the command: catatonit's child
    assert done.returncode == 7  # its exit code comes through
    plain = runtime.ok("run", "--rm", bb, "sh", "-c", "echo $$")
    assert plain == "1\n"


def test_mount_bind_tmpfs_and_volume(runtime: Runtime, bb: str, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "given").write_text("from the host\n")
    script = ("cat /h/given; touch /h/x 2>/dev/null || echo read-only; "
              "grep ' /t ' /proc/mounts | cut -d' ' -f3,4; echo kept > /data/f")
    said = runtime.ok("run", "--rm",
              "--mount", f"type=bind,source={host},target=/h,readonly",
              "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=700",
              "--mount", "type=volume,source=clidaily-vol,target=/data", bb, "sh", "-c", script)
    lines = said.splitlines()
    assert lines[:2] == ["from the host", "read-only"]
    assert lines[2].startswith("tmpfs rw,nosuid,nodev,noexec") and "size=1024k" in lines[2]
    assert "mode=700" in lines[2]
    # the volume outlives the container; -v NAME:/dir finds it again
    assert runtime.ok("run", "--rm", "-v", "clidaily-vol:/d:ro", bb, "cat", "/d/f") == "kept\n"
    assert runtime.ok("volume", "ls", "-q") == "clidaily-vol\n"
    assert runtime.ok("volume", "ls") == "DRIVER      VOLUME NAME\nlocal       clidaily-vol\n"
    (shown,) = json.loads(runtime.ok("volume", "inspect", "clidaily-vol"))
    assert shown["Mountpoint"] == str(runtime.home / "volumes" / "clidaily-vol" / "_data")
    assert runtime.ok("volume", "rm", "clidaily-vol") == "clidaily-vol\n"
    assert runtime.ok("volume", "ls", "-q") == ""


def test_a_volume_in_use_is_kept_until_its_container_goes(runtime: Runtime, bb: str) -> None:
    c = f"clidaily-{unique_name()}"
    assert runtime.ok("volume", "create", "clidaily-used") == "clidaily-used\n"
    runtime.ok("create", "--name", c, "-v", "clidaily-used:/u", bb, "true")
    refused = runtime("volume", "rm", "clidaily-used")
    assert (refused.returncode, refused.stderr) == (1, f"unionfs: volume clidaily-used is "
            f"used by container {c}: unionfs rm {c} first (or volume rm -f removes both)\n")
    assert runtime.ok("volume", "prune", "-f") == ""  # in use: kept
    assert runtime.ok("volume", "rm", "-f", "clidaily-used") == "clidaily-used\n"
    assert runtime.ok("ps", "-aq") == ""


def test_device_is_bound_with_its_access_rule(runtime: Runtime, bb: str) -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    script = ("test -c /dev/f && echo node; : </dev/f && echo read; "
              "(: >/dev/f) 2>/dev/null || echo no-write; test -e /dev/fuse || echo only-given")
    said = runtime.ok("run", "--rm", "--device", "/dev/fuse:/dev/f:r", bb, "sh", "-c", script)
    assert said.split() == ["node", "read", "no-write", "only-given"]
    rw = runtime.ok("run", "--rm", "--device", "/dev/fuse", bb, "sh", "-c",
            ": <>/dev/fuse && echo read-write")  # fmt: skip
    assert rw == "read-write\n"


@pytest.mark.parametrize(("flags", "said"), [
    (["--ulimit", "nofiles=1"], "unionfs: --ulimit nofiles=1: give NAME=SOFT[:HARD] with NAME "
     "one of as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, "
     "rtprio, rttime, sigpending, stack"),
    (["--ulimit", "nofile=9:3"], "unionfs: --ulimit nofile=9:3: the soft limit is above the "
     "hard one"),
    (["--mount", "type=nfs,target=/x"], "unionfs: --mount type=nfs,target=/x: type 'nfs': "
     "give bind, tmpfs or volume"),
    (["--mount", "type=bind,source=rel,target=/x"], "unionfs: --mount "
     "type=bind,source=rel,target=/x: a bind needs source=ABSOLUTE-HOST-PATH"),
    (["--mount", "type=tmpfs"], "unionfs: --mount type=tmpfs: give target=CONTAINERDIR"),
    (["--device", "/etc/passwd"], "unionfs: --device /etc/passwd: /etc/passwd is not a device "
     "node (for files and directories use -v)"),
    (["--device", "/dev/clidaily-none"], "unionfs: --device /dev/clidaily-none: "
     "/dev/clidaily-none: No such file or directory"),
    (["-v", "bad name:/x"], "unionfs: -v 'bad name:/x': give an absolute host path or a "
     "volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"),
    (["--init", "--init-path", "/clidaily-none"], "unionfs: --init: /clidaily-none is not a "
     "program: apt-get install catatonit, or give --init-path"),
])  # fmt: skip
def test_bad_flags_are_one_line(runtime: Runtime, bb: str, flags: list[str], said: str) -> None:
    done = runtime("run", "--rm", *flags, bb, "true")
    assert done.stderr == said + "\n" and done.returncode in (1, 2), done
    assert not (runtime.home / "containers").exists()  # refused before anything was made
