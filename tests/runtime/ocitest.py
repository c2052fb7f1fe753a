"""An OCI runtime driven by its command line (``unionfs-runtime`` or runc), with a private
``--root``, for the lifecycle tests; and bundles made from the busybox rootfs.

Every container a test creates is deleted (``delete --force``) at teardown, and the test
then fails if its state directory, a process or a cgroup of it is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

OURS = str(Path(sys.executable).with_name("unionfs-runtime"))
TIMEOUT = 120.0  # generous: the machine is shared


class OciRuntime:
    def __init__(self, program: str, root: Path) -> None:
        self.program = program
        self.root = root
        self.ids: list[str] = []

    @property
    def name(self) -> str:
        return "runc" if Path(self.program).name == "runc" else "unionfs"

    def argv(self, *args: str) -> list[str]:
        return [self.program, "--root", str(self.root), *args]

    def __call__(self, *args: str, stdin: int | None = subprocess.DEVNULL,
                 ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return subprocess.run(self.argv(*args), capture_output=True, text=True, stdin=stdin,
                              timeout=TIMEOUT, check=False)  # fmt: skip

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0, f"{self.name} {args[0]} -> {done.returncode}: {done.stderr}"
        return done.stdout

    def state(self, container_id: str) -> dict[str, object]:
        result: dict[str, object] = json.loads(self.ok("state", container_id))
        return result

    def create(self, bundle: Path, *flags: str) -> str:
        """Create a container of *bundle* (a new id); its stdout/stderr go to files in it."""
        container_id = f"utest-oci-{uuid.uuid4().hex[:10]}"
        self.ids.append(container_id)
        with open(bundle / "out", "wb") as out, open(bundle / "err", "wb") as err:
            done = subprocess.run(self.argv("create", "--bundle", str(bundle), *flags,
                                            container_id), stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err, timeout=TIMEOUT, check=False)  # fmt: skip
        assert done.returncode == 0, (bundle / "err").read_text()
        return container_id

    def cleanup(self) -> list[str]:
        problems = []
        for container_id in self.ids:
            done = self("delete", "--force", container_id)
            if done.returncode != 0 and "not exist" not in done.stderr + done.stdout:
                problems.append(f"delete --force {container_id}: {done.stderr.strip()}")
        if self.root.exists() and any(self.root.iterdir()):
            problems.append(f"left in --root: {sorted(p.name for p in self.root.iterdir())}")
        return problems


def make_bundle(where: Path, rootfs: Path, args: list[str], **changes: object) -> Path:
    """``runc spec``'s config over a copy of *rootfs* running *args*, no terminal, a cgroup
    below ours; *changes*: top-level keys to set, ``linux__x`` for linux.x."""
    where.mkdir(parents=True)
    shutil.copytree(rootfs, where / "rootfs", symlinks=True)
    (where / "rootfs").chmod(0o755)  # a temp dir's 0700 would keep other users out
    subprocess.run(["runc", "spec", "--bundle", str(where)], check=True)
    config = json.loads((where / "config.json").read_text())
    config["process"].update(terminal=False, args=args)
    config["root"]["readonly"] = False
    config["linux"]["cgroupsPath"] = f"unionfs-oci-{uuid.uuid4().hex[:10]}"
    for key, value in changes.items():
        if key.startswith("linux__"):
            config["linux"][key[7:]] = value
        elif key.startswith("process__"):
            config["process"][key[9:]] = value
        else:
            config[key] = value
    (where / "config.json").write_text(json.dumps(config))
    return where


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_stopped(rt: OciRuntime, container_id: str) -> None:
    """Until the container's process has exited (waiting on it through a pidfd)."""
    pid = rt.state(container_id)["pid"]
    assert isinstance(pid, int)
    if pid and alive(pid):
        fd = os.pidfd_open(pid)
        try:
            import select

            assert select.select([fd], [], [], TIMEOUT)[0], f"{pid} did not exit"
        finally:
            os.close(fd)
