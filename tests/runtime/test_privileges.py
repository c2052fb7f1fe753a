"""What a container holds, seen from inside (busybox, as root): no_new_privs and the seccomp
filter by default (``grep Seccomp /proc/self/status`` says 2), docker's capabilities,
--cap-add/--cap-drop, --security-opt no-new-privileges=false and seccomp=unconfined|FILE,
a bundle's ``linux.seccomp``; exec'd processes get the same."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from patience import scaled

from runtime.containerutil import Runtime, unique_name
from unionfs.runtime import caps

STATUS = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"


def status(text: str) -> dict[str, str]:
    return dict(line.split(":\t") for line in text.splitlines() if ":\t" in line)


def mask(names: list[str] | tuple[str, ...]) -> str:
    value = 0
    for n in caps.numbers(names, "test"):
        value |= 1 << n
    return f"{value:016x}"


def run(runtime: Runtime, rootfs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return runtime("run", "--rm", *args[:-1], "--rootfs", str(rootfs), "sh", "-c", args[-1])


def test_by_default_no_new_privs_a_filter_and_dockers_capabilities(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    done = run(runtime, busybox_rootfs, f"{STATUS}; unshare -U true; echo unshare=$?")
    seen = status(done.stdout)
    assert (seen["NoNewPrivs"], seen["Seccomp"]) == ("1", "2"), done.stdout
    assert seen["CapBnd"] == seen["CapEff"] == mask(caps.DEFAULT)
    assert "unshare=1" in done.stdout and "Operation not permitted" in done.stderr


def test_a_user_gets_the_filter_too_with_or_without_no_new_privs(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    for extra, nnp in (([], "1"), (["--security-opt", "no-new-privileges=false"], "0")):
        done = run(runtime, busybox_rootfs, "--user", "1000", *extra, STATUS)
        seen = status(done.stdout)
        assert (seen["NoNewPrivs"], seen["Seccomp"], seen["CapEff"]) == (nnp, "2", "0" * 16)


def test_cap_flags_and_an_unconfined_filter(runtime: Runtime, busybox_rootfs: Path) -> None:
    dropped = status(run(runtime, busybox_rootfs, "--cap-drop", "ALL", "--cap-add", "KILL",
                         STATUS).stdout)  # fmt: skip
    assert dropped["CapBnd"] == mask(["CAP_KILL"])
    admin = run(runtime, busybox_rootfs, "--cap-add", "SYS_ADMIN", "hostname other; hostname")
    assert admin.stdout == "other\n", admin.stderr  # the filter lets sethostname through too
    plain = run(runtime, busybox_rootfs, "hostname other")
    assert "not permitted" in plain.stderr
    loose = run(runtime, busybox_rootfs, "--security-opt", "seccomp=unconfined", STATUS)
    assert status(loose.stdout)["Seccomp"] == "0"


def test_a_seccomp_profile_file(runtime: Runtime, busybox_rootfs: Path, tmp_path: Path) -> None:
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))  # fmt: skip
    done = run(runtime, busybox_rootfs, "--security-opt", f"seccomp={profile}",
               "mkdir /tmp/d; echo mkdir=$?; touch /tmp/f && echo touch=ok")  # fmt: skip
    assert "mkdir=1" in done.stdout and "touch=ok" in done.stdout
    assert "Permission denied" in done.stderr


def test_exec_gets_the_containers_filter_and_no_new_privs(
    runtime: Runtime, busybox_rootfs: Path
) -> None:
    name = unique_name()
    proc = runtime.start("run", "--name", name, "--rm", "--rootfs", str(busybox_rootfs),
                         "sleep", "300")  # fmt: skip
    runtime.wait_running(name, proc)
    seen = status(runtime("exec", name, "sh", "-c", STATUS).stdout)
    assert (seen["NoNewPrivs"], seen["Seccomp"]) == ("1", "2")
    assert runtime("kill", name, "KILL").returncode == 0
    proc.wait(timeout=scaled(60))


def test_a_bundles_linux_seccomp_is_honoured(
    runtime: Runtime, busybox_rootfs: Path, tmp_path: Path
) -> None:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed: `runc spec` makes the bundle")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=False, args=["sh", "-c", f"{STATUS}; mkdir /tmp/d"])
    config["root"]["path"] = str(busybox_rootfs)
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}  # fmt: skip
    (bundle / "config.json").write_text(json.dumps(config))
    done = runtime("run", "--rm", "--bundle", str(bundle))
    assert status(done.stdout)["Seccomp"] == "2"
    assert done.returncode == 1 and "Operation not permitted" in done.stderr
