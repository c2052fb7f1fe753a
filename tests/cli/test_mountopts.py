"""Mount options in the syntax of ``mount -t overlay`` and fuse-overlayfs (pure, no I/O)."""

from __future__ import annotations

import pytest

from unionfs.errors import UserError
from unionfs.mountopts import MountOptions, parse, split_lowerdir, split_options

BASIC = "lowerdir=/l1:/l2,upperdir=/u,workdir=/w"


def refused(*texts: str) -> str:
    with pytest.raises(UserError) as info:
        parse(list(texts))
    return info.value.message


# -- split_options -------------------------------------------------------------------------
def test_split_options_splits_on_commas() -> None:
    assert split_options("a,b=c,d") == ["a", "b=c", "d"]


def test_split_options_ignores_empty_items() -> None:
    assert split_options("lowerdir=a,,upperdir=u,workdir=w,") == [
        "lowerdir=a",
        "upperdir=u",
        "workdir=w",
    ]
    assert split_options(",,volatile") == ["volatile"]
    assert split_options("") == []


def test_split_options_keeps_commas_inside_double_quotes() -> None:
    assert split_options('lowerdir=a,context="system_u:object_r:t:s0:c1,c2",ro') == [
        "lowerdir=a",
        'context="system_u:object_r:t:s0:c1,c2"',
        "ro",
    ]


def test_split_options_keeps_an_escaped_comma() -> None:
    assert split_options(r"lowerdir=a\,b,ro") == [r"lowerdir=a\,b", "ro"]


def test_split_options_refuses_an_unbalanced_quote() -> None:
    with pytest.raises(UserError):
        split_options('context="a,b')


# -- split_lowerdir ------------------------------------------------------------------------
def test_split_lowerdir_keeps_the_leftmost_first() -> None:
    assert split_lowerdir("/top:/middle:/bottom") == ["/top", "/middle", "/bottom"]


def test_split_lowerdir_unescapes_colons() -> None:
    assert split_lowerdir(r"/a\:b:/c") == ["/a:b", "/c"]


def test_split_lowerdir_unescapes_any_escaped_character() -> None:
    assert split_lowerdir(r"/a\,b:/c\\d") == ["/a,b", "/c\\d"]


@pytest.mark.parametrize("value", ["a::b", ":a", "a:", ":"])
def test_split_lowerdir_refuses_an_empty_layer(value: str) -> None:
    with pytest.raises(UserError, match="empty layer"):
        split_lowerdir(value)


# -- parse ---------------------------------------------------------------------------------
def test_parse_reads_lower_upper_and_work() -> None:
    assert parse([BASIC]) == MountOptions(("/l1", "/l2"), "/u", "/w", ())


def test_parse_of_lowers_alone_is_read_only() -> None:
    opts = parse(["lowerdir=/a"])
    assert opts == MountOptions(("/a",))
    assert opts.readonly


def test_parse_with_upper_is_writable_unless_ro() -> None:
    assert not parse([BASIC]).readonly
    assert parse([BASIC + ",ro"]).readonly


def test_parse_unescapes_lowerdir_paths() -> None:
    assert parse([r"lowerdir=/a\:b:/c"]).lowerdirs == ("/a:b", "/c")


def test_parse_unescapes_upper_and_work() -> None:
    opts = parse([r"lowerdir=/l,upperdir=/u\:1,workdir=/w\,2"])
    assert (opts.upperdir, opts.workdir) == ("/u:1", "/w,2")


def test_parse_ignores_empty_items() -> None:
    opts = parse(["lowerdir=a,,upperdir=u,workdir=w,"])
    assert opts == MountOptions(("a",), "u", "w", ())


def test_parse_ignores_a_quoted_context_value() -> None:
    opts = parse(['lowerdir=/a,context="system_u:object_r:container_file_t:s0:c1,c2"'])
    assert opts == MountOptions(("/a",))


def test_parse_merges_several_option_strings_and_later_values_win() -> None:
    opts = parse(["lowerdir=/old", "lowerdir=/a:/b", "upperdir=/u,workdir=/w"])
    assert opts == MountOptions(("/a", "/b"), "/u", "/w", ())


def test_parse_lowerdir_plus_appends_a_layer() -> None:
    assert parse(["lowerdir=/a,lowerdir+=/b,lowerdir+=/c"]).lowerdirs == ("/a", "/b", "/c")
    assert parse(["lowerdir+=/a", "lowerdir+=/b"]).lowerdirs == ("/a", "/b")


def test_parse_lowerdir_plus_takes_one_path_with_its_colons() -> None:
    assert parse([r"lowerdir+=/a\:b"]).lowerdirs == ("/a:b",)


def test_parse_passes_fuse_options_through() -> None:
    opts = parse(["lowerdir=/a,allow_other,noatime,fsname=box,nosuid"])
    assert opts.fuse_options == ("allow_other", "fsname=box", "nosuid")


@pytest.mark.parametrize(
    ("words", "mode"),
    [
        ("", ("relatime", False)),
        ("relatime", ("relatime", False)),
        ("noatime", ("noatime", False)),
        ("noatime,atime", ("relatime", False)),
        ("strictatime", ("strictatime", False)),
        ("noatime,strictatime", ("strictatime", False)),  # strictatime clears noatime
        ("strictatime,noatime", ("strictatime", False)),
        ("strictatime,nostrictatime", ("relatime", False)),
        ("relatime,noatime", ("noatime", False)),
        ("norelatime", ("relatime", False)),  # the kernel's default is relatime anyway
        ("nodiratime", ("relatime", True)),
        ("nodiratime,diratime,noatime", ("noatime", False)),
    ],
)
def test_parse_combines_atime_flags_as_the_kernel(words: str, mode: tuple[str, bool]) -> None:
    opts = parse([f"lowerdir=/a,{words}"])
    assert opts.atime_mode == mode
    assert opts.fuse_options == ()


@pytest.mark.parametrize(
    "item",
    ["defaults", "volatile", "index=off", "redirect_dir=on", "metacopy=off",
     "x-systemd.automount", "comment=hello", "_netdev", "nfs_export=off", "xino=auto",
     "lazytime"],
)  # fmt: skip
def test_parse_accepts_and_ignores_bookkeeping_and_overlay_switches(item: str) -> None:
    assert parse([f"lowerdir=/a,{item}"]) == MountOptions(("/a",))


def test_parse_reads_userxattr() -> None:
    assert parse(["lowerdir=/a,userxattr"]).userxattr
    assert not parse(["lowerdir=/a"]).userxattr


def test_userxattr_implies_redirect_nofollow_and_refuses_what_conflicts() -> None:
    # As the kernel's ovl_fs_params_verify: userxattr turns redirects and metacopy off by
    # default, and an explicit conflicting choice is refused (the kernel: EINVAL).
    opts = parse(["lowerdir=/a,userxattr"])
    assert (opts.redirect_dir, opts.metacopy) == ("nofollow", False)
    assert parse(["lowerdir=/a,userxattr,redirect_dir=nofollow"]).redirect_dir == "nofollow"
    for bad in ("redirect_dir=on", "redirect_dir=follow", "redirect_dir=off", "metacopy=on"):
        with pytest.raises(UserError, match=f"conflicting options: userxattr,{bad}"):
            parse([f"lowerdir=/a,userxattr,{bad}"])
    assert parse(["lowerdir=/a,userxattr,metacopy=off"]).metacopy is False


def test_parse_refuses_an_unknown_option() -> None:
    assert refused("lowerdir=/a,frobnicate") == "unknown option 'frobnicate'"
    assert "bogus=1" in refused("lowerdir=/a,bogus=1")


def test_parse_refuses_a_flag_that_needs_no_value_given_one() -> None:
    assert "unknown option" in refused("lowerdir=/a,allow_other=yes")


@pytest.mark.parametrize("item", ["xattr_permissions=1", "datadir=/d", "datadir+=/d"])
def test_parse_refuses_unsupported_options_clearly(item: str) -> None:
    message = refused(f"lowerdir=/a,{item}")
    key = item.split("=")[0]
    assert message == f"option {key!r} is not supported yet"


def test_parse_refuses_lowerdir_with_an_empty_layer() -> None:
    assert "empty layer" in refused("lowerdir=a::b")


@pytest.mark.parametrize("text", ["lowerdir=", "lowerdir", "lowerdir+="])
def test_parse_refuses_lowerdir_without_a_layer(text: str) -> None:
    assert "malformed lowerdir" in refused(text)


def test_parse_refuses_a_missing_lowerdir() -> None:
    assert "missing lowerdir=" in refused("upperdir=/u,workdir=/w")
    assert "missing lowerdir=" in refused("ro")
    assert "missing lowerdir=" in refused()


def test_parse_refuses_upperdir_without_workdir() -> None:
    assert "workdir" in refused("lowerdir=/a,upperdir=/u")


@pytest.mark.parametrize("text", ["lowerdir=/a,upperdir=,workdir=/w", "lowerdir=/a,workdir="])
def test_parse_refuses_an_empty_upper_or_work(text: str) -> None:
    assert "malformed" in refused(text)


def test_parse_ignores_workdir_without_upperdir() -> None:
    opts = parse(["lowerdir=/a,workdir=/w"])
    assert opts == MountOptions(("/a",))
    assert opts.workdir is None and opts.readonly


def test_parse_overlay_features_with_their_defaults() -> None:
    plain = parse(["lowerdir=/a"])
    assert (plain.redirect_dir, plain.metacopy, plain.index) == ("on", False, False)
    opts = parse(["lowerdir=/a,redirect_dir=nofollow,metacopy=on,index=off"])
    assert (opts.redirect_dir, opts.metacopy, opts.index) == ("nofollow", True, False)
    assert parse(["lowerdir=/a,redirect_dir=off"]).redirect_dir == "off"


def test_parse_refuses_bad_feature_values() -> None:
    assert "redirect_dir='yes'" in refused("lowerdir=/a,redirect_dir=yes")
    assert "metacopy=''" in refused("lowerdir=/a,metacopy=")
    assert parse(["lowerdir=/a,index=on"]).index


def test_sealed_says_the_lowers_are_immutable() -> None:
    assert parse(["lowerdir=/a"]).sealed is False
    assert parse(["lowerdir=/a,sealed"]).sealed is True
