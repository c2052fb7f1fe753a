"""registries.conf read from podman's places: the environment's file or the user's (which
hides the system's), then drop-ins; search registries, aliases, insecure and blocked
registries, both formats; short names resolved as podman resolves them."""

from __future__ import annotations

from pathlib import Path

import pytest

from unionfs.errors import UserError
from unionfs.registry import registriesconf
from unionfs.registry.reference import parse_reference

# Not among the aliases the system's drop-ins define (Debian's shortnames.conf has busybox).
NAME = "unionfs-test-image"


def env_for(tmp_path: Path, main: str | None = None) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home)}
    if main is not None:
        path = tmp_path / "registries.conf"
        path.write_text(main)
        env[registriesconf.ENV] = str(path)
    return env


def user_dropin(tmp_path: Path, name: str, text: str) -> None:
    d = tmp_path / "home" / ".config" / "containers" / "registries.conf.d"
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)


V2 = """
unqualified-search-registries = ["127.0.0.1:5000", "docker.io"]
short-name-mode = "permissive"
[[registry]]
location = "127.0.0.1:5000"
insecure = true
[[registry]]
prefix = "quay.io/blocked"
location = "quay.io/blocked"
blocked = true
[aliases]
"tool" = "quay.io/team/tool"
"""


def test_v2_file_from_the_environment(tmp_path: Path) -> None:
    conf = registriesconf.load(env_for(tmp_path, V2))
    assert conf.search == ["127.0.0.1:5000", "docker.io"]
    assert conf.insecure(parse_reference("127.0.0.1:5000/a/b"))
    assert not conf.insecure(parse_reference("127.0.0.1:5001/a/b"))
    conf.check_allowed(parse_reference("quay.io/other/x"))
    with pytest.raises(UserError) as info:
        conf.check_allowed(parse_reference("quay.io/blocked/x"))
    assert "is blocked in registries.conf" in info.value.message


def test_short_names_are_tried_on_the_search_registries_in_order(tmp_path: Path) -> None:
    conf = registriesconf.load(env_for(tmp_path, V2))
    found = [str(r) for r in registriesconf.candidates(f"{NAME}:1", conf)]
    assert found == [f"127.0.0.1:5000/{NAME}:1", f"docker.io/library/{NAME}:1"]
    assert [str(r) for r in registriesconf.candidates("tool", conf)] == ["quay.io/team/tool:latest"]
    assert [str(r) for r in registriesconf.candidates("tool:2", conf)] == ["quay.io/team/tool:2"]
    assert [str(r) for r in registriesconf.candidates("h:1/x", conf)] == ["h:1/x:latest"]


def test_enforcing_mode_with_several_search_registries_refuses_a_short_name(
    tmp_path: Path,
) -> None:
    conf = registriesconf.load(env_for(tmp_path, V2.replace("permissive", "enforcing")))
    with pytest.raises(UserError) as info:
        registriesconf.candidates(NAME, conf)
    assert "ambiguous" in info.value.message
    assert f"127.0.0.1:5000/{NAME}:latest" in info.value.message


def test_no_search_registries_is_podmans_error(tmp_path: Path) -> None:
    conf = registriesconf.load(env_for(tmp_path, "# nothing\n"))
    with pytest.raises(UserError) as info:
        registriesconf.candidates(NAME, conf)
    assert "no unqualified-search registries are defined" in info.value.message
    assert f"docker.io/library/{NAME}" in info.value.message


def test_v1_format(tmp_path: Path) -> None:
    conf = registriesconf.load(env_for(tmp_path, """
[registries.search]
registries = ["r1.example"]
[registries.insecure]
registries = ["127.0.0.1:5000"]
[registries.block]
registries = ["bad.example"]
"""))
    assert conf.search == ["r1.example"]
    assert conf.insecure(parse_reference("127.0.0.1:5000/x"))
    with pytest.raises(UserError):
        conf.check_allowed(parse_reference("bad.example/x"))


def test_dropins_override_in_name_order(tmp_path: Path) -> None:
    env = env_for(tmp_path, V2)
    user_dropin(tmp_path, "10-a.conf", 'unqualified-search-registries = ["a.example"]\n')
    user_dropin(tmp_path, "20-b.conf",
                '[[registry]]\nlocation = "127.0.0.1:5000"\ninsecure = false\n')  # fmt: skip
    conf = registriesconf.load(env)
    assert conf.search == ["a.example"]
    assert not conf.insecure(parse_reference("127.0.0.1:5000/x"))
    assert conf.files[0] == env[registriesconf.ENV]


def test_the_users_file_hides_the_systems(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    user = tmp_path / "home" / ".config" / "containers" / "registries.conf"
    user.parent.mkdir(parents=True)
    user.write_text('unqualified-search-registries = ["mine.example"]\n')
    conf = registriesconf.load(env)
    assert conf.search == ["mine.example"]
    assert not any(f.startswith("/etc/") for f in conf.files)


def test_a_broken_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        registriesconf.load(env_for(tmp_path, "unqualified-search-registries = [\n"))
    assert "is not valid TOML" in info.value.message and "\n" not in info.value.message
