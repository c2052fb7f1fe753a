#!/bin/bash
# commit and import of ~100 MB: podman (overlay, private root) vs unionfs, same content.
set -eu
SRC=${1:?unionfs source tree}
B=/tmp/perf-start/cb
U="env PYTHONPATH=$SRC /work/wt/perf-start/.venv/bin/python -m unionfs"
rm -rf "${B:?}"; mkdir -p "$B"
C=$B/content; mkdir -p "$C"
cp -a /usr/lib/python3.11 "$C/py"; cp -a /usr/lib/git-core "$C/git"; cp -a /usr/share/perl "$C/perl"
echo "content: $(du -sh "$C" | cut -f1), $(find "$C" | wc -l) entries"
mkdir -p "$B/rootfs/etc"; echo base > "$B/rootfs/etc/motd"; tar -C "$B/rootfs" -cf "$B/base.tar" .
RR=$(mktemp -d /tmp/ufs-pm-XXXX); mkdir -p "$RR/tmp" "$B/graph"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$B/graph" "$RR" > "$B/storage.conf"
printf '[containers]\nnetns = "none"\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\ntmp_dir = "%s"\n' "$RR/tmp" > "$B/containers.conf"
export CONTAINERS_STORAGE_CONF=$B/storage.conf CONTAINERS_CONF=$B/containers.conf
P="podman --root $B/graph --runroot $RR --tmpdir $RR/tmp --storage-driver overlay --runtime runc --cgroup-manager cgroupfs --events-backend none"
t() { /usr/bin/time -f "%e s (cpu %U+%S)" -o "$B/time.out" "$@" >/dev/null; cat "$B/time.out"; }
cleanup() {
  $P umount -a >/dev/null 2>&1 || true
  $P rm -a -f >/dev/null 2>&1 || true
  $P rmi -a -f >/dev/null 2>&1 || true
  UNIONFS_HOME=$B/ustore $U umount c >/dev/null 2>&1 || true
  for m in $(awk '{print $5}' /proc/self/mountinfo | grep "^$B/" | sort -r); do umount -l "$m" || true; done
  rm -rf "${RR:?}"
}
trap cleanup EXIT
$P import -q "$B/base.tar" base:1 >/dev/null
export UNIONFS_HOME=$B/ustore
$U import "$B/base.tar" base >/dev/null
for run in ${RUNS:-1 2 3}; do
  $P create -q --name c base:1 true >/dev/null
  M=$($P mount c); cp -a "$C" "$M/content"; $P umount c >/dev/null
  pc=$(t $P commit -q c big:$run)
  $P rm -f c >/dev/null
  $U create --name c base true >/dev/null
  M=$($U mount c); mountpoint -q "${M:?}"; cp -a "$C" "$M/content"; $U umount c >/dev/null
  uc=$(t $U commit c big$run)
  $U rm c >/dev/null
  $P save -q --format oci-archive -o "$B/big-oci.tar" big:$run
  $P rmi -f big:$run >/dev/null
  pl=$(t $P load -q -i "$B/big-oci.tar")
  $P rmi -f big:$run >/dev/null 2>&1 || $P rmi -a -f >/dev/null 2>&1 || true
  ul=$(UNIONFS_HOME=$B/ustore-fresh$run t $U import "$B/big-oci.tar" loaded$run)
  rm -rf "${B:?}/ustore-fresh$run"
  echo "run $run: commit podman $pc unionfs $uc; load/import podman $pl unionfs $ul"
  rm -f "$B/big-oci.tar"
done
echo "archive: $(ls -l "$B"/*.tar | awk '{print $5, $9}' | tr '\n' ' ')"
