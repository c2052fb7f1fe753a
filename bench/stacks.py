"""Deterministic layer stacks on disk, generated once and cached by their parameters.

Owns the source-tree generator, its spread over K layers with overrides and whiteouts, the
big-file layer, the tarball that ``tar x`` unpacks, and the unionfs-fuse flavour of a stack
(the same files, its own whiteout format; a separate copy, never hard links: a lower file
with st_nlink > 1 is treated differently by unionfs, so links would skew the numbers).
It mounts nothing. A cached stack is a directory ``<cache>/<key>/`` holding ``layers/0`` (the
top lower) .. ``layers/K-1`` (the bottom) and ``meta.json`` (what the merged view must show).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import realstacks

# Bump when the generator changes what it writes: old cache entries are then ignored.
GENERATOR_VERSION = 2

# Unscaled sizes (``--scale 1``): the source tree, create count and big file.
BASE_FILES = 20_000
BASE_DIRS = 1_000
RENAME_FILES = 1_000  # in each of renameme/ and renameme2/ (the rename workload's dirs)
CREATE_FILES = 10_000
LINKS = 8192  # names of one file for link/unlink
BIG_MIB = 1024  # not scaled: the big file is 1 GiB unless --big-mib says otherwise

OVERRIDE_SHARE = 0.10  # files that also have an older, hidden copy in a lower layer
WHITEOUT_SHARE = 0.05  # extra files that a lower layer has and a higher one deletes
DELETED_DIR_SHARE = 0.01  # whole directories deleted the same way
UNIONFS_FUSE_META = ".unionfs-fuse"  # Debian's unionfs-fuse 1.0 (upstream says .unionfs)
HIDDEN_TAG = "_HIDDEN~"

WORDS = (
    "core", "util", "net", "io", "fs", "mm", "sched", "crypto", "driver", "parse", "lex",
    "ast", "codegen", "test", "bench", "proto", "rpc", "http", "json", "cache", "index",
    "store", "log", "trace", "config", "cli", "plugin", "render", "layout", "event",
)  # fmt: skip
EXTENSIONS = (".c", ".h", ".py", ".rs", ".go", ".md", ".txt", ".json", ".toml", ".S")
TOP_DIRS = ("src", "include", "lib", "tests", "docs", "tools", "drivers", "scripts")


@dataclass(frozen=True, slots=True)
class Sizes:
    """The unscaled sizes times ``--scale``, with floors so tiny scales still make sense."""

    files: int
    dirs: int
    rename_files: int
    create_files: int
    links: int
    big_mib: int

    @classmethod
    def at(cls, scale: float, big_mib: int = BIG_MIB) -> Sizes:
        return cls(
            files=max(20, round(BASE_FILES * scale)),
            dirs=max(len(TOP_DIRS), round(BASE_DIRS * scale)),
            rename_files=max(5, round(RENAME_FILES * scale)),
            create_files=max(10, round(CREATE_FILES * scale)),
            links=max(10, round(LINKS * scale)),
            big_mib=big_mib,
        )


@dataclass(frozen=True, slots=True)
class Stack:
    """A generated stack; ``layers`` are listed top first, as in ``lowerdir=``."""

    key: str
    root: Path
    layers: tuple[Path, ...]
    files: int  # regular files the merged view must show
    dirs: int  # directories the merged view must show, the root not counted
    whiteouts: int  # whiteout markers in the layers
    kinds: tuple[tuple[str, int], ...] = ()  # find's %y counts, where not only f and d

    def expected(self) -> dict[str, int]:
        """What ``find -printf %y`` must count in the merged view."""
        if self.kinds:
            return dict(self.kinds)
        return {k: v for k, v in {"f": self.files, "d": self.dirs}.items() if v}

    @property
    def depth(self) -> int:
        return len(self.layers)


# -- the tree: pure data -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _File:
    path: str
    size: int
    offset: int  # where its bytes start in the shared random pool


def _pool(seed: int) -> bytes:
    return random.Random(f"{seed}:pool").randbytes(1 << 20)


def _file_size(rng: random.Random) -> int:
    # Source files: a long-tailed size around 2.5 KB, capped at 256 KB.
    return min(256 * 1024, int(rng.lognormvariate(math.log(2500), 1.1)))


def _new_file(rng: random.Random, path: str) -> _File:
    size = _file_size(rng)
    return _File(path, size, rng.randrange((1 << 20) - size + 1))


def base_tree(sizes: Sizes, seed: int) -> tuple[list[str], list[_File]]:
    """Directories (parents first) and files of the source tree; the same for every K."""
    rng = random.Random(f"{seed}:base")
    dirs = list(TOP_DIRS)
    depth = dict.fromkeys(dirs, 1)
    while len(dirs) < sizes.dirs:
        parent = rng.choice(dirs)
        if depth[parent] >= 6:
            continue
        name = f"{parent}/{rng.choice(WORDS)}{len(dirs)}"
        dirs.append(name)
        depth[name] = depth[parent] + 1
    files = [
        _new_file(rng, f"{rng.choice(dirs)}/{rng.choice(WORDS)}_{i}{rng.choice(EXTENSIONS)}")
        for i in range(sizes.files)
    ]
    for dirname in ("renameme", "renameme2"):
        dirs.append(dirname)
        files += [_new_file(rng, f"{dirname}/f{i:05d}.c") for i in range(sizes.rename_files)]
    return dirs, files


@dataclass(frozen=True, slots=True)
class _Plan:
    """What each layer holds: files (with their bytes) and whiteouts (paths)."""

    files: list[list[_File]]
    whiteouts: list[list[str]]


def spread(dirs: list[str], files: list[_File], depth: int, seed: int) -> _Plan:
    """The tree over *depth* layers whose merged view is exactly the tree.

    Each file lives in one random layer; some also have an older copy further down (an
    override); extra files and directories exist low down and are whited out higher up.
    """
    rng = random.Random(f"{seed}:spread:{depth}")
    plan = _Plan([[] for _ in range(depth)], [[] for _ in range(depth)])
    for f in files:
        home = rng.randrange(depth)
        plan.files[home].append(f)
        if home < depth - 1 and rng.random() < OVERRIDE_SHARE:
            plan.files[rng.randint(home + 1, depth - 1)].append(_new_file(rng, f.path))
    if depth == 1:
        return plan
    for i in range(round(len(files) * WHITEOUT_SHARE)):
        path = f"{rng.choice(dirs)}/deleted_{i}.c"
        low = rng.randint(1, depth - 1)
        plan.files[low].append(_new_file(rng, path))
        plan.whiteouts[rng.randrange(low)].append(path)
    for i in range(max(1, round(len(dirs) * DELETED_DIR_SHARE))):
        path = f"{rng.choice(dirs)}/gone{i}"
        low = rng.randint(1, depth - 1)
        plan.files[low] += [_new_file(rng, f"{path}/old{j}.c") for j in range(5)]
        plan.whiteouts[rng.randrange(low)].append(path)
    return plan


# -- writing and caching -------------------------------------------------------------------


def _write_layer(
    root: Path, files: list[_File], whiteouts: list[str], pool: bytes, flavor: str
) -> None:
    made: set[Path] = set()

    def parent_of(path: Path) -> None:
        if path.parent not in made:
            os.makedirs(path.parent, exist_ok=True)
            made.add(path.parent)

    root.mkdir(parents=True)
    for f in files:
        parent_of(root / f.path)
        with open(root / f.path, "wb") as out:
            out.write(pool[f.offset : f.offset + f.size])
    for path in whiteouts:
        if flavor == "unionfs-fuse":
            # unionfs-fuse hides PATH in the layers below this one when this layer has
            # .unionfs-fuse/PATH_HIDDEN~ (findbranch.c); Debian renames upstream's .unionfs.
            marker = root / UNIONFS_FUSE_META / (path + HIDDEN_TAG)
            parent_of(marker)
            marker.touch()
            parent_of(root / path)  # the directory exists in this layer all the same
        else:
            # The kernel's whiteout: a character device 0/0 (fuse-overlayfs and unionfs
            # read it too).
            parent_of(root / path)
            os.mknod(root / path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


class StackCache:
    """Builds stacks on first use under *cache_dir*; later runs find them there."""

    def __init__(self, cache_dir: Path, scale: float, seed: int, big_mib: int = BIG_MIB) -> None:
        self.dir = cache_dir
        self.scale = scale
        self.seed = seed
        self.sizes = Sizes.at(scale, big_mib)
        self._made: dict[str, Stack] = {}

    def _key(self, kind: str) -> str:
        return f"{kind}-x{self.scale:g}-seed{self.seed}-v{GENERATOR_VERSION}"

    def source(self, depth: int, flavor: str = "overlay") -> Stack:
        """The source tree over *depth* layers; *flavor* is how its whiteouts are written."""
        if flavor == "unionfs-fuse" and depth > 1:  # one layer has no whiteouts
            return self._get(
                f"source{depth}-ufuse", lambda tmp: self._build_source(tmp, depth, flavor)
            )
        return self._get(f"source{depth}", lambda tmp: self._build_source(tmp, depth, "overlay"))

    def big(self) -> Stack:
        """One layer holding ``big.bin`` (1 GiB by default): a random 1 MiB block repeated."""
        key = f"big{self.sizes.big_mib}m-seed{self.seed}-v{GENERATOR_VERSION}"
        return self._get("big", self._build_big, key)

    def real(self, name: str) -> Stack:
        """A stack of the real workloads (``bench.realstacks``): built once, scale-free."""

        def layers_of(below: str) -> list[Path]:
            return list(self.real(below).layers)

        return self._get(name, lambda tmp: realstacks.build(name, tmp, self.dir, layers_of),
                         f"real-{name}-v{realstacks.VERSION}")  # fmt: skip

    def source_dir(self) -> Path:
        """A plain directory holding the source tree (what ``cp -a`` copies in)."""
        return self.source(1).layers[0]

    def tarball(self) -> Path:
        """A tar of the source tree (what ``tar x`` unpacks into the mount)."""
        path = self.dir / f"{self._key('source')}.tar"
        if not path.exists():
            layer = self.source(1).layers[0]
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            subprocess.run(["tar", "-C", str(layer), "-cf", str(tmp), "."], check=True)
            tmp.rename(path)
        return path

    def _get(self, kind: str, build: Callable[[Path], dict[str, object]],
             key: str | None = None) -> Stack:  # fmt: skip
        key = key or self._key(kind)
        if key in self._made:
            return self._made[key]
        root = self.dir / key
        if not (root / "meta.json").exists():
            tmp = self.dir / f"{key}.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            meta = build(tmp)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
        meta = json.loads((root / "meta.json").read_text())
        if "layer_paths" in meta:  # layers shared with other stacks, relative to the cache
            layers = tuple(self.dir / p for p in meta["layer_paths"])
        else:
            layers = tuple(root / "layers" / str(i) for i in range(meta["depth"]))
        kinds = tuple(sorted(meta.get("kinds", {}).items()))
        stack = Stack(key, root, layers, meta["files"], meta["dirs"], meta["whiteouts"], kinds)
        self._made[key] = stack
        return stack

    def _build_source(self, tmp: Path, depth: int, flavor: str) -> dict[str, object]:
        dirs, files = base_tree(self.sizes, self.seed)
        plan = spread(dirs, files, depth, self.seed)
        pool = _pool(self.seed)
        for i in range(depth):
            _write_layer(tmp / "layers" / str(i), plan.files[i], plan.whiteouts[i], pool, flavor)
        whiteouts = sum(len(w) for w in plan.whiteouts)
        return {"depth": depth, "files": len(files), "dirs": len(dirs), "whiteouts": whiteouts}

    def _build_big(self, tmp: Path) -> dict[str, object]:
        layer = tmp / "layers" / "0"
        layer.mkdir(parents=True)
        block = random.Random(f"{self.seed}:big").randbytes(1 << 20)
        with open(layer / "big.bin", "wb") as out:
            for _ in range(self.sizes.big_mib):
                out.write(block)
        return {"depth": 1, "files": 1, "dirs": 0, "whiteouts": 0}


def fingerprint(stack: Stack) -> tuple[int, int, int]:
    """(entries, bytes, latest ctime) over all layers: changes if anything wrote to them."""
    entries = size = latest = 0
    for layer in stack.layers:
        for dirpath, dirnames, filenames in os.walk(layer):
            for name in dirnames + filenames:
                st = os.lstat(os.path.join(dirpath, name))
                entries += 1
                size += st.st_size
                latest = max(latest, st.st_ctime_ns)
    return entries, size, latest


def forget(stack: Stack) -> None:
    """Make the next run regenerate *stack* (its layers were changed by a system)."""
    (stack.root / "meta.json").unlink(missing_ok=True)
