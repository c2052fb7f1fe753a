#!/bin/bash
# usage: daemon_cpu.sh CHECKOUT WORKLOAD -> "WORKLOAD CHECKOUT cpu_ticks=N wall=S": the CPU
# (clock ticks, 10 ms) of a fresh unionfs daemon (CHECKOUT first on PYTHONPATH, this venv) while
# WORKLOAD runs on a 1-layer mount of the bench stack (run python -m bench --prepare first).
set -eu
REPO=$(cd "$(dirname "$0")/../../.." && pwd)
PY=${PY:-$REPO/.venv/bin/python}
CO=${1:?}; WL=${2:?}
B=$(mktemp -d /tmp/daemon-cpu.XXXXXX)
mkdir -p "$B/upper" "$B/work" "$B/mnt"
LOWER=/var/tmp/unionfs-bench/cache/source1-x0.1-seed1-v2/layers/0
MNT=$B/mnt
cd $CO
env PYTHONPATH=$CO $PY -m unionfs mount -f --log $B/log -o lowerdir=$LOWER,upperdir=$B/upper,workdir=$B/work,indexdir=$B/index $MNT &
PID=$!
for i in $(seq 300); do mountpoint -q $MNT && break; sleep 0.1; done
mountpoint -q $MNT
case $WL in
 link) touch ${MNT:?}/t;;
 unlink) touch ${MNT:?}/t; python3 $REPO/bench/fsops.py link $MNT/t 819;;
 create) mkdir ${MNT:?}/c;;
 rm) mkdir ${MNT:?}/c && (cd $MNT/c && seq 1000 | xargs touch);;
 *) ;;
esac
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
C0=$(cpu); T0=$(date +%s.%N)
case $WL in
 link) python3 $REPO/bench/fsops.py link $MNT/t 819;;
 unlink) python3 $REPO/bench/fsops.py unlink $MNT 819;;
 create) (cd $MNT/c && seq 1000 | xargs touch);;
 rm) rm -rf ${MNT:?}/c;;
 stat) find $MNT -type f -print0 | xargs -0 stat >/dev/null;;
 find) find $MNT >/dev/null;;
 read) find $MNT -type f -print0 | xargs -0 cat >/dev/null;;
 dpkg) python3 $REPO/bench/fsops.py dpkg $MNT/dpkg 1000;;
 cpa) cp -a /var/tmp/unionfs-bench/cache/source1-x0.1-seed1-v2/layers/0 $MNT/copy;;
esac
C1=$(cpu); T1=$(date +%s.%N)
fusermount3 -u $MNT; wait $PID || true
mountpoint -q "$MNT" || rm -rf "${B:?}"
echo "$WL $(basename $CO) cpu_ticks=$((C1-C0)) wall=$(echo "$T1 - $T0" | bc)"
