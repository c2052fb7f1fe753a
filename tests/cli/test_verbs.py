"""Unknown verbs are unknown commands with a did-you-mean, not mount errors; the
mount-program forms podman and mount(8) use still mount; podman's grouped spellings
(``image ls``, ``container rm``...) reach the same verbs."""

from __future__ import annotations

from pathlib import Path

import pytest

from unionfs.cli import build_parser, main
from unionfs.cli.verbs import GROUPS, is_mount_program_call


def run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = run(argv)
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    return code, err.strip()


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["imgaes"], "unknown command 'imgaes' (did you mean 'images' or 'image'?); "
                     "see unionfs --help"),
        (["stop2", "web"], "unknown command 'stop2'"),
        (["pause", "web"], "unknown command 'pause'"),
        (["build", "."], "unknown command 'build'"),
        (["psuh", "x", "y"], "unknown command 'psuh' (did you mean 'push'"),
        (["login2"], "did you mean 'login'"),
    ],
)
def test_an_unknown_verb_is_an_unknown_command(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = error_of(argv, capsys)
    assert code == 2
    assert line.startswith("unionfs: ") and said in line
    assert "lowerdir" not in line and "no such container" not in line


def test_an_unknown_group_verb_gets_a_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    code, line = error_of(["image", "lss"], capsys)
    assert code == 2 and "unknown command 'lss' (did you mean 'ls'" in line
    assert "unionfs image --help" in line


def test_a_group_without_its_verb_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, line = error_of(["image"], capsys)
    assert code == 2 and line.startswith("unionfs: image: give a command (ls, rm, ")


@pytest.mark.parametrize(
    "argv",
    [
        ["-o", "lowerdir=/a", "/mnt"],  # podman, fuse-overlayfs
        ["-olowerdir=/a", "/mnt"],
        ["-f", "-o", "lowerdir=/a", "/mnt"],
        ["--log", "x.log", "-o", "lowerdir=/a", "/mnt"],
        ["overlay", "/mnt", "-o", "rw,lowerdir=/a"],  # mount(8) through mount.fuse.unionfs
        ["overlay", "/mnt", "-n", "-o", "lowerdir=/a", "-t", "fuse.unionfs"],
        ["/src", "/mnt"],  # no options at all: the mount then says what it lacks
        ["./mnt"],
    ],
)
def test_the_mount_program_forms_still_mount(argv: list[str]) -> None:
    assert is_mount_program_call(argv)


@pytest.mark.parametrize(
    "argv", [["stop", "web"], ["imgaes"], ["logs", "-f", "web"], ["build", "."], ["cp", "a", "b/c"]]
)
def test_verb_like_words_are_not_mount_calls(argv: list[str]) -> None:
    assert not is_mount_program_call(argv)


def test_a_path_with_no_options_is_still_a_mount_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, line = error_of(["src", str(tmp_path)], capsys)
    assert code != 0 and "lowerdir" in line


@pytest.mark.parametrize(("group", "verbs"), [(g, list(v)) for g, (_h, v) in GROUPS.items()])
def test_every_group_verb_has_its_parser(group: str, verbs: list[str]) -> None:
    parser = build_parser()
    for verb in verbs:
        args = parser.parse_args([group, verb, "--help"][:2] + _required(group, verb))
        assert args.command == group


def _required(group: str, verb: str) -> list[str]:
    """Enough positional arguments for the verb to parse."""
    needs = {"rm": ["x"], "inspect": ["x"], "history": ["x"], "import": ["x"], "save": ["x"],
             "pull": ["x"], "push": ["x"], "tag": ["x", "y"], "convert": ["x", "y", "--estargz"],
             "start": ["x"], "exec": ["x", "true"], "kill": ["x"], "diff": ["x"],
             "commit": ["x", "y"], "umount": ["x"], "create": ["x"], "stop": ["x"],
             "restart": ["x"], "wait": ["x"], "logs": ["x"], "cp": ["x", "y"], "attach": ["x"],
             "top": ["x"]}  # fmt: skip
    return needs.get(verb, [])


def test_image_inspect_is_inspect_of_images(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["image", "inspect", "x"])
    assert args.type == "image"
    args = build_parser().parse_args(["container", "inspect", "x"])
    assert args.type == "container"


def test_help_of_a_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["help", "images"]) == 0
    assert "usage: unionfs images" in capsys.readouterr().out
