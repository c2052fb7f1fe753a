#!/usr/bin/env bash
# Build pyfuse3 PYFUSE3_VERSION from its released sdist with the patches in `series` applied,
# and install it into the virtualenv of the Python given as $1 (run by ./dev.sh setup).
# $2, if given, is the prefix of a libfuse built by third_party/libfuse/install.sh: pyfuse3 is
# then compiled against it and linked to it by an rpath (no LD_LIBRARY_PATH needed); without
# it, against the system's libfuse3-dev (the features of newer libfuse then report missing).
#
# Idempotent: the installed distribution's version carries a local label made of the hash of
# the series, this script and the libfuse build's stamp (`3.5.0+unionfs.<12 hex>`); if the
# installed pyfuse3 has that version nothing is done, and any change of a patch, of this
# script or of libfuse rebuilds.
# Fails loudly (non-zero exit, the failing patch named) if the sdist's checksum differs or a
# patch does not apply exactly.
# Everything it downloads or builds stays below the virtualenv (.venv/build/pyfuse3).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${1:?usage: install.sh PATH/TO/VENV/bin/python [LIBFUSE_PREFIX]}
LIBFUSE=${2:-}

PYFUSE3_VERSION=3.5.0
SDIST_SHA256=88399a9494b88603230bba300f4ba9ad63fece5ed514ca3633d555a0c6a42b24
# The build requirements of pyfuse3's pyproject.toml, pinned (no build isolation): Cython 3.2.4
# is the version that generated the sdist's own C file.
BUILD_REQUIREMENTS=("Cython==3.2.4" "setuptools>=78.1.1" "setuptools_scm>=8")

mapfile -t PATCHES < <(grep -v '^\s*\(#\|$\)' "$HERE/series")
series_hash() {  # the patches, how they are built (this script), and against what libfuse
    { (cd "$HERE" && cat series "${PATCHES[@]}" install.sh); libfuse_stamp; } \
        | sha256sum | cut -c1-12
}
libfuse_stamp() {  # the libfuse build's stamp (third_party/libfuse/install.sh), or nothing
    if [ -n "$LIBFUSE" ]; then
        cat "$LIBFUSE/.unionfs-build"
    fi
}
if [ -n "$LIBFUSE" ] && [ ! -f "$LIBFUSE/.unionfs-build" ]; then
    echo "dev.sh: no libfuse built in $LIBFUSE (run third_party/libfuse/install.sh)" >&2
    exit 1
fi
WANT="$PYFUSE3_VERSION+unionfs.$(series_hash)"

have=$("$PY" -c 'import importlib.metadata as m; print(m.version("pyfuse3"))' 2>/dev/null || true)
if [ "$have" = "$WANT" ]; then
    exit 0
fi

venv=$("$PY" -c 'import sys; print(sys.prefix)')
work="$venv/build/pyfuse3"
rm -rf "$work"
mkdir -p "$work"
echo "dev.sh: building pyfuse3 $WANT (was: ${have:-not installed})" >&2

# Build requirements first, and only pyfuse3 as source: pip prepares the sdist's metadata with
# them (with `--no-binary :all:` it compiled Cython from source for that, minutes on 2 cores).
"$PY" -m pip install -q "${BUILD_REQUIREMENTS[@]}"
"$PY" -m pip download -q --no-binary pyfuse3 --no-build-isolation --no-deps -d "$work" \
    "pyfuse3==$PYFUSE3_VERSION"
sdist="$work/pyfuse3-$PYFUSE3_VERSION.tar.gz"
if ! echo "$SDIST_SHA256  $sdist" | sha256sum --check --status; then
    echo "dev.sh: $sdist does not have the expected sha256 $SDIST_SHA256" >&2
    exit 1
fi
tar -xzf "$sdist" -C "$work"
src="$work/pyfuse3-$PYFUSE3_VERSION"
for p in "${PATCHES[@]}"; do
    if ! patch -d "$src" -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch \
            --reject-file=- --quiet < "$HERE/$p"; then
        echo "dev.sh: third_party/pyfuse3/$p does not apply to pyfuse3 $PYFUSE3_VERSION" >&2
        exit 1
    fi
done
# The sdist ships C code generated from the unpatched Cython sources: make the build
# regenerate it (a stale file would silently build the unpatched binding).
rm -f "$src/src/pyfuse3/__init__.c"

build_env=()
if [ -n "$LIBFUSE" ]; then
    # pkg-config finds the private libfuse's headers and flags; -L comes first in LDFLAGS, or
    # the system's libfuse3.so in the interpreter's library directory is linked instead.
    # $ORIGIN after the prefix: a copy of the package with the library beside it works too
    # (tests/rootless copies both where a test user can read them).
    build_env=(PKG_CONFIG_PATH="$LIBFUSE/lib/pkgconfig"
               LDFLAGS="-L$LIBFUSE/lib -Wl,-rpath,$LIBFUSE/lib -Wl,-rpath,\$ORIGIN ${LDFLAGS:-}")
fi
env "${build_env[@]}" SETUPTOOLS_SCM_PRETEND_VERSION="$WANT" \
    "$PY" -m pip install -q --no-build-isolation --force-reinstall --no-deps "$src"
"$PY" -m pip install -q "trio>=0.15"  # pyfuse3's one dependency

have=$("$PY" -c 'import importlib.metadata as m; print(m.version("pyfuse3"))')
if [ "$have" != "$WANT" ]; then
    echo "dev.sh: installed pyfuse3 is $have, expected $WANT" >&2
    exit 1
fi
if [ -n "$LIBFUSE" ]; then
    linked=$("$PY" -c 'import pyfuse3; print(open("/proc/self/maps").read())' \
        | grep -o '/[^ ]*/libfuse3\.so[^ ]*' | sort -u)
    if [ "$linked" != "$(readlink -f "$LIBFUSE/lib/libfuse3.so")" ]; then
        echo "dev.sh: pyfuse3 loads ${linked:-no libfuse3}, not $LIBFUSE/lib/libfuse3.so" >&2
        exit 1
    fi
fi
