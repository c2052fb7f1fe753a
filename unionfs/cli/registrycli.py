"""What ``push`` and ``pull`` share: the registry flags, per-blob progress bars (on a
terminal only), the summary line, and where the store keeps its cache of blob locations."""

from __future__ import annotations

import argparse
import os
import sys

from unionfs.registry import registriesconf
from unionfs.registry.digest import short
from unionfs.registry.manifest import Descriptor
from unionfs.registry.reference import Reference
from unionfs.registry.sources import BlobSources
from unionfs.registry.transfer import Summary
from unionfs.store import ImageStore
from unionfs.store.progress import Progress


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def add_registry_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tls-verify",
        type=parse_bool,
        nargs="?",
        const=True,
        default=None,
        metavar="BOOL",
        help="verify the registry's TLS certificate (default: true, unless registries.conf "
        "marks the registry insecure); false also allows plain http, for a local registry",
    )
    p.add_argument(
        "--authfile",
        metavar="FILE",
        help="credentials in podman's auth.json format (default: $UNIONFS_REGISTRY_USERNAME/"
        "$UNIONFS_REGISTRY_PASSWORD, then what `unionfs login` wrote: $REGISTRY_AUTH_FILE, "
        "$XDG_RUNTIME_DIR/containers/auth.json; then ~/.config/containers/auth.json, "
        "~/.docker/config.json, ~/.config/unionfs/auth.json)",
    )


def registries() -> registriesconf.Config:
    """registries.conf, read from podman's places (``registriesconf``)."""
    return registriesconf.load()


def tls_verify(args: argparse.Namespace, ref: Reference, conf: registriesconf.Config) -> bool:
    """``--tls-verify`` as given; else false for a registry registries.conf calls insecure."""
    conf.check_allowed(ref)
    given: bool | None = args.tls_verify
    return given if given is not None else not conf.insecure(ref)


def sources_of(store: ImageStore) -> BlobSources:
    """The store's cache of which repositories hold which blobs (for cross-repo mounts)."""
    return BlobSources(os.path.join(store.root, "registry", "sources.json"))


class Bars:
    """One progress bar per blob that moves, a line for each skipped one; only on a tty."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.enabled = sys.stderr.isatty()
        self._bars: dict[str, Progress] = {}

    def begin(self, desc: Descriptor) -> None:
        label = f"{self.verb} blob {short(desc.digest)[7:]}"
        self._bars[desc.digest] = Progress(label, desc.size, enabled=self.enabled)

    def advance(self, desc: Descriptor, n: int) -> None:
        bar = self._bars.get(desc.digest)
        if bar is not None:
            bar(n)

    def end(self, desc: Descriptor, outcome: str) -> None:
        bar = self._bars.pop(desc.digest, None)
        if bar is not None:
            bar.done()
        elif self.enabled:
            word = "mounted from another repository" if outcome == "mounted" else "already there"
            print(f"blob {short(desc.digest)[7:]}: {word}", file=sys.stderr)


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def summary_line(verb: str, s: Summary) -> str:
    """``3 layers: 1 sent (1.2 MB), 2 skipped (40.0 MB); config sent; digest sha256:…``"""
    layers = s.layers_moved + s.layers_skipped
    config_moved = s.moved - s.layers_moved
    mounted = f" ({s.layers_mounted} mounted from another repository)" if s.mounted else ""
    return (
        f"{layers} layer{'s' if layers != 1 else ''}: {s.layers_moved} {verb}, "
        f"{s.layers_skipped} skipped{mounted}; {human(s.moved_bytes)} {verb}, "
        f"{human(s.skipped_bytes)} skipped (config {verb if config_moved else 'skipped'}); "
        f"digest {s.manifest_digest}"
    )
