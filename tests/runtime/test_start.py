"""``unionfs create IMAGE CMD`` then ``unionfs start``, and ``start`` of an exited ``run``:
the saved spec runs again over the same upper. The ``runtime`` fixture then asserts that
no mount, process or cgroup remains."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from patience import scaled
from store.storeutil import oci_layout, tar_dir

from runtime.containerutil import Runtime, unique_name
from unionfs.runtime.state import ContainerDirs

COUNT = "echo x >> /count; wc -l < /count"


@pytest.fixture
def image(runtime: Runtime, busybox_rootfs: Path, tmp_path: Path) -> str:
    """busybox as an image whose config has a default command, Env and WorkingDir."""
    raw = tar_dir(busybox_rootfs, tmp_path / "layer.tar").read_bytes()
    settings = {"Cmd": ["sh", "-c", f"echo $GREETING from $(pwd); {COUNT}"],
                "Env": ["PATH=/bin:/usr/bin", "GREETING=hello"], "WorkingDir": "/srv"}  # fmt: skip
    oci_layout(tmp_path / "layout", [raw], settings=settings)
    done = runtime("import", str(tmp_path / "layout"), "bb-cmd")
    assert done.returncode == 0, done.stderr
    return "bb-cmd"


def states(runtime: Runtime) -> list[tuple[str, str, int | None]]:
    return [(s.name, s.status, s.exit_code) for s in ContainerDirs(str(runtime.home)).all()]


def test_an_exited_run_starts_again_on_its_upper(runtime: Runtime, busybox_rootfs: Path) -> None:
    c = unique_name()
    first = runtime("run", "--name", c, "--rootfs", str(busybox_rootfs), "sh", "-c",
                    f"{COUNT}; exit 3")  # fmt: skip
    assert (first.returncode, first.stdout) == (3, "1\n")
    again = runtime("start", "-a", c)
    assert (again.returncode, again.stdout, again.stderr) == (3, "2\n", "")
    assert states(runtime) == [(c, "exited", 3)]
    assert f"{c} Exited 3\n" in runtime("ps", "-a", "--format", "{{.Names}} {{.State}} "
                                          "{{.ExitCode}}").stdout  # fmt: skip
    assert runtime("rm", c).returncode == 0
    assert states(runtime) == []


def test_create_uses_the_images_defaults_and_start_keeps_the_changes(
    runtime: Runtime, image: str
) -> None:
    c = unique_name()
    made = runtime("create", "--name", c, "-e", "GREETING=hi", image)
    assert made.returncode == 0 and len(made.stdout.strip()) == 32, made.stderr
    assert states(runtime) == [(c, "created", None)]
    listing = runtime("ps", "-a", "--no-trunc", "--format", "{{.Names}} {{.Status}} {{.Command}}")
    assert f"{c} Created sh -c echo $GREETING from" in listing.stdout  # joined as podman
    for n in (1, 2):
        done = runtime("start", "-a", c)
        assert (done.returncode, done.stdout) == (0, f"hi from /srv\n{n}\n"), done.stderr
    assert states(runtime) == [(c, "exited", 0)]
    assert "A /count" in runtime("diff", c).stdout.splitlines()
    assert runtime("commit", c, "bb-next").returncode == 0
    assert runtime("rm", c).returncode == 0
    done = runtime("run", "--rm", "bb-next")  # the upper, and the image's defaults, kept
    assert (done.returncode, done.stdout) == (0, "hello from /srv\n3\n"), done.stderr


def test_create_rm_with_a_command_after_flags_that_follow_the_image(
    runtime: Runtime, image: str
) -> None:
    c = unique_name()
    made = runtime("create", image, "--rm", "--name", c, "sh", "-c", "echo $GREETING; exit 6")
    assert made.returncode == 0, made.stderr
    done = runtime("start", "-a", c)
    assert (done.returncode, done.stdout) == (6, "hello\n")
    assert states(runtime) == []  # --rm: removed when it exited


def test_start_of_a_running_or_mounted_container_is_refused(runtime: Runtime, image: str) -> None:
    c = unique_name()
    script = "trap 'exit 7' TERM; echo ready; sleep 60 & wait"
    assert runtime("create", "--name", c, image, "sh", "-c", script).returncode == 0
    proc = runtime.start("start", "-a", c)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    runtime.wait_running(c, proc)
    refused = runtime("start", "-a", c)
    assert (refused.returncode, refused.stderr) == (
        1, f"unionfs: container {c} is already running\n")  # fmt: skip
    execd = runtime("exec", c, "sh", "-c", "echo $GREETING; pwd")
    assert (execd.returncode, execd.stdout) == (0, "hello\n/srv\n"), execd.stderr
    proc.send_signal(signal.SIGTERM)  # forwarded to the process, as by run
    proc.communicate(timeout=scaled(30))
    assert proc.returncode == 7 and states(runtime) == [(c, "exited", 7)]
    mounted = runtime("mount", c)
    assert mounted.returncode == 0, mounted.stderr
    refused = runtime("start", "-a", c)
    assert (refused.returncode, refused.stderr) == (
        1, f"unionfs: container {c} is mounted: unionfs umount {c} first\n")  # fmt: skip
    assert runtime("umount", c).returncode == 0
    assert runtime("rm", c).returncode == 0


def test_a_container_without_a_command_mounts_but_does_not_start(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    assert runtime("import", str(busybox_rootfs), "plain").returncode == 0
    refused = runtime("create", "--memory", "64m", "plain")
    assert refused.returncode == 1 and states(runtime) == []
    assert refused.stderr == ("unionfs: --memory is for a command, and image plain has no "
                              "default one: give it after IMAGE\n")  # fmt: skip
    c = unique_name()
    assert runtime("create", "plain", "--name", c).returncode == 0  # as before: no command
    done = runtime("start", "-a", c)
    assert done.returncode == 1 and done.stderr.startswith(
        f"unionfs: container {c} has no command to start")  # fmt: skip
    assert states(runtime) == [(c, "created", None)]
    assert runtime("rm", c).returncode == 0


def test_start_cleans_up_after_a_killed_runtime_and_keeps_the_upper(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    c = unique_name()
    script = "if [ -e /k ]; then cat /k; exit 4; fi; echo kept > /k; echo ready; exec sleep 60"
    proc = runtime.start("run", "--name", c, "--memory", "64m", "--rootfs", str(busybox_rootfs),
                         "sh", "-c", script)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    runtime.wait_running(c, proc)
    proc.kill()  # SIGKILL: the runtime cannot clean up; its process, mount, cgroups remain
    proc.wait()
    listing = runtime("ps", "-a", "--format", "{{.Names}} {{.State}} {{.Status}}").stdout
    assert f"{c} Unknown Unknown (its runtime is gone" in listing
    done = runtime("start", "-a", c)
    assert (done.returncode, done.stdout, done.stderr) == (4, "kept\n", "")
    assert states(runtime) == [(c, "exited", 4)]
    assert runtime("rm", c).returncode == 0
