"""TEMPORARY stand-in for ``layertar`` (owned by another helper) until it lands. Unsafe
on hostile input; removed as soon as ``unionfs.store.layertar`` exists."""
# mypy: ignore-errors
from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass

from unionfs.errors import UserError


@dataclass(frozen=True, slots=True)
class LayerBlob:
    diff_id: str
    digest: str
    size: int
    media_type: str


class _H:
    def __init__(self, out):
        self.out, self.h, self.n = out, hashlib.sha256(), 0

    def write(self, b):
        self.out.write(b)
        self.h.update(b)
        self.n += len(b)
        return len(b)

    def flush(self):
        pass

    def tell(self):
        return self.n


def write_layer(upper, out, *, compression="gzip", progress=None):
    outer = _H(out)
    gz = gzip.GzipFile(fileobj=outer, mode="wb", mtime=0)
    inner = _H(gz)
    tar = tarfile.open(fileobj=inner, mode="w:", format=tarfile.PAX_FORMAT)
    for dirpath, dirnames, filenames in os.walk(upper):
        dirnames.sort()
        rel = os.path.relpath(dirpath, upper)
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            arc = os.path.normpath(os.path.join(rel, name))
            st = os.lstat(full)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                ti = tarfile.TarInfo(os.path.join(os.path.dirname(arc), ".wh." + name).lstrip("./") if os.path.dirname(arc) else ".wh." + name)
                ti.mtime = 0
                tar.addfile(ti)
                continue
            ti = tar.gettarinfo(full, arc)
            ti.uname = ti.gname = ""
            if ti.isreg():
                with open(full, "rb") as f:
                    tar.addfile(ti, f)
            else:
                tar.addfile(ti)
            if stat.S_ISDIR(st.st_mode):
                try:
                    v = os.getxattr(full, "trusted.overlay.opaque")
                except OSError:
                    v = None
                if v == b"y":
                    t2 = tarfile.TarInfo(arc + "/.wh..wh..opq")
                    tar.addfile(t2)
    tar.close()
    gz.close()
    return LayerBlob("sha256:" + inner.h.hexdigest(), "sha256:" + outer.h.hexdigest(), outer.n, "application/vnd.oci.image.layer.v1.tar+gzip")


def open_layer(f):
    if isinstance(f, str):
        f = open(f, "rb")
    head = f.peek(2)[:2] if hasattr(f, "peek") else b""
    if head == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")
    return f


def extract_layer(stream, dest, style, *, warn, progress=None):
    h = hashlib.sha256()

    class R(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            d = stream.read(len(b))
            b[: len(d)] = d
            h.update(d)
            return len(d)

    r = io.BufferedReader(R())
    try:
        tar = tarfile.open(fileobj=r, mode="r|")
        for ti in tar:
            name = os.path.normpath(ti.name)
            if name.startswith(("..", "/")):
                raise UserError(f"layer: refusing {ti.name!r}")
            base = os.path.basename(name)
            d = os.path.dirname(name)
            if base == ".wh..wh..opq":
                os.setxattr(os.path.join(dest, d), "trusted.overlay.opaque", b"y")
                continue
            if base.startswith(".wh."):
                os.mknod(os.path.join(dest, d, base[4:]), stat.S_IFCHR, 0)
                continue
            tar.extract(ti, dest, set_attrs=True, numeric_owner=True)
        while r.read(65536):
            pass
    except tarfile.TarError as e:
        raise UserError(f"layer: not a tar ({e})") from None
    return "sha256:" + h.hexdigest()


def changes(upper, lowers):
    out = []
    for dirpath, dirnames, filenames in os.walk(upper):
        rel = os.path.relpath(dirpath, upper)
        for name in dirnames + filenames:
            p = "/" + os.path.normpath(os.path.join(rel, name))
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(("D", p))
            elif any(os.path.lexists(os.path.join(lo, p[1:])) for lo in lowers):
                out.append(("C", p))
            else:
                out.append(("A", p))
    return sorted(out, key=lambda x: x[1])
