"""An image's config as podman applies it: Entrypoint kept and arguments replacing Cmd,
``--entrypoint``, users by name or number through the image's /etc/passwd and /etc/group
(gid, HOME, supplementary groups), TERM with ``-t``, ``--env-file``, ``--read-only``,
``--tmpfs``; and their bad input as one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from store.storeutil import oci_layout, tar_dir

from runtime.containerutil import Runtime

PASSWD = ("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")  # fmt: skip
GROUP = "root:x:0:\nwww-data:x:33:\nstaff:x:50:www-data,other\nnogroup:x:65534:\n"


pytestmark = pytest.mark.usefixtures("unionfs_runtime_only")


@pytest.fixture(scope="module")
def layout(busybox_rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("imgcfg")
    root = where / "root"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    settings = {"Entrypoint": ["/bin/echo", "EP:"], "Cmd": ["default"],
                "Env": ["PATH=/bin:/usr/bin", "FROM_IMAGE=1"]}  # fmt: skip
    oci_layout(where / "layout", [tar_dir(root, where / "l.tar").read_bytes()],
               settings=settings)  # fmt: skip
    return where / "layout"


@pytest.fixture
def img(runtime: Runtime, layout: Path) -> str:
    done = runtime("import", str(layout), "cfg-img")
    assert done.returncode == 0, done.stderr
    return "cfg-img"


def out(runtime: Runtime, *args: str) -> str:
    done = runtime("run", "--rm", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_entrypoint_stays_and_arguments_replace_cmd(runtime: Runtime, img: str) -> None:
    assert out(runtime, img) == "EP: default\n"
    assert out(runtime, img, "hello") == "EP: hello\n"
    assert out(runtime, "--entrypoint", "", img, "echo", "plain") == "plain\n"
    assert out(runtime, "--entrypoint", "/bin/hostname", "--hostname", "h1", img) == "h1\n"
    assert out(runtime, "--entrypoint", '["/bin/echo", "J:"]', img, "x") == "J: x\n"


ID = "echo $(id -u) $(id -g) $(id -G) $HOME"


@pytest.mark.parametrize(("user", "said"), [
    ("www-data", "33 33 33 50 /var/www"),
    ("33", "33 33 33 50 /var/www"),  # podman: gid and HOME from passwd's entry
    ("www-data:staff", "33 50 50 /var/www"),
    ("1234", "1234 0 0 /"),
])  # fmt: skip
def test_users_through_the_images_passwd_and_group(runtime: Runtime, img: str, user: str,
                                                   said: str) -> None:  # fmt: skip
    assert out(runtime, "--entrypoint", "", "-u", user, img, "sh", "-c", ID) == said + "\n"


def test_env_file_tty_term_read_only_and_tmpfs(runtime: Runtime, img: str,
                                               tmp_path: Path) -> None:  # fmt: skip
    env = tmp_path / "env"
    env.write_text("# a comment\n\nA=from-file\nB=b\n")
    shown = out(runtime, "--entrypoint", "", "--env-file", str(env), "-e", "A=from-e", img,
                "sh", "-c", "echo $A $B $FROM_IMAGE ${TERM:-none}")  # fmt: skip
    assert shown == "from-e b 1 none\n"
    assert "TERM=xterm" in out(runtime, "-t", "--entrypoint", "", img, "env")
    refused = runtime("run", "--rm", "--read-only", "--entrypoint", "", img, "touch", "/x")
    assert refused.returncode == 1 and "Read-only file system" in refused.stderr
    script = "touch /scratch/x && echo wrote; grep ' /scratch ' /proc/mounts | cut -d' ' -f4"
    shown = out(runtime, "--read-only", "--tmpfs", "/scratch:size=1m", "--entrypoint", "",
                img, "sh", "-c", script)  # fmt: skip
    wrote, options = shown.splitlines()
    assert wrote == "wrote" and {"rw", "nosuid", "nodev", "noexec"} <= set(options.split(","))


@pytest.mark.parametrize(("flags", "said"), [
    (["-u", "nosuch"], "unionfs: --user nosuch: no user 'nosuch' in the image's /etc/passwd"),
    (["-u", "root:nogrp"],
     "unionfs: --user root:nogrp: no group 'nogrp' in the image's /etc/group"),
    (["-u", ":5"], "unionfs: --user ':5': give a user (name or number)"),
    (["--entrypoint", "[1"], "unionfs: --entrypoint [1: a JSON array of strings, or one command"),
    (["--env-file", "/nonexistent/env"],
     "unionfs: --env-file /nonexistent/env: No such file or directory"),
    (["--tmpfs", "scratch"], "unionfs: --tmpfs 'scratch' must be an absolute path"),
])  # fmt: skip
def test_bad_config_flags_are_one_line(runtime: Runtime, img: str, flags: list[str],
                                       said: str) -> None:  # fmt: skip
    done = runtime("run", "--rm", *flags, img)
    assert done.returncode != 0 and done.stderr == said + "\n"
