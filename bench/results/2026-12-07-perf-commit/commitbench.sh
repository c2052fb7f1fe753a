#!/bin/bash
# commit and import of ~100 MB: podman (overlay, private root) vs unionfs, same content, same run.
# usage: RUNS="1 2 3" [BEFORE=OTHER_CHECKOUT] commitbench.sh UNIONFS_CHECKOUT [SCRATCH]
# (BEFORE: a second unionfs checkout with its .venv, timed in the same runs)
# Content: /usr/lib/python3.11 (many small files) plus four big files (two compressible,
# one already compressed). Per run: podman commit, unionfs commit, podman save (oci-archive),
# podman load of it, unionfs import of it into an empty store. Prints one line per run:
# wall seconds (cpu user+sys) and the load average at the start of the run.
set -eu
SRC=${1:?unionfs checkout with a .venv}
B=${2:-/tmp/perf-commit-cb}
U="$SRC/.venv/bin/python -m unionfs"
UB=${BEFORE:+$BEFORE/.venv/bin/python -m unionfs}
rm -rf "${B:?}"; mkdir -p "$B"
C=$B/content; mkdir -p "$C/big"
cp -a /usr/lib/python3.11 "$C/py"
for f in /usr/lib/file/magic.mgc /usr/lib/jvm/java-17-openjdk-amd64/lib/server/libjvm.so \
         /usr/lib/jvm/java-17-openjdk-amd64/jmods/java.base.jmod /usr/lib/jvm/java-17-openjdk-amd64/lib/ct.sym; do
  [ -f "$f" ] && cp -a "$f" "$C/big/"
done
echo "content: $(du -sh "$C" | cut -f1), $(find "$C" | wc -l) entries"
mkdir -p "$B/rootfs/etc"; echo base > "$B/rootfs/etc/motd"; tar -C "$B/rootfs" -cf "$B/base.tar" .
RR=$(mktemp -d /tmp/ufs-pc-XXXX); mkdir -p "$RR/tmp" "$B/graph"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$B/graph" "$RR" > "$B/storage.conf"
printf '[containers]\nnetns = "none"\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\ntmp_dir = "%s"\n' "$RR/tmp" > "$B/containers.conf"
export CONTAINERS_STORAGE_CONF=$B/storage.conf CONTAINERS_CONF=$B/containers.conf
P="podman --root $B/graph --runroot $RR --tmpdir $RR/tmp --storage-driver overlay --runtime runc --cgroup-manager cgroupfs --events-backend none"
t() { /usr/bin/time -f "%e %U %S" -o "$B/time.out" "$@" >/dev/null; cat "$B/time.out"; }
cleanup() {
  $P umount -a >/dev/null 2>&1 || true
  $P rm -a -f >/dev/null 2>&1 || true
  $P rmi -a -f >/dev/null 2>&1 || true
  UNIONFS_HOME=$B/ustore $U umount pcbench >/dev/null 2>&1 || true
  [ -z "$UB" ] || UNIONFS_HOME=$B/ustore-before $UB umount pcbench >/dev/null 2>&1 || true
  for m in $(awk '{print $5}' /proc/self/mountinfo | grep "^$B/" | sort -r); do umount -l "$m" || true; done
  rm -rf "${RR:?}" "${B:?}"
}
trap cleanup EXIT
$P import -q "$B/base.tar" base:1 >/dev/null
export UNIONFS_HOME=$B/ustore
$U import -q "$B/base.tar" base >/dev/null
[ -z "$UB" ] || UNIONFS_HOME=$B/ustore-before $UB import -q "$B/base.tar" base >/dev/null
echo "# run load1 | commit: podman wall user sys | unionfs wall user sys | load: podman wall user sys | unionfs wall user sys | blob MB${UB:+ | before: commit wall user sys | import wall user sys}"
for run in ${RUNS:-1 2 3}; do
  load=$(cut -d' ' -f1 /proc/loadavg)
  $P create -q --name pcbench base:1 true >/dev/null
  M=$($P mount pcbench); mountpoint -q "${M:?}"; cp -a "$C" "$M/content"; $P umount pcbench >/dev/null
  sync
  pc=$(t $P commit -q pcbench big:$run)
  $P rm -f pcbench >/dev/null
  $U create --name pcbench base true >/dev/null
  M=$($U mount pcbench); mountpoint -q "${M:?}"; cp -a "$C" "$M/content"; $U umount pcbench >/dev/null
  sync
  uc=$(t $U commit -q pcbench big$run)
  $U rm pcbench >/dev/null
  $P save -q --format oci-archive -o "$B/big-oci.tar" big:$run
  $P rmi -f big:$run >/dev/null
  sync
  pl=$(t $P load -q -i "$B/big-oci.tar")
  $P rmi -f big:$run >/dev/null 2>&1 || $P rmi -a -f >/dev/null 2>&1 || true
  ul=$(UNIONFS_HOME=$B/ustore-fresh$run t $U import -q "$B/big-oci.tar" loaded$run)
  rm -rf "${B:?}/ustore-fresh$run"
  mb=$(( $(stat -c %s "$B/big-oci.tar") / 1000000 ))
  extra=
  if [ -n "$UB" ]; then
    export UNIONFS_HOME=$B/ustore-before
    $UB create --name pcbench base true >/dev/null
    M=$($UB mount pcbench); mountpoint -q "${M:?}"; cp -a "$C" "$M/content"; $UB umount pcbench >/dev/null
    sync
    bc=$(t $UB commit -q pcbench big$run)
    $UB rm pcbench >/dev/null; $UB rmi big$run >/dev/null 2>&1 || true
    bl=$(UNIONFS_HOME=$B/ustore-bfresh$run t $UB import -q "$B/big-oci.tar" loaded$run)
    rm -rf "${B:?}/ustore-bfresh$run"
    export UNIONFS_HOME=$B/ustore
    extra=" | $bc | $bl"
  fi
  echo "$run $load | $pc | $uc | $pl | $ul | $mb$extra"
  rm -f "$B/big-oci.tar"
  $U rmi big$run >/dev/null 2>&1 || true
done
