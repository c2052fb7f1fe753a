"""What a mount daemon needs for the lazy layers among its lowers: each one's blob reached
through a registry client made as ``pull`` made it (reference, TLS, credentials file),
and the shared chunk cache, opened in a thread (``opening``). Layers already whole need
no registry and are left out.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

from unionfs.imagename import parse_reference
from unionfs.lazy import layout
from unionfs.lazy.chunkcache import ChunkCache
from unionfs.lazy.opening import OpeningMount
from unionfs.lazy.serving import LazyLayer, LazyMount
from unionfs.registry import resuming
from unionfs.registry.client import Client
from unionfs.registry.ranges import RegistryRangeSource
from unionfs.registry.transfer import connect

log = logging.getLogger("unionfs.lazy")


def open_mount(lowers: Sequence[str]) -> OpeningMount | None:
    """The lazy layers among *lowers* (``lowerdir=`` directories), or None if none is:
    their records read here (an unreadable one fails the mount, in one line), the rest of
    their opening left to a thread (``OpeningMount``)."""
    trees: dict[str, str] = {}  # tree -> its lazy layer's directory
    for tree in lowers:
        directory = layout.layer_dir(tree)
        if directory is None or layout.is_complete(directory):
            continue
        rec, _toc = layout.load(directory)
        trees[tree] = directory
        why = layout.broken(directory)
        if why is not None:
            log.warning("lazy layer %s was refused (%s): served chunk by chunk, each checked, "
                        "never as a whole layer", rec.digest[:19], why)  # fmt: skip
    return OpeningMount(trees, functools.partial(_open, trees)) if trees else None


def _open(trees: dict[str, str]) -> LazyMount:
    """Each lazy layer of *trees* with its blob reached through a client made as ``pull``
    made it (one client for the layers of one reference), and the shared chunk cache."""
    layers: dict[str, LazyLayer] = {}
    clients: dict[tuple[str, bool, str | None], Client] = {}
    closing: list[Callable[[], None]] = []
    try:
        for tree, directory in trees.items():
            rec, _toc = layout.load(directory)
            ref = parse_reference(rec.ref)
            key = (rec.ref, rec.tls_verify, rec.authfile)
            client = clients.get(key)
            if client is None:
                client = clients[key] = connect(ref, tls_verify=rec.tls_verify,
                                                authfile=rec.authfile)  # fmt: skip
                closing.append(client.close)
            source = RegistryRangeSource(client, ref.repository, rec.digest, rec.size)
            whole = functools.partial(resuming.fetch_blob, client, ref.repository, rec.digest,
                                      rec.size)  # fmt: skip
            layers[tree] = LazyLayer(directory, source, ChunkCache(layout.chunk_dir(directory)),
                                     whole)  # fmt: skip
    except BaseException:
        for close in closing:
            close()
        raise
    return LazyMount(layers, closing)
