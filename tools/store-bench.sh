#!/usr/bin/env bash
# Times of the store's long operations on a 100 MB, 10,000-file image (random data, so
# gzip cannot shrink it): import of the rootfs dir, commit of a container whose upper holds
# the same tree, save as an OCI archive and as a layout, and import of the saved archive.
#   tools/store-bench.sh [FILES] [BYTES_PER_FILE]      (default 10000 10240)
set -euo pipefail
cd "$(dirname "$0")/.."
UNIONFS=$(pwd)/.venv/bin/unionfs
files=${1:-10000}; size=${2:-10240}
work=$(mktemp -d /tmp/unionfs-store-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export UNIONFS_HOME=$work/store
python3 - "$work/tree" "$files" "$size" <<'PY'
import os, sys
root, files, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(files):
    d = os.path.join(root, f"d{i // 100:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(os.urandom(size))
PY
echo "tree: $(find "$work/tree" -type f | wc -l) files, $(du -sm "$work/tree" | cut -f1) MB"
t() { local label=$1; shift; local s=$(date +%s.%N); "$@" >/dev/null; printf '%-28s %6.2f s\n' "$label" "$(echo "$(date +%s.%N) - $s" | bc)"; }
sync
t "import (rootfs dir)" "$UNIONFS" import "$work/tree" big:1
cid=$("$UNIONFS" create big:1 --name bench)
rmdir "$UNIONFS_HOME/containers/$cid/upper" && cp -a "$work/tree" "$UNIONFS_HOME/containers/$cid/upper"
sync
t "commit (10k-file upper)" "$UNIONFS" commit bench big:2 -m bench
t "save -o (OCI archive)" "$UNIONFS" save big:2 -o "$work/big.tar"
t "save --layout" "$UNIONFS" save big:2 --layout "$work/layout"
"$UNIONFS" rm bench >/dev/null; "$UNIONFS" rmi big:2 big:1 >/dev/null
t "import (OCI archive, 2 layers)" "$UNIONFS" import "$work/big.tar"
