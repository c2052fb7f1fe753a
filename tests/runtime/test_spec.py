"""RunSpec from CLI flags, and the values of limit flags: pure, no privileges."""

from __future__ import annotations

import pytest

from unionfs.errors import UserError
from unionfs.runtime import caps, devices, spec, units
from unionfs.runtime.spec import MountSpec


def cli(**kwargs: object) -> spec.RunSpec:
    args: dict[str, object] = {"rootfs": "/r", "command": ["sh"], "host_env": {}}
    args.update(kwargs)
    return spec.from_cli(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64m", 64 << 20),
        ("64M", 64 << 20),
        ("1g", 1 << 30),
        ("1.5g", 3 << 29),
        ("8388608", 8 << 20),
        ("512mb", 512 << 20),
        ("10MiB", 10 << 20),
        ("7000k", 7000 << 10),
    ],
)
def test_memory_sizes_are_binary_like_docker(text: str, value: int) -> None:
    assert units.parse_memory(text) == value


@pytest.mark.parametrize("text", ["", "m", "64q", "-64m", "64 m b", "1e3m", "abc"])
def test_unparseable_memory_is_one_clear_error(text: str) -> None:
    with pytest.raises(UserError, match=r"--memory .*not a size"):
        units.parse_memory(text)


def test_memory_below_six_megabytes_is_refused() -> None:
    with pytest.raises(UserError, match="minimum memory limit is 6m"):
        units.parse_memory("1m")


def test_cpus_become_quota_over_a_100ms_period() -> None:
    assert units.parse_cpus("0.5") == (50_000, 100_000)
    assert units.parse_cpus("2") == (200_000, 100_000)
    assert units.parse_cpus("0.2") == (20_000, 100_000)


@pytest.mark.parametrize("text", ["0", "-1", "half", "nan", "inf", "0.001"])
def test_bad_cpus_are_refused(text: str) -> None:
    with pytest.raises(UserError, match="--cpus"):
        units.parse_cpus(text)


@pytest.mark.parametrize("text", ["0", "-5", "ten", "1.5"])
def test_bad_pids_are_refused(text: str) -> None:
    with pytest.raises(UserError, match="--pids"):
        units.parse_pids(text)


def test_format_bytes() -> None:
    assert units.format_bytes(None) == "-"
    assert units.format_bytes(512) == "512B"
    assert units.format_bytes(1536) == "1.5KiB"
    assert units.format_bytes(32 << 20) == "32MiB"


def test_defaults_give_the_six_namespaces_and_the_minimal_mounts() -> None:
    s = cli()
    assert s.namespaces == ("cgroup", "ipc", "mount", "network", "pid", "uts")
    assert [m.destination for m in s.mounts] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ]
    sysfs = s.mounts[-2]
    assert sysfs.type == "sysfs" and "ro" in sysfs.options
    assert s.mounts[-1].type == "cgroup" and "ro" in s.mounts[-1].options
    assert "nodev" in s.mounts[1].options  # /dev: its nodes are binds of the host's
    assert s.resources == spec.Resources(devices=devices.default_rules())
    assert s.process.cwd == "/" and (s.process.uid, s.process.gid) == (0, 0)
    assert s.hostname is None and s.hostname_from_id
    assert "/proc/kcore" in s.masked_paths and "/proc/sys" in s.readonly_paths


def test_limits_flags_fill_resources_and_name_their_controllers() -> None:
    s = cli(memory="32m", cpus="0.25", pids="10")
    assert s.resources == spec.Resources(32 << 20, 25_000, 100_000, 10, devices.default_rules())
    assert s.resources.controllers() == ("memory", "cpu", "pids", "devices")


def test_default_capabilities_are_dockers_without_mknod() -> None:
    s = cli()
    assert s.process.capabilities is not None
    names = {caps.NAMES[n] for n in s.process.capabilities.bounding}
    assert "CAP_KILL" in names and "CAP_CHOWN" in names
    assert "CAP_MKNOD" not in names and "CAP_SYS_ADMIN" not in names
    assert s.process.capabilities.effective == s.process.capabilities.bounding


def test_a_non_root_user_holds_no_capabilities() -> None:
    s = cli(user="1000:1000")
    assert (s.process.uid, s.process.gid) == (1000, 1000)
    assert s.process.capabilities is not None
    assert s.process.capabilities.effective == s.process.capabilities.permitted == ()
    assert ("HOME=/") in s.process.env


@pytest.mark.parametrize("text", ["root", "1000:staff", "-1", "1:2:3", ""])
def test_user_must_be_numeric(text: str) -> None:
    with pytest.raises(UserError, match="--user"):
        cli(user=text)


def test_env_overrides_defaults_and_a_bare_key_takes_the_host_value() -> None:
    s = cli(env=["PATH=/bin", "A=1", "B", "C"], host_env={"B": "from-host"}, hostname="h")
    assert s.process.env == ("PATH=/bin", "HOME=/root", "HOSTNAME=h", "A=1", "B=from-host")
    with pytest.raises(UserError, match="KEY=VALUE"):
        cli(env=["=x"])


def test_hostname_from_id_fills_hostname_and_env() -> None:
    s = cli().with_id("abc123")
    assert s.hostname == "abc123" and "HOSTNAME=abc123" in s.process.env
    given = cli(hostname="box", env=["HOSTNAME=mine"])
    assert given.with_id("abc123") is given and "HOSTNAME=mine" in given.process.env


def test_volumes_become_bind_mounts_read_only_ones_not_recursive() -> None:
    s = cli(volumes=["/data:/mnt/data", "/etc/hosts:/etc/hosts:ro"])
    assert s.mounts[-2:] == (
        MountSpec("/mnt/data", "bind", "/data", ("rbind",)),
        MountSpec("/etc/hosts", "bind", "/etc/hosts", ("bind", "ro", "nosuid", "nodev")),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/a", "expected HOSTDIR"),
        ("relative:/a", "named volumes need the image store"),
        ("/a:b", "must be an absolute path"),
        ("/a:/b:rx", "the mode must be ro or rw"),
        ("/a:/", "cannot mount over the container's root"),
    ],
)
def test_bad_volumes_are_refused(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        cli(volumes=[text])


def test_workdir_must_be_absolute_and_is_created() -> None:
    assert cli(workdir="/srv/app/").process.cwd == "/srv/app"
    assert cli(workdir="/srv").process.make_cwd
    assert not cli().process.make_cwd
    with pytest.raises(UserError, match="absolute"):
        cli(workdir="srv")


def test_no_command_is_an_error() -> None:
    with pytest.raises(UserError, match="no command given"):
        cli(command=[])


def test_hostname_is_checked() -> None:
    with pytest.raises(UserError, match="host name"):
        cli(hostname="x" * 65)


def test_merge_env_keeps_order_and_replaces() -> None:
    assert spec.merge_env(["A=1", "B=2"], ["B=3", "C=4"]) == ("A=1", "B=3", "C=4")


def test_capability_names_are_checked() -> None:
    assert caps.numbers(["CAP_KILL", "chown"], "x") == (0, 5)
    with pytest.raises(UserError, match="unknown capability 'CAP_FLY'"):
        caps.numbers(["CAP_FLY"], "x")
