#!/bin/bash
# usage: PY=<venv python> cold_io.sh CHECKOUT TAG
# The daemon's reads (syscr, read_bytes), major faults and CPU ticks before and after a cold
# stat-all of the bench's 100-layer stack (the index built by a first mount; then the page
# cache dropped, a fresh mount). CHECKOUT's unionfs runs (PYTHONPATH, from cwd /).
set -eu
SRC=${1:?}; TAG=${2:?}
D=/tmp/cold-io-$TAG; rm -rf "${D:?}"; mkdir -p $D/up $D/wk $D/mnt $D/idx
L=/var/tmp/unionfs-bench/cache/source100-x0.1-seed1-v2/layers
LOW=$(ls $L | sort -n | sed "s|^|$L/|" | paste -sd:)
cd /
mnt() { env PYTHONPATH=$SRC ${PY:?venv python} -m unionfs mount -f -o lowerdir=$LOW,upperdir=$D/up,workdir=$D/wk,indexdir=$D/idx $D/mnt 2> $D/err & P=$!
  for i in $(seq 600); do mountpoint -q $D/mnt && break; sleep 0.1; done; mountpoint -q $D/mnt; }
mnt; find $D/mnt -type f | head -1 >/dev/null; fusermount3 -u $D/mnt; wait $P   # index built
rm -rf $D/up $D/wk; mkdir $D/up $D/wk
sync; echo 3 > /proc/sys/vm/drop_caches
mnt
io() { echo "$(grep -E 'read_bytes|syscr' /proc/$P/io | tr '\n' ' ') majflt $(cut -d' ' -f12 /proc/$P/stat) utime $(cut -d' ' -f14,15 /proc/$P/stat)"; }
io
/usr/bin/time -f "stat-all %e s" sh -c "find $D/mnt -type f -print0 | xargs -0 stat > /dev/null"
io
fusermount3 -u $D/mnt; wait $P || true

rm -rf "${D:?}"
