"""safepath: layer paths are walked fd-relative, never through a symlink, never out of a layer."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as strategies
from layers import LayerFactory, Spec, Symlink, build

from unionfs.safepath import DirFdCache, LayerDir, join, noatime_clone, split
from unionfs.union.lookup import lookup, resolve_path
from unionfs.union.stack import Stack


@pytest.fixture
def cache() -> Iterator[DirFdCache]:
    c = DirFdCache()
    yield c
    c.close()


OpenLayer = Callable[[Spec], LayerDir]


@pytest.fixture
def open_layer(tmp_path: Path, cache: DirFdCache) -> Iterator[OpenLayer]:
    """``open_layer(spec)``: a LayerDir over a new directory built from *spec*."""
    opened: list[LayerDir] = []

    def open_(spec: Spec) -> LayerDir:
        layer = LayerDir(str(build(tmp_path / f"l{len(opened)}", spec)), cache)
        opened.append(layer)
        return layer

    yield open_
    for layer in opened:
        layer.close()


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        assert exc.errno == errno.EBADF
        return False
    return True


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_split_and_join_are_inverse() -> None:
    assert split(b"a/b/c") == (b"a/b", b"c")
    assert split(b"c") == (b"", b"c")
    assert join(b"", b"c") == b"c"
    assert join(*split(b"a/b/c")) == b"a/b/c"


# -- symlinks in a layer are shown, never followed -----------------------------------------
def test_symlinked_directory_is_not_followed_by_resolve_path(layers: LayerFactory) -> None:
    stack = layers.stack({"d": Symlink("/etc")})
    assert resolve_path(stack, b"d/passwd") is None
    d = resolve_path(stack, b"d")
    assert d is not None and stat.S_ISLNK(d.st.st_mode)


def test_layer_lstat_does_not_follow_a_symlinked_directory(open_layer: OpenLayer) -> None:
    layer = open_layer({"d": Symlink("/etc"), "x/d": Symlink("/etc")})
    assert layer.lstat(b"d/passwd") is None
    assert layer.lstat(b"x/d/passwd") is None
    st = layer.lstat(b"d")
    assert st is not None and stat.S_ISLNK(st.st_mode)
    assert layer.readlink(b"d") == b"/etc"


@pytest.mark.parametrize("path", [b"d/passwd", b"x/d/passwd", b"d", b"in"])
def test_layer_open_through_or_of_a_symlink_is_eloop(open_layer: OpenLayer, path: bytes) -> None:
    spec = {"d": Symlink("/etc"), "x/d": Symlink("/etc"), "in": Symlink("real"), "real": ""}
    layer = open_layer(spec)
    with pytest.raises(OSError) as info:
        os.close(layer.open(path, os.O_RDONLY))
    assert info.value.errno == errno.ELOOP


def test_symlink_to_a_directory_inside_the_layer_is_not_followed_either(
    open_layer: OpenLayer,
) -> None:
    layer = open_layer({"real/": {"f": ""}, "link": Symlink("real")})
    assert layer.lstat(b"real/f") is not None
    assert layer.lstat(b"link/f") is None
    with pytest.raises(OSError) as info:
        list(layer.scandir(b"link"))
    assert info.value.errno == errno.ELOOP


def test_absolute_path_never_reaches_outside_the_layer(open_layer: OpenLayer) -> None:
    layer = open_layer({})
    try:
        found = layer.lstat(b"/etc/passwd")
    except OSError:
        found = None
    assert found is None
    with pytest.raises(OSError):
        os.close(layer.open(b"/etc/passwd", os.O_RDONLY))


def test_dot_dot_never_reaches_outside_the_layer(open_layer: OpenLayer) -> None:
    layer = open_layer({"d/": {}})
    with pytest.raises(OSError):
        os.close(layer.open(b"..", os.O_RDONLY))
    assert layer.lstat(b"..") is None
    assert layer.lstat(b"d/../..") is None


def test_lookup_of_a_symlink_shows_the_link_itself(layers: LayerFactory) -> None:
    stack = layers.stack({"s": Symlink("/etc/passwd")}, {"s": "lower"})
    res = lookup(stack, stack.root(), b"s")
    assert res is not None and res.layers == (0,)
    assert stat.S_ISLNK(res.st.st_mode)


# -- DirFdCache ----------------------------------------------------------------------------
def fresh_fd() -> int:
    return os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def test_cache_evicts_the_least_recently_used_and_closes_it() -> None:
    cache = DirFdCache(capacity=2)
    fds = [fresh_fd() for _ in range(3)]
    cache.put((0, b"a"), fds[0])
    cache.put((0, b"b"), fds[1])
    cache.put((0, b"c"), fds[2])
    assert cache.get((0, b"a")) is None
    assert not is_open(fds[0])
    assert cache.get((0, b"b")) == fds[1]
    assert cache.get((0, b"c")) == fds[2]
    cache.close()


def test_cache_get_makes_an_entry_recent() -> None:
    cache = DirFdCache(capacity=2)
    a, b, c = fresh_fd(), fresh_fd(), fresh_fd()
    cache.put((0, b"a"), a)
    cache.put((0, b"b"), b)
    assert cache.get((0, b"a")) == a
    cache.put((0, b"c"), c)
    assert cache.get((0, b"b")) is None and not is_open(b)
    assert cache.get((0, b"a")) == a and is_open(a)
    cache.close()


def test_cache_put_of_a_known_key_closes_the_old_descriptor() -> None:
    cache = DirFdCache()
    old, new = fresh_fd(), fresh_fd()
    cache.put((0, b"a"), old)
    cache.put((0, b"a"), new)
    assert not is_open(old)
    assert cache.get((0, b"a")) == new
    cache.close()
    assert not is_open(new)


def test_cache_forget_drops_a_path_and_everything_below_it_in_one_layer() -> None:
    cache = DirFdCache()
    keys = [(0, b"a"), (0, b"a/b"), (0, b"a/b/c"), (0, b"ab"), (0, b"b/a"), (1, b"a")]
    fds = {key: fresh_fd() for key in keys}
    for key, fd in fds.items():
        cache.put(key, fd)
    cache.forget(0, b"a")
    kept = {(0, b"ab"), (0, b"b/a"), (1, b"a")}
    for key, fd in fds.items():
        assert (cache.get(key) == fd) == (key in kept), key
        assert is_open(fd) == (key in kept), key
    cache.close()


def test_cache_forget_of_the_root_drops_every_path_of_the_layer() -> None:
    cache = DirFdCache()
    fds = {key: fresh_fd() for key in [(0, b"a"), (0, b"a/b"), (1, b"a")]}
    for key, fd in fds.items():
        cache.put(key, fd)
    cache.forget(0, b"")
    assert cache.get((0, b"a")) is None
    assert cache.get((0, b"a/b")) is None
    assert cache.get((1, b"a")) == fds[(1, b"a")]
    cache.close()


def test_layer_caches_directory_descriptors(open_layer: OpenLayer, cache: DirFdCache) -> None:
    layer = open_layer({"d/e/": {"f": ""}})
    assert layer.lstat(b"d/e/f") is not None
    fd = layer.dir_fd(b"d/e")
    assert cache.get((layer.layer_id, b"d/e")) == fd
    assert layer.dir_fd(b"d/e") == fd
    assert layer.dir_fd(b"") == layer.root_fd


def test_closing_a_layer_drops_its_cached_descriptors(tmp_path: Path, cache: DirFdCache) -> None:
    layer = LayerDir(str(build(tmp_path / "l", {"d/e/": {}})), cache)
    fd = layer.dir_fd(b"d/e")
    layer.close()
    assert cache.get((layer.layer_id, b"d/e")) is None
    assert not is_open(fd)


def test_layer_forget_after_a_rename_stops_using_the_old_directory(open_layer: OpenLayer) -> None:
    layer = open_layer({"d/": {"f": ""}})
    root = Path(layer.root)
    assert layer.lstat(b"d/f") is not None
    os.rename(root / "d", root / "moved")
    os.mkdir(root / "d")
    layer.forget(b"d")
    assert layer.lstat(b"d/f") is None
    assert layer.lstat(b"moved/f") is not None


def test_stacks_sharing_one_cache_do_not_see_each_others_directories(
    tmp_path: Path, cache: DirFdCache
) -> None:
    one = build(tmp_path / "one", {"d/": {"only_in_one": ""}})
    two = build(tmp_path / "two", {"d/": {"only_in_two": ""}})
    first = Stack.from_dirs([str(one)], cache=cache)
    second = Stack.from_dirs([str(two)], cache=cache)
    try:
        assert resolve_path(first, b"d/only_in_one") is not None
        assert resolve_path(second, b"d/only_in_two") is not None
        assert resolve_path(second, b"d/only_in_one") is None
    finally:
        first.close()
        second.close()


def test_closing_a_stack_closes_every_descriptor_it_opened(tmp_path: Path) -> None:
    lower = build(tmp_path / "lower", {"d/e/": {"f": ""}, "g/": {"h": ""}})
    before = open_fds()
    stack = Stack.from_dirs([str(lower)])
    assert resolve_path(stack, b"d/e/f") is not None
    assert resolve_path(stack, b"g/h") is not None
    stack.close()
    assert open_fds() == before


# -- a lower layer is read without moving its atimes (issue 16.4) ---------------------------
LONG_AGO_NS = 1_600_000_000 * 10**9


def aged(root: Path, names: list[str]) -> dict[str, int]:
    """Set every named entry's atime and mtime long ago (relatime then moves the atime at
    the next read that is not spared); their atimes."""
    for name in names:
        os.utime(root / name, ns=(LONG_AGO_NS, LONG_AGO_NS), follow_symlinks=False)
    return {name: os.lstat(root / name).st_atime_ns for name in names}


def read_all(layer: LayerDir) -> None:
    """File data, a listing and a link target, as a mount and its index read them."""
    fd = layer.open(b"d/f", os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b"data"
    finally:
        os.close(fd)
    assert sorted(name for name, _ in layer.scandir(b"d")) == [b"f", b"s"]
    assert layer.readlink(b"d/s") == b"f"


@pytest.mark.parametrize("lower", [True, False])
def test_a_lower_layer_is_read_without_moving_atimes(
    tmp_path: Path, cache: DirFdCache, lower: bool
) -> None:
    """As root the layer is read through a noatime clone of its mount (readlink too); an
    ordinary layer (an upper) keeps today's atimes, so this test can tell them apart."""
    root = build(tmp_path / "l", {"d/": {"f": "data", "s": Symlink("f")}})
    names = ["d", "d/f", "d/s"]
    before = aged(root, names)
    layer = LayerDir(str(root), cache, lower=lower)
    try:
        read_all(layer)
    finally:
        layer.close()
    after = {name: os.lstat(root / name).st_atime_ns for name in names}
    if lower:
        assert after == before
    else:
        assert all(after[name] != before[name] for name in names)


def test_without_the_clone_lower_reads_use_o_noatime_and_fall_back_without_it(
    tmp_path: Path,
) -> None:
    """An ordinary user may not clone a mount: its reads carry O_NOATIME on what it owns
    (atime unchanged), and read what it does not own anyway (the kernel's EPERM for
    O_NOATIME without ownership is not a failure to read). Only a symlink's target moves
    an atime then: no flag spares readlink."""
    user = 65534
    root = build(tmp_path / "l", {"d/": {"f": "data", "s": Symlink("f")}, "other": "root's"})
    os.chmod(root, 0o755)
    for name in ["d", "d/f", "d/s"]:
        os.lchown(root / name, user, user)
    names = ["d", "d/f", "other"]
    before = aged(root, [*names, "d/s"])
    held = os.open(root, os.O_PATH | os.O_DIRECTORY)  # the child cannot walk tmp_path
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        status = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(user, user, user)
            os.setresuid(user, user, user)
            child_cache = DirFdCache()
            layer = LayerDir(f"/proc/self/fd/{held}", child_cache, lower=True)
            read_all(layer)
            fd = layer.open(b"other", os.O_RDONLY)
            assert os.read(fd, 100) == b"root's"
            os.close(fd)
            clone = noatime_clone(layer.root_fd)
            os.write(write_end, b"no clone" if clone is None else b"cloned")
            status = 0
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
        finally:
            os._exit(status)
    os.close(write_end)
    os.close(held)
    with os.fdopen(read_end, "rb") as f:
        said = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and said == b"no clone", said
    after = {name: os.lstat(root / name).st_atime_ns for name in [*names, "d/s"]}
    assert {n: after[n] for n in ["d", "d/f"]} == {n: before[n] for n in ["d", "d/f"]}
    assert after["other"] != before["other"], "read without O_NOATIME: relatime moves it"
    assert after["d/s"] != before["d/s"], "readlink moves a symlink's atime"


@settings(max_examples=60, deadline=None)
@given(
    strategies.lists(
        strategies.tuples(
            strategies.sampled_from(["put", "get", "forget"]),
            strategies.sampled_from([0, 1]),
            strategies.sampled_from([b"", b"a", b"a/b", b"a/b/c", b"ab", b"ab/c", b"b", b"b/a/c"]),
        ),
        max_size=40,
    )
)
def test_cache_forget_matches_a_scan_of_every_key_through_puts_and_evictions(
    ops: list[tuple[str, int, bytes]],
) -> None:
    """The per-directory index of what is cached below it stays what a scan would find,
    through LRU evictions (capacity 3) and re-puts."""
    cache = DirFdCache(3)
    model: dict[tuple[int, bytes], int] = {}  # what the cache holds, LRU first
    try:
        for op, layer, path in ops:
            key = (layer, path)
            if op == "put" and path:
                fd = fresh_fd()
                cache.put(key, fd)
                model.pop(key, None)
                model[key] = fd
                while len(model) > 3:
                    model.pop(next(iter(model)))
            elif op == "get":
                assert cache.get(key) == model.get(key)
                if key in model:
                    model[key] = model.pop(key)
            elif op == "forget":
                cache.forget(layer, path)
                prefix = path + b"/" if path else b""
                below = [k for k in model if k[0] == layer and (k[1] + b"/").startswith(prefix)]
                for k in below:
                    assert not is_open(model.pop(k))
            assert cache.size == len(model)
            assert all(cache.get(k) == fd and is_open(fd) for k, fd in list(model.items()))
    finally:
        cache.close()
