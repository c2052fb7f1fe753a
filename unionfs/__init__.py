"""unionfs: a union / copy-on-write filesystem in userspace, with overlayfs semantics.

Layering: a part of unionfs imports only the parts its row in ``LAYERS`` names, and a
library only where ``LIBRARIES`` allows it; tests/test_layering.py reads both tables and
checks every import (deferred and ``TYPE_CHECKING`` ones too), and that no modules import
each other in a circle. From the top: ``zygote`` (with ``__main__``, the first step of
the console script and of ``python -m unionfs``: it hands a mount to a resident
pre-imported process unless UNIONFS_ZYGOTE=0, else starts the CLI) runs ``cli``
(one module per command; only ``zygote`` imports it), which drives ``containers``
(containers on the store, and an ordinary user's store), which sits above ``store``
(layers and images: it knows no processes), ``runtime`` (namespaces, cgroups, container
state dirs; it mounts by running ``unionfs mount``, so it never imports ``fuse``) and
``registry`` (the OCI distribution client; the CLI hands it the store through protocols)
and ``lazy`` (lazily pulled layers: fetched through ``registry``, kept in ``store``,
served to ``fuse`` through its ``lazyhook`` protocol). ``fuse``, the protocol edge, is
the only part that imports pyfuse3 or trio, and the only one that raises ``FUSEError``.
``index`` is the LMDB cache of what ``union`` computes; ``union`` holds the overlay
rules, pure (no pyfuse3, trio, lmdb). Below everything, the base modules: ``layerfmt``
(on-disk markers), ``safepath`` (the only walker of layer paths; ``mountattrs`` clones
layers' mounts for it, ``safecalls`` wraps openat2 and renameat2, ``dirfds`` caches its
directory descriptors), ``idmap``, ``mountopts``, ``imageformat``, ``imagename`` (the
reference grammar), ``livemounts`` (the mount table, daemons' records), ``layercheck``
(overlapping and in-use layers), ``errors``.
"""

__version__ = "0.1.0"

# Part -> the other parts of unionfs it may import. A part is a package (``union`` is
# unionfs.union and its modules) or a top-level module; "unionfs" is this file. Anything
# not named is refused, so a new package needs a row before it can import anything.
# fmt: off
LAYERS: dict[str, tuple[str, ...]] = {
    "unionfs": (),
    "errors": (),
    "layerfmt": ("errors",),
    "mountattrs": (),
    "safecalls": (),  # openat2 and renameat2, for safepath
    "dirfds": (),  # safepath's cache of directory descriptors
    "safepath": ("safecalls", "dirfds", "mountattrs", "errors"),
    "idmap": ("errors",),
    "imageformat": ("errors",),
    "imagename": ("errors",),  # the reference grammar: image names for store and registry
    "mountopts": ("errors", "idmap"),  # parses the owner-mapping options with idmap
    "livemounts": ("errors",),
    "layercheck": ("livemounts", "errors"),
    "union": ("layerfmt", "safepath", "mountattrs", "errors"),
    "index": ("union", "layerfmt", "safepath", "errors"),
    "fuse": ("union", "index", "layerfmt", "safepath", "idmap", "mountopts", "livemounts",
             "mountattrs", "errors"),
    "store": ("union", "layerfmt", "safepath", "imageformat", "imagename", "errors"),
    "registry": ("imageformat", "imagename", "errors"),
    "runtime": ("errors",),
    "containers": ("store", "runtime", "imageformat", "imagename", "errors"),
    # lazily pulled layers: fetched through registry, kept in the store, served to fuse
    # through its ``lazyhook`` protocol (fuse never imports lazy, lazy never imports fuse)
    "lazy": ("store", "registry", "safepath", "layerfmt", "imageformat", "imagename", "errors"),
    "cli": ("unionfs", "containers", "store", "runtime", "registry", "lazy", "fuse", "index",
            "union", "layerfmt", "safepath", "idmap", "mountopts", "imageformat", "imagename",
            "livemounts", "layercheck", "errors"),
    # the console script's first step (the zygote's client, then the CLI) and the zygote
    "zygote": ("cli",),
    "__main__": ("zygote",),
}
# fmt: on

# Library -> the only parts that may import it. tools/, bench/ and tests/ use unionfs;
# unionfs never imports them.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "pyfuse3": ("fuse",),
    "trio": ("fuse",),
    "lmdb": ("index", "store"),
    "httpx": ("registry",),
    "tools": (),
    "bench": (),
    "tests": (),
}
