"""The ``unionfs`` command in-process, for everything that fails before a mount is tried."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from unionfs import __version__, livemounts
from unionfs.cli import main
from unionfs.cli.mount import parse_helper_args
from unionfs.errors import UserError


def run(argv: list[str]) -> int:
    """main's exit status, whether it returned it or argparse raised SystemExit."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, str]:
    paths = {name: tmp_path / name for name in ("lower", "lower2", "upper", "work", "mnt")}
    for path in paths.values():
        path.mkdir()
    (tmp_path / "file").write_text("not a directory")
    return {name: str(path) for name, path in paths.items()} | {
        "file": str(tmp_path / "file"),
        "missing": str(tmp_path / "missing"),
    }


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("unionfs: "), err
    assert out == ""
    return lines[0]


def fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = run(argv)
    line = one_error_line(capsys)
    assert code != 0
    return line


# -- errors before any mount: one line on stderr, non-zero ---------------------------------
def test_missing_lowerdir_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(["-o", f"upperdir={dirs['upper']},workdir={dirs['work']}", dirs["mnt"]], capsys)
    assert "lowerdir" in line
    assert "lowerdir" in fails(["mount", dirs["mnt"]], capsys)


def test_lowerdir_that_is_not_a_directory_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(["-o", f"lowerdir={dirs['lower']}:{dirs['file']}", dirs["mnt"]], capsys)
    assert "not a directory" in line and dirs["file"] in line


def test_lowerdir_that_does_not_exist_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(["mount", "-o", f"lowerdir={dirs['missing']}", dirs["mnt"]], capsys)
    assert "does not exist" in line and dirs["missing"] in line


def test_missing_mountpoint_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(["-o", f"lowerdir={dirs['lower']}", dirs["missing"]], capsys)
    assert "mountpoint" in line and "does not exist" in line


def test_mountpoint_that_is_a_file_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(["-o", f"lowerdir={dirs['lower']}", dirs["file"]], capsys)
    assert "not a directory" in line


def test_unknown_mount_option_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(["-o", f"lowerdir={dirs['lower']},frobnicate", dirs["mnt"]], capsys)
    assert line == "unionfs: unknown option 'frobnicate'"


def test_unsupported_mount_option_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["mount", "-o", f"lowerdir={dirs['lower']},xattr_permissions=1", dirs["mnt"]]
    assert fails(argv, capsys) == "unionfs: option 'xattr_permissions' is not supported yet"


def test_upperdir_without_workdir_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["-o", f"lowerdir={dirs['lower']},upperdir={dirs['upper']}", dirs["mnt"]]
    assert "workdir" in fails(argv, capsys)


def test_upperdir_inside_a_lowerdir_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    upper = Path(dirs["lower"]) / "up"
    upper.mkdir()
    argv = ["-o", f"lowerdir={dirs['lower']},upperdir={upper},workdir={dirs['work']}"]
    assert "is inside lowerdir" in fails([*argv, dirs["mnt"]], capsys)


def test_workdir_inside_upperdir_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    work = Path(dirs["upper"]) / "work"
    work.mkdir()
    argv = ["-o", f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={work}"]
    assert "workdir" in fails([*argv, dirs["mnt"]], capsys)


def test_unknown_argument_in_helper_form_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(["-o", f"lowerdir={dirs['lower']}", "--frobnicate", dirs["mnt"]], capsys)
    assert "--frobnicate" in line


def test_missing_mountpoint_argument_in_helper_form_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    fails(["-o", f"lowerdir={dirs['lower']}"], capsys)


@pytest.mark.parametrize(
    "lead",
    [
        ["-o", "OPTS"],
        ["-oOPTS"],
        ["-f", "-o", "OPTS"],
        ["-d", "-o", "OPTS"],
        ["--log", "LOG", "-o", "OPTS"],
    ],
)
def test_helper_form_is_recognised_whatever_its_first_flag(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str], lead: list[str]
) -> None:
    # fuse-overlayfs takes its flags in any order; the error must be about the layer.
    opts = f"lowerdir={dirs['missing']}"
    log = str(Path(dirs["mnt"]).parent / "log")
    argv = [a.replace("OPTS", opts).replace("LOG", log) for a in lead]
    line = fails([*argv, dirs["mnt"]], capsys)
    assert "does not exist" in line and dirs["missing"] in line


def test_workdir_on_another_filesystem_than_upperdir_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as work:
        if os.stat(work).st_dev == os.stat(dirs["upper"]).st_dev:
            pytest.skip("/dev/shm is on the same filesystem as the temporary directory")
        argv = ["-o", f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={work}"]
        assert "same filesystem" in fails([*argv, dirs["mnt"]], capsys)


def test_too_many_paths_in_helper_form_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(["src", dirs["mnt"], "extra", "-o", f"lowerdir={dirs['lower']}"], capsys)
    assert "usage" in line


# -- version -------------------------------------------------------------------------------
@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_version(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([flag]) == 0
    out, err = capsys.readouterr()
    assert out == "unionfs 0.1.0\n" == f"unionfs {__version__}\n"
    assert err == ""


# -- the helper calling conventions --------------------------------------------------------
def test_helper_args_source_mountpoint_then_options() -> None:
    args = parse_helper_args(["overlay", "/mnt", "-o", "lowerdir=/a,upperdir=/u,workdir=/w"])
    assert args.source == "overlay"
    assert args.mountpoint == "/mnt"
    assert args.options == ["lowerdir=/a,upperdir=/u,workdir=/w"]


def test_helper_args_options_then_mountpoint() -> None:
    args = parse_helper_args(["-o", "lowerdir=/a", "/mnt"])
    assert args.source is None
    assert args.mountpoint == "/mnt"
    assert args.options == ["lowerdir=/a"]


def test_helper_args_accept_mount8_flags() -> None:
    argv = ["src", "/mnt", "-n", "-o", "rw,lowerdir=/a", "-t", "fuse.unionfs"]
    args = parse_helper_args(argv)
    assert (args.source, args.mountpoint) == ("src", "/mnt")
    assert args.options == ["rw,lowerdir=/a"]
    assert args.fstype == "fuse.unionfs"
    assert args.n


def test_helper_args_accept_sloppy_and_verbose_flags() -> None:
    args = parse_helper_args(["src", "/mnt", "-s", "-v", "-o", "lowerdir=/a"])
    assert args.s and args.v and args.mountpoint == "/mnt"


def test_helper_args_collect_every_o() -> None:
    args = parse_helper_args(["-o", "lowerdir=/a", "-o", "ro", "/mnt", "-f", "-d"])
    assert args.options == ["lowerdir=/a", "ro"]
    assert args.foreground and args.debug_requests


def test_helper_args_refuse_an_unknown_flag() -> None:
    with pytest.raises(UserError) as info:
        parse_helper_args(["-o", "lowerdir=/a", "--bogus", "/mnt"])
    assert info.value.exit_code == 2


def test_helper_args_refuse_three_paths() -> None:
    with pytest.raises(UserError) as info:
        parse_helper_args(["a", "b", "c", "-o", "lowerdir=/a"])
    assert info.value.exit_code == 2


def test_debug_flag_keeps_a_user_error_to_one_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(["--debug", "-o", f"lowerdir={dirs['missing']}", dirs["mnt"]], capsys)
    assert "does not exist" in line


# -- umount refuses what is not ours ---------------------------------------------------------
def test_umount_of_a_directory_that_is_not_mounted_is_one_error_line(
    dirs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert "is not mounted" in fails(["umount", dirs["mnt"]], capsys)


def test_umount_of_another_filesystem_is_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert fails(["umount", "/proc"], capsys) == "unionfs: /proc is a proc mount, not a unionfs one"


def test_fstype_at_names_the_filesystem_type() -> None:
    assert livemounts.fstype_at("/proc") == "proc"


def test_fstype_at_of_a_plain_directory_is_none(tmp_path: Path) -> None:
    assert livemounts.fstype_at(str(tmp_path)) is None


def test_a_mount_loads_no_other_command_and_no_runtime(dirs: dict[str, str]) -> None:
    """``unionfs mount`` (podman's mount program, every container start) imports only the
    mount command: not the runtime (remount's flag table), the registry client, the lazy
    layers, the store or the other commands."""
    code = (
        "import sys\n"
        "from unionfs.cli import main\n"
        f"status = main(['mount', '-o', 'lowerdir={dirs['missing']}', {dirs['mnt']!r}])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('unionfs.cli.', 'httpx',"
        " 'unionfs.runtime', 'unionfs.registry', 'unionfs.store', 'unionfs.containers',"
        " 'unionfs.lazy')))\n"
        "print(status, *loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)  # fmt: skip
    status, *loaded = done.stdout.split()
    assert status == "1"
    allowed = {"unionfs.cli.mount", "unionfs.cli.verbs"}  # and the verb table
    assert "unionfs.cli.mount" in loaded
    assert set(loaded) <= allowed, sorted(set(loaded) - allowed)


def test_a_mount_of_plain_layers_does_not_import_the_lazy_layers(tmp_path: Path) -> None:
    """A stack with no lazily pulled layer (none is named ``tree``) never imports
    ``unionfs.lazy``; a ``tree`` without a lazy record beside it is a plain layer too."""
    (tmp_path / "tree").mkdir()
    code = (
        "import sys\n"
        "from unionfs.cli import mount\n"
        f"print(mount._lazy(({str(tmp_path)!r},)), 'unionfs.lazy' in sys.modules)\n"
        f"print(mount._lazy(({str(tmp_path / 'tree')!r},)), 'unionfs.lazy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert done.stdout.split() == ["None", "False", "None", "True"]
