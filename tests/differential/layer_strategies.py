"""Hypothesis strategies for random layer stacks, as ``mountutil`` data (never on disk here).

Names are drawn from a small per-example pool so that layers overlap, which is where the
overlay rules matter. Every marker carries the form unionfs is given (device or ``.wh.``
whiteout; trusted, user or ``.wh..wh..opq`` opaque); the kernel copy always uses its own.
"""

from __future__ import annotations

from hypothesis import strategies as st
from mountutil import NAME_MAX, Device, Dir, Fifo, File, Node, Symlink, Whiteout

ODD_NAMES = [
    b"a",
    b"b",
    b"sub",
    b"with space",
    b" ",
    b"-rf",
    b"--",
    b"-",
    b"line\nbreak",
    b"tab\there",
    b"\xff\xfe",  # not UTF-8
    b"caf\xc3\xa9",
    b"...",
    b".hidden",
    b".wh",  # close to the marker prefix, but an ordinary name
    b"x.wh.y",
    b"wh.",
    b"*?[",
    b"\\",
    b":colon",
    b"L" * NAME_MAX,
    b"M" * (NAME_MAX - 3),  # .wh.NAME would be 256 bytes: only the device form fits
    b"N" * (NAME_MAX - 4),  # .wh.NAME is exactly 255 bytes
]


def valid_name(name: bytes) -> bool:
    return (
        0 < len(name) <= NAME_MAX
        and b"/" not in name
        and b"\0" not in name
        and name not in (b".", b"..")
        and not name.startswith(b".wh.")
    )


def make_valid(name: bytes) -> bytes:
    name = name.replace(b"/", b"_").replace(b"\0", b"_")
    return name if valid_name(name) else b"_" + name


names = st.one_of(
    st.sampled_from(ODD_NAMES),
    st.binary(min_size=1, max_size=12).map(make_valid),
    st.integers(200, NAME_MAX).map(lambda n: b"n" * n),
)

ids = st.sampled_from([0, 0, 0, 1000, 65534])
file_modes = st.one_of(st.sampled_from([0o644, 0o600, 0o755, 0o444, 0o000]), st.integers(0, 0o7777))
dir_modes = st.one_of(st.sampled_from([0o755, 0o700, 0o555, 0o1777]), st.integers(0, 0o7777))
xattr_maps = st.dictionaries(
    st.sampled_from(["user.a", "user.b", "user.with space", "user." + "k" * 200, "trusted.t"]),
    st.binary(max_size=40),
    max_size=2,
)


class Repeated(bytes):
    """``pattern * count``, shown as such (a failing example stays readable)."""

    def __new__(cls, pattern: bytes, count: int) -> Repeated:
        self = super().__new__(cls, pattern * count)
        self.shown = f"{pattern!r} * {count}"
        return self

    def __repr__(self) -> str:
        return self.shown


contents = st.one_of(
    st.binary(max_size=80),
    # big files: a short pattern repeated, so hypothesis need not draw every byte
    st.builds(Repeated, st.binary(min_size=1, max_size=7), st.integers(1, 60000)),
)
link_targets = st.one_of(
    st.sampled_from(
        [
            b"../../etc/passwd",
            b"/etc",
            b"/etc/passwd",
            b"/",
            b"..",
            b".",
            b"a",
            b"sub/a",
            b"../a",
            b"dangling",
            b"self",
            b"x" * 1000,
        ]
    ),
    st.binary(min_size=1, max_size=30).map(lambda t: t.replace(b"\0", b"_")),
)


def files(link_groups: bool = True) -> st.SearchStrategy[File]:
    return st.builds(
        File,
        content=contents,
        mode=file_modes,
        uid=ids,
        gid=ids,
        xattrs=xattr_maps,
        link=st.one_of(st.none(), st.none(), st.sampled_from([1, 2])) if link_groups else st.none(),
    )


whiteouts = st.builds(Whiteout, form=st.sampled_from(["chr", "wh"]))
leaves: st.SearchStrategy[Node] = st.one_of(
    files(),
    files(),
    whiteouts,
    whiteouts,
    st.builds(Symlink, target=link_targets, uid=ids, gid=ids),
    st.one_of(
        st.builds(Fifo, mode=file_modes, uid=ids, gid=ids),
        st.builds(
            Device,
            char=st.booleans(),
            major=st.integers(1, 255),
            minor=st.integers(0, 255),
            mode=file_modes,
        ),
    ),
)

opaque_forms = st.sampled_from([None, None, None, None, None, "trusted", "user", "wh"])


@st.composite
def dirs(draw: st.DrawFn, pool: list[bytes], depth: int, root: bool = False) -> Dir:
    keys = draw(st.lists(st.sampled_from(pool), unique=True, min_size=int(root), max_size=5))
    children: dict[bytes, Node] = {}
    for key in keys:
        if depth > 1 and draw(st.booleans()):
            children[key] = draw(dirs(pool, depth - 1))
        else:
            children[key] = draw(leaves)
    # the root of a layer is never opaque: the kernel ignores the marker there
    opaque = None if root else draw(opaque_forms)
    value = b"y"
    if opaque in ("trusted", "user"):
        value = draw(st.sampled_from([b"y", b"y", b"y", b"n", b"yes", b"", b"Y"]))
    return Dir(
        children,
        mode=draw(dir_modes),
        uid=draw(ids),
        gid=draw(ids),
        xattrs=draw(xattr_maps),
        opaque=opaque,
        opaque_value=value,
    )


@st.composite
def stacks(draw: st.DrawFn, max_layers: int = 4, max_depth: int = 3) -> list[Dir]:
    """1..max_layers layers, top first, over one shared pool of names."""
    # a small pool: the same paths recur in several layers, where the overlay rules act
    pool = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    count = draw(st.sampled_from([n for n in (1, 2, 3, 4, 2, 3, 4) if n <= max_layers]))
    return [draw(dirs(pool, max_depth, root=True)) for _ in range(count)]


@st.composite
def covering(draw: st.DrawFn, below: Dir, pool: list[bytes], depth: int, root: bool) -> Dir:
    """A directory laid over *below*: most of its names again, as whiteouts, non-directories
    or directories (opaque or merging, recursively); and a few new names."""
    fresh = draw(dirs(pool, depth, root=root))
    children = dict(fresh.children)
    for name, node in below.children.items():
        choice = draw(st.integers(0, 5))
        if choice == 0:
            children.pop(name, None)  # leave it to show through
        elif choice == 1:
            children[name] = draw(whiteouts)
        elif choice == 2:
            children[name] = draw(leaves)
        elif isinstance(node, Dir) and depth > 1:
            children[name] = draw(covering(node, pool, depth - 1, root=False))
    return Dir(
        children,
        mode=fresh.mode,
        uid=fresh.uid,
        gid=fresh.gid,
        xattrs=fresh.xattrs,
        opaque=fresh.opaque,
        opaque_value=fresh.opaque_value,
    )


@st.composite
def hiding_stacks(draw: st.DrawFn, max_layers: int = 4, max_depth: int = 3) -> list[Dir]:
    """Like ``stacks``, but each layer is laid over the one below it, so the upper layers
    hide, replace and merge with what is below far more often."""
    pool = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    count = draw(st.integers(2, max_layers))
    layers = [draw(dirs(pool, max_depth, root=True))]
    for _ in range(count - 1):
        layers.insert(0, draw(covering(layers[0], pool, max_depth, root=True)))
    return layers


def layer_paths(layer: Dir, prefix: bytes = b"", whiteouts: bool = True) -> list[bytes]:
    """Every path in *layer*; whiteouts (as the names they hide) unless told otherwise."""
    out = []
    for name, node in layer.children.items():
        path = prefix + b"/" + name if prefix else name
        if whiteouts or not isinstance(node, Whiteout):
            out.append(path)
        if isinstance(node, Dir):
            out.extend(layer_paths(node, path, whiteouts))
    return out


def probe_paths(layers: list[Dir]) -> list[bytes]:
    """Paths worth an lstat: all layer paths, and missing names next to and below them."""
    seen = {p for layer in layers for p in layer_paths(layer)}
    out = {b"", b"missing", b"missing/below"}
    for path in seen:
        out.update((path, path + b"/missing", path + b"/", path + b"/."))
    return sorted(out)
