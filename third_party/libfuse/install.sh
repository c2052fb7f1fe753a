#!/usr/bin/env bash
# Build libfuse LIBFUSE_VERSION (Debian 13's source: the upstream tarball from Debian's archive,
# Debian's patches, then ours) and install only the library and its headers into the
# virtualenv given as $1, below $1/opt/libfuse-LIBFUSE_VERSION (run by ./dev.sh setup, before
# third_party/pyfuse3/install.sh, which builds pyfuse3 against it).
#
# No utilities are built or installed: mounting without root keeps using the system's setuid
# fusermount3 (the library runs it from /usr/bin), and nothing outside the virtualenv changes.
# Idempotent: a stamp in the prefix holds the hash of this script and the patches; when it
# matches nothing is done. Fails loudly (non-zero exit, the reason named) if the download does
# not have the pinned sha256 or a patch does not apply exactly.
# With --prefix, only prints the prefix it installs to (for dev.sh and the tests).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

LIBFUSE_VERSION=3.17.2
ORIG=fuse3_$LIBFUSE_VERSION.orig.tar.gz
ORIG_URL=http://deb.debian.org/debian/pool/main/f/fuse3/$ORIG
ORIG_SHA256=3d932431ad94e86179e5265cddde1d67aa3bb2fb09a5bd35c641f86f2b5ed06f

if [ "${1:-}" = --prefix ]; then
    venv=$(cd "${2:?usage: install.sh --prefix VENV}" && pwd)
    echo "$venv/opt/libfuse-$LIBFUSE_VERSION"
    exit 0
fi
venv=$(cd "${1:?usage: install.sh VENV}" && pwd)
prefix=$venv/opt/libfuse-$LIBFUSE_VERSION
work=$venv/build/libfuse

patch_list() {  # "DIR/NAME" for each patch, in the order they are applied
    local dir
    for dir in debian-patches patches; do
        grep -v '^\s*\(#\|$\)' "$HERE/$dir/series" | sed "s|^|$dir/|"
    done
}
mapfile -t PATCHES < <(patch_list)
want=$( (cd "$HERE" && cat install.sh debian-patches/series patches/series "${PATCHES[@]}") \
    | sha256sum | cut -c1-12)
stamp=$prefix/.unionfs-build
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -e "$prefix/lib/libfuse3.so" ]; then
    exit 0
fi

for tool in meson ninja curl pkg-config; do
    if ! command -v "$tool" >/dev/null; then
        echo "dev.sh: building libfuse $LIBFUSE_VERSION needs $tool (APT_PACKAGES in dev.sh)" >&2
        exit 1
    fi
done
echo "dev.sh: building libfuse $LIBFUSE_VERSION into $prefix" >&2
rm -rf "$work" "$prefix"
mkdir -p "$work"
if ! curl -fsSL --retry 3 -o "$work/$ORIG" "$ORIG_URL"; then
    echo "dev.sh: could not download $ORIG_URL" >&2
    exit 1
fi
if ! echo "$ORIG_SHA256  $work/$ORIG" | sha256sum --check --status; then
    echo "dev.sh: $ORIG_URL does not have the expected sha256 $ORIG_SHA256" >&2
    exit 1
fi
tar --no-same-owner -xzf "$work/$ORIG" -C "$work"
src=$work/fuse-$LIBFUSE_VERSION
for p in "${PATCHES[@]}"; do
    if ! patch -d "$src" -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch \
            --reject-file=- --quiet < "$HERE/$p"; then
        echo "dev.sh: third_party/libfuse/$p does not apply to libfuse $LIBFUSE_VERSION" >&2
        exit 1
    fi
done

# bindir only sets where the library looks for fusermount3 first: the system's.
# disable-mtab (with patches/0002): a mount by root would otherwise run `/bin/mount -f`
# (an unmount `/bin/umount`) for /etc/mtab, a symlink to /proc/self/mounts on any current
# system: 50-80 ms of every mount's start for nothing.
meson setup "$work/build" "$src" --prefix="$prefix" --libdir=lib --bindir=/usr/bin \
    -Ddefault_library=shared -Dutils=false -Dexamples=false -Ddisable-mtab=true \
    -Dtests=false -Dinitscriptdir= >"$work/meson.log" 2>&1 \
    || { cat "$work/meson.log" >&2; exit 1; }
ninja -C "$work/build" >"$work/ninja.log" 2>&1 || { cat "$work/ninja.log" >&2; exit 1; }
meson install -C "$work/build" --no-rebuild >"$work/install.log" 2>&1 \
    || { cat "$work/install.log" >&2; exit 1; }
# Only the library, its headers and fuse3.pc, all below the prefix (nothing into /usr/bin).
if grep '^Installing' "$work/install.log" | grep -v " to $prefix/\(lib\|include\)" >&2; then
    echo "dev.sh: the libfuse build installed the files above outside $prefix/{lib,include}" >&2
    exit 1
fi
echo "$want" > "$stamp"
rm -rf "$work"
