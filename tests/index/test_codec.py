"""Keys and values of the index (``unionfs.index.codec``): pure, so tested on data alone.

The key property: the children of one directory are exactly the keys that start with its
``children_prefix``, and they sit next to each other in key order (one cursor scan), for
any paths a layer can hold, including parents longer than the key limit allows and names
made of odd bytes.
"""

from __future__ import annotations

import stat

from hypothesis import example, given, settings
from hypothesis import strategies as st

from unionfs.index import codec
from unionfs.union.stack import Attrs

from .indexutil import HASHED_NAME, LONG_CLEAN, LONG_NUL, hashed_name

TABLE = 7
MAX_KEY = 511  # LMDB's default key limit

# A name: 1-255 bytes, no "/" and no NUL, not "." or "..".
_odd = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"0"))
_long = st.integers(min_value=60, max_value=255).map(lambda n: b"L" * n)
_plain = st.sampled_from([b"a", b"b", b"ab", b"a b", b"\xff", b"\xff\xfe", b"\x01", b"\xff\xff"])
names = st.one_of(_plain, _odd, _long).filter(lambda n: n not in (b".", b".."))
relpaths = st.lists(names, min_size=1, max_size=5).map(b"/".join)


def _with_parents(paths: list[bytes]) -> set[bytes]:
    """*paths* and every directory above them (b"" is the root)."""
    everything = {b""}
    for path in paths:
        parts = path.split(b"/")
        for i in range(1, len(parts) + 1):
            everything.add(b"/".join(parts[:i]))
    return everything


def _check_ranges(entries: set[bytes]) -> None:
    keys = sorted((codec.entry_key(TABLE, p), p) for p in entries)
    # Neighbours from other tables must not interleave either.
    keys += [(codec.entry_key(TABLE - 1, p), None) for p in entries]
    keys += [(codec.entry_key(TABLE + 1, p), None) for p in entries]
    keys.sort()
    assert len({k for k, _ in keys}) == len(keys), "two paths share one key"
    assert all(len(k) <= MAX_KEY for k, _ in keys)
    directories = {p.rpartition(b"/")[0] for p in entries if p}
    for directory in directories:
        prefix = codec.children_prefix(TABLE, directory)
        children = {p for p in entries if p and p.rpartition(b"/")[0] == directory}
        positions = [i for i, (k, _) in enumerate(keys) if k.startswith(prefix)]
        found = {keys[i][1] for i in positions}
        assert found == children, f"the range of {directory!r} holds {found ^ children!r}"
        assert positions == list(range(positions[0], positions[0] + len(positions)))
        for i in positions:
            key, path = keys[i]
            assert path is not None
            assert key[len(prefix) :] == path.rpartition(b"/")[2], "the name follows the prefix"


@settings(max_examples=300, deadline=None)
@given(st.lists(relpaths, min_size=1, max_size=12))
@example([b"a/b", b"\xff\xfe/x", b"d" * 200 + b"/n", b"d" * 201 + b"/n"])
def test_children_of_one_directory_are_one_contiguous_key_range(paths: list[bytes]) -> None:
    _check_ranges(_with_parents(paths))


@settings(max_examples=100, deadline=None)
@given(st.lists(relpaths, min_size=1, max_size=4))
def test_a_directory_named_like_a_hashed_long_parent_keeps_its_own_range(
    paths: list[bytes],
) -> None:
    """Names of odd bytes can spell what the codec writes in place of a long parent."""
    entries = _with_parents(paths)
    for parent in [p for p in entries if len(p) > 200]:
        echo = hashed_name(parent)
        if b"/" not in echo and b"\0" not in echo:
            entries |= {echo, echo + b"/mine"}
    _check_ranges(entries)


def test_a_short_directory_does_not_list_the_children_of_a_long_one() -> None:
    # sha256(LONG_NUL) starts with a NUL byte: its children's keys begin with the children
    # prefix of the directory b"\xff\xfe".
    _check_ranges(_with_parents([LONG_NUL + b"/child", b"\xff\xfe/own"]))


def test_a_directory_named_like_a_hashed_parent_does_not_share_its_children() -> None:
    _check_ranges(_with_parents([LONG_CLEAN + b"/child", HASHED_NAME + b"/own"]))


def test_parents_up_to_200_bytes_are_kept_and_longer_ones_are_hashed() -> None:
    exact = b"d" * 200
    assert codec.entry_key(TABLE, exact + b"/n") == codec.ID.pack(TABLE) + exact + b"\0n"
    longer = b"d" * 201
    assert codec.children_prefix(TABLE, longer) == codec.children_prefix(TABLE, longer)
    assert longer not in codec.children_prefix(TABLE, longer)
    assert codec.entry_key(TABLE, b"") == codec.ID.pack(TABLE)
    assert len(codec.entry_key(TABLE, b"x" * 4000 + b"/" + b"n" * 255)) <= MAX_KEY


# -- values --------------------------------------------------------------------------------

u16 = st.integers(0, 2**16 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
attrs = st.builds(Attrs, u32, u64, u64, u32, u32, u32, u64, u64, u32, u64, i64, i64, i64)
targets = st.one_of(st.just(b""), st.binary(min_size=1, max_size=4095))
xattr_lists = st.lists(
    st.tuples(st.binary(min_size=1, max_size=255), st.binary(max_size=70_000)), max_size=6
).map(tuple)
base_flags = st.sets(st.sampled_from([codec.WHITEOUT, codec.OPAQUE, codec.MERGED])).map(sum)


@settings(max_examples=200, deadline=None)
@given(u16, base_flags, attrs, targets, xattr_lists)
def test_a_record_survives_encode_and_decode(
    layer: int, flags: int, a: Attrs, target: bytes, xattrs: tuple[tuple[bytes, bytes], ...]
) -> None:
    flags |= (codec.LINK if target else 0) | (codec.XATTRS if xattrs else 0)
    record = codec.Record(layer, flags, a, target, xattrs)
    assert codec.decode(codec.encode(record)) == record


@given(base_flags, targets, xattr_lists)
def test_link_and_xattr_flags_follow_what_the_record_carries(
    flags: int, target: bytes, xattrs: tuple[tuple[bytes, bytes], ...]
) -> None:
    """encode sets LINK and XATTRS from the data, whatever the flags said."""
    a = Attrs(stat.S_IFLNK | 0o777, 1, 2, 1, 0, 0, len(target), 0, 4096, 0, 1, 2, 3)
    wrong = flags | codec.LINK | codec.XATTRS
    got = codec.decode(codec.encode(codec.Record(3, wrong, a, target, xattrs)))
    assert got.flags & ~(codec.LINK | codec.XATTRS) == flags
    assert bool(got.flags & codec.LINK) == bool(target)
    assert bool(got.flags & codec.XATTRS) == bool(xattrs)
    assert (got.layer, got.attrs, got.target, got.xattrs) == (3, a, target, xattrs)


def test_a_symlink_with_xattrs_round_trips_byte_for_byte() -> None:
    a = Attrs(stat.S_IFLNK | 0o777, 12, 34, 1, 1000, 1000, 9, 0, 4096, 0, -5, 10**18, 2**62)
    xattrs = ((b"trusted.overlay.opaque", b"y"), (b"user.empty", b""), (b"user.bin", b"\0\xff"))
    record = codec.Record(2, codec.LINK | codec.XATTRS, a, b"../t\xffarget", xattrs)
    assert codec.decode(codec.encode(record)) == record
    assert codec.decode(memoryview(codec.encode(record)).tobytes()) == record


def test_a_whiteout_looks_like_the_kernels_character_device() -> None:
    plain = codec.whiteout_attrs()
    assert stat.S_ISCHR(plain.st_mode) and plain.st_rdev == 0
    like = Attrs(stat.S_IFREG | 0o644, 5, 6, 1, 7, 8, 0, 0, 4096, 0, 1, 2, 3)
    shaped = codec.whiteout_attrs(like)
    assert stat.S_ISCHR(shaped.st_mode) and shaped.st_rdev == 0 and shaped.st_ino == 5
