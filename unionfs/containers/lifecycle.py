"""Containers made from images: create, mount, unmount, diff, commit.

A container is the runtime's state directory (``unionfs.runtime.state``: upper, work,
rootfs mount point, state.json, and spec.json when it was created with a command, which
``unionfs start`` runs) whose state names its image (manifest digest) and layer dirs.
``commit`` tars the upper (flushed first when mounted) into a new layer and records a new
image: the parent's layers plus that one, its config's diff_ids and history extended.
Running a container is the runtime's (``unionfs.runtime.run``), not this module's.
"""

from __future__ import annotations

import ctypes
import os
import typing
from collections.abc import Callable

from unionfs import imageformat
from unionfs.errors import UserError
from unionfs.imageformat import Descriptor
from unionfs.runtime import rootfs
from unionfs.runtime.state import ContainerDirs, Saved, State
from unionfs.store import layertar
from unionfs.store.images import Image, ImageStore, Use
from unionfs.store.importer import finish_image, new_config, undo_on_failure, write_layer
from unionfs.store.spellout import spelled_out

_DOCKER_TO_OCI = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": imageformat.LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar": imageformat.LAYER_TAR,
}


def states(store: ImageStore) -> ContainerDirs:
    """The state dirs of the containers on *store* (both live in one UNIONFS_HOME)."""
    return ContainerDirs(store.root)


def uses(store: ImageStore) -> list[Use]:
    """What every container holds on to (for rmi)."""
    return [Use(s.name, s.image, s.lowers or (s.rootfs,)) for s in states(store).all()]


SpecFor = Callable[[dict[str, typing.Any], tuple[str, ...]], Saved | None]


def create(store: ImageStore, ref: str, name: str | None, spec_for: SpecFor | None = None) -> State:
    """A new container over the image *ref*: an empty upper, not mounted. *spec_for*, given
    the image's config and layer dirs, makes what ``unionfs start`` is to run (None: no
    command; such a container can be mounted, not started)."""
    with store.locked():  # rmi cannot remove the image between resolving and registering
        image = store.resolve(ref)
        lowers = tuple(store.lowers(image))
        if not lowers:
            raise UserError(f"image {ref} has no layers")
        saved = spec_for(store.config(image), lowers) if spec_for is not None else None
        command = saved.spec.process.args if saved is not None else ()
        remove = saved.spec.remove if saved is not None else False
        state = states(store).create(name, command, lowers[0], remove, image=image.digest,
                                     lowers=lowers, runtime=False)  # fmt: skip
        if saved is not None:
            try:
                states(store).save_spec(state.id, saved)
            except BaseException:
                states(store).delete(state.id)
                raise
        return state


def lowers_of(state: State) -> list[str]:
    return list(state.lowers or (state.rootfs,))


def mount(store: ImageStore, ref: str, options: tuple[str, ...] = (),
          index: str | None = None) -> str:  # fmt: skip
    """Mount container *ref*'s merged tree (if it is not already), with extra mount
    *options* and the index in *index* (default: the store's); its mount point."""
    state = states(store).find(ref)
    paths = states(store).paths(state.id)
    if not os.path.ismount(paths.rootfs):
        for lower in lowers_of(state):
            if not os.path.isdir(lower):
                raise UserError(f"container {state.name}: its layer {lower} is missing")
        # The store's layers are never written once stored: the mount need not walk them.
        sealed = ("sealed",) if state.lowers else ()
        rootfs.mount(lowers_of(state), paths.upper, paths.work, paths.rootfs,
                     index or store.index_dir, (*options, *sealed))  # fmt: skip
    return paths.rootfs


def unmount(store: ImageStore, ref: str) -> str:
    state = states(store).find(ref)
    paths = states(store).paths(state.id)
    if state.status == "running" and state.runtime_pid is not None:
        raise UserError(f"container {state.name} is running: its runtime unmounts it")
    rootfs.unmount(paths.rootfs)
    return paths.rootfs


def diff(store: ImageStore, ref: str) -> list[tuple[str, str]]:
    state = states(store).find(ref)
    paths = states(store).paths(state.id)
    if os.path.ismount(paths.rootfs):
        flush(paths.rootfs)
    lowers = lowers_of(state)
    with spelled_out(paths.upper, lowers) as upper:
        found: list[tuple[str, str]] = layertar.changes(upper, lowers)
    return found


def flush(mountpoint: str) -> None:
    """Make what was written through the mount reach the upper: syncfs on the mount (the
    kernel's writeback cache sends its dirty pages to the daemon), or sync() if that fails."""
    fd = os.open(mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def commit(store: ImageStore, ref: str, new_name: str, message: str | None,
           show: bool | None = None) -> Image:  # fmt: skip
    state = states(store).find(ref)
    if state.image is None:
        raise UserError(f"container {state.name} was not made from an image (--rootfs): "
                        "nothing to commit onto")  # fmt: skip
    paths = states(store).paths(state.id)
    with store.locked():
        image = store.resolve(state.image)
    if os.path.ismount(paths.rootfs):
        flush(paths.rootfs)
    parent = imageformat.parse_manifest(store.blobs.read(image.digest))
    layers = [Descriptor(_DOCKER_TO_OCI.get(d.media_type, d.media_type), d.digest, d.size)
              for d in parent.layers]  # fmt: skip
    with undo_on_failure(store, show) as adding:
        with spelled_out(paths.upper, lowers_of(state)) as upper:
            blob = write_layer(store, adding, upper, f"committing {state.name}")
        store.ensure_layer(blob.digest, blob.media_type, blob.diff_id, show)
        config = new_config(blob.diff_id, f"unionfs commit {state.name}",
                            base=store.config(image), comment=message)  # fmt: skip
        layers.append(Descriptor(blob.media_type, blob.digest, blob.size))
        return finish_image(store, adding, layers, config, new_name, show)
