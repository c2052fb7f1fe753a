#!/usr/bin/env bash
# Install trio TRIO_VERSION from its released sdist with the patches in `series` applied, into
# the virtualenv of the Python given as $1 (run by ./dev.sh setup, after pyfuse3's install,
# which brings stock trio and its dependencies).
#
# Idempotent: the installed distribution's version carries a local label made of the hash of
# the series and this script (`0.35.0+unionfs.<12 hex>`); if the installed trio has that
# version nothing is done, and any change of a patch or of this script reinstalls.
# Fails loudly (non-zero exit, the failing patch named) if the sdist's checksum differs or a
# patch does not apply exactly. What it downloads stays below the virtualenv (.venv/build/trio).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PY=${1:?usage: install.sh PATH/TO/VENV/bin/python}

TRIO_VERSION=0.35.0
SDIST_SHA256=7efb295c78a0ecd1235c5759e620b5da564ca80d2efcb0055423588547248b96

mapfile -t PATCHES < <(grep -v '^\s*\(#\|$\)' "$HERE/series")
WANT="$TRIO_VERSION+unionfs.$(cd "$HERE" && cat series "${PATCHES[@]}" install.sh \
    | sha256sum | cut -c1-12)"

have=$("$PY" -c 'import importlib.metadata as m; print(m.version("trio"))' 2>/dev/null || true)
if [ "$have" = "$WANT" ]; then
    exit 0
fi

venv=$("$PY" -c 'import sys; print(sys.prefix)')
work="$venv/build/trio"
rm -rf "$work"
mkdir -p "$work"
echo "dev.sh: installing trio $WANT (was: ${have:-not installed})" >&2
"$PY" -m pip download -q --no-binary trio --no-build-isolation --no-deps -d "$work" \
    "trio==$TRIO_VERSION"
sdist="$work/trio-$TRIO_VERSION.tar.gz"
if ! echo "$SDIST_SHA256  $sdist" | sha256sum --check --status; then
    echo "dev.sh: $sdist does not have the expected sha256 $SDIST_SHA256" >&2
    exit 1
fi
tar -xzf "$sdist" -C "$work"
src="$work/trio-$TRIO_VERSION"
for p in "${PATCHES[@]}"; do
    if ! patch -d "$src" -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch \
            --reject-file=- --quiet < "$HERE/$p"; then
        echo "dev.sh: third_party/trio/$p does not apply to trio $TRIO_VERSION" >&2
        exit 1
    fi
done
# The version is read from trio/_version.py (pyproject.toml: dynamic, attr).
printf '# This file is imported from __init__.py and parsed by setuptools\n\n__version__ = "%s"\n' \
    "$WANT" > "$src/src/trio/_version.py"
"$PY" -m pip install -q --no-build-isolation --force-reinstall --no-deps "$src"
# Compiled once here: where PYTHONDONTWRITEBYTECODE is set nothing else would cache it.
"$PY" -m compileall -q "$("$PY" -c 'import trio, os; print(os.path.dirname(trio.__file__))')" \
    >/dev/null

have=$("$PY" -c 'import importlib.metadata as m; print(m.version("trio"))')
if [ "$have" != "$WANT" ]; then
    echo "dev.sh: installed trio is $have, expected $WANT" >&2
    exit 1
fi
