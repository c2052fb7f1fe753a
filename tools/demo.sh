#!/usr/bin/env bash
# The quick-start demo: a small stack of layers with a whiteout and an opaque directory,
# mounted with unionfs, shown next to its layers; then a copy-up and a whiteout written to
# the upper layer; then unmounted. Everything lives in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
UNIONFS=$(pwd)/.venv/bin/unionfs
demo=$(mktemp -d /tmp/unionfs-demo.XXXXXX)
mnt=$demo/merged
cleanup() {
    if mountpoint -q "$mnt" 2>/dev/null; then "$UNIONFS" umount "$mnt" || fusermount3 -uz "$mnt"; fi
    # a container root the store section mounted, if it stopped half-way
    awk -v d="$demo/" 'index($2, d) == 1 { print $2 }' /proc/mounts | while read -r m; do
        fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" || true
    done
    # the store section's container, if it stopped half-way (its images stay)
    [ -z "${container:-}" ] || "$UNIONFS" rm -f "$container" >/dev/null 2>&1 || true
    rm -rf "$demo"
}
trap cleanup EXIT

section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show_tree() {  # every entry with its type, mode and (for files) content
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
        if [ -L "$p" ]; then printf '  %-22s -> %s\n' "$p" "$(readlink "$p")"
        elif [ -c "$p" ]; then printf '  %-22s (char device %s: a whiteout)\n' "$p" "$(stat -c %t:%T "$p")"
        elif [ -d "$p" ]; then
            opq=$(getfattr --only-values -n trusted.overlay.opaque "$p" 2>/dev/null || true)
            printf '  %-22s/%s\n' "$p" "${opq:+  (opaque)}"
        else printf '  %-22s %s\n' "$p" "$(head -c 40 "$p" | tr '\n' ' ')"; fi
    done)
}

mkdir -p "$demo"/{base,app,config,upper,work,merged}
# base: the bottom layer
mkdir -p "$demo"/base/{etc,usr/share/doc,tmp}
echo "base motd" > "$demo/base/etc/motd"
echo "old setting=1" > "$demo/base/etc/app.conf"
echo "docs from base" > "$demo/base/usr/share/doc/README"
echo "scratch" > "$demo/base/tmp/old.log"
# app: adds a program, replaces the docs (opaque dir) and deletes a base file (whiteout)
mkdir -p "$demo"/app/{bin,usr/share/doc}
printf '#!/bin/sh\necho hello from app\n' > "$demo/app/bin/hello"; chmod 755 "$demo/app/bin/hello"
echo "docs from app" > "$demo/app/usr/share/doc/APP"
setfattr -n trusted.overlay.opaque -v y "$demo/app/usr/share/doc"
mknod "$demo/app/tmp" c 0 0 2>/dev/null || touch "$demo/app/.wh.tmp"
# config: the top lower layer overrides one file and hides another the rootless way
mkdir -p "$demo/config/etc"
echo "new setting=2" > "$demo/config/etc/app.conf"
touch "$demo/config/etc/.wh.motd"

section "The layers (leftmost in lowerdir= is on top)"
for layer in config app base; do echo " $layer:"; show_tree "$demo/$layer"; done

section "unionfs mount -o lowerdir=config:app:base,upperdir=upper,workdir=work merged"
"$UNIONFS" mount -o "lowerdir=$demo/config:$demo/app:$demo/base,upperdir=$demo/upper,workdir=$demo/work" "$mnt"
grep " $mnt " /proc/mounts | sed 's/^/  /'

section "The merged view: etc/motd and tmp/ are whited out, usr/share/doc is opaque"
show_tree "$mnt"

section "Changes go to the upper layer"
echo "  \$ echo 'changed setting=3' > etc/app.conf     # copy-up of a lower file"
echo "changed setting=3" > "$mnt/etc/app.conf"
echo "  \$ rm bin/hello                                  # leaves a whiteout"
rm "$mnt/bin/hello"
echo "  \$ mkdir -p var/log && date > var/log/boot        # new in the upper only"
mkdir -p "$mnt/var/log"; date > "$mnt/var/log/boot"
echo " merged:"; show_tree "$mnt"
echo " upper:"; show_tree "$demo/upper"
echo " the lower layers are untouched: config/etc/app.conf still says '$(cat "$demo/config/etc/app.conf")'"

section "unionfs umount merged"
"$UNIONFS" umount "$mnt"
if command -v modprobe >/dev/null; then modprobe overlay 2>/dev/null || true; fi
kmnt=$demo/kernel; mkdir -p "$kmnt" "$demo/kwork"
if mount -t overlay overlay -o "lowerdir=$demo/app:$demo/base,upperdir=$demo/upper,workdir=$demo/kwork" "$kmnt" 2>/dev/null; then
    section "The same upper under kernel overlayfs (kernel markers only: config/ left out)"
    show_tree "$kmnt" | grep -E 'app.conf|hello|var/log|tmp' || true
    umount "$kmnt"
fi
section "A container on a unionfs mount: unionfs run --memory 64m --pids 64"
rootfs=$demo/busybox-rootfs
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp "$(command -v busybox)" "$rootfs/bin/busybox"
chroot "$rootfs" /bin/busybox --install -s
echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
echo "  (rootfs: Debian's busybox-static in $rootfs, the container's only lower layer)"
UNIONFS_HOME=$demo/store "$UNIONFS" run --rm --memory 64m --pids 64 --hostname demo-box \
    --rootfs "$rootfs" sh -c '
        echo "  hostname:      $(hostname)"
        echo "  processes:     $(ps -o pid,comm | tail -n +2 | awk "{printf \"%s:%s \", \$1, \$2}")"
        echo "  network:       $(ls /sys/class/net | tr "\n" " ")"
        echo "  root fs:       $(awk "\$5 == \"/\" { for (i = 7; \$i != \"-\"; i++); print \$(i+1) }" /proc/self/mountinfo)"
        echo "  mounts seen:   $(wc -l < /proc/self/mountinfo) (none of the host'"'"'s)"
        echo hello > /root/written-inside && echo "  wrote /root/written-inside in the container upper layer"'
echo "  the rootfs is untouched: $(ls "$rootfs/root" | wc -l) files in its /root"
echo "  \$ unionfs run --memory 32m ... dd bs=64M count=1   # asks for more than its limit"
code=0
UNIONFS_HOME=$demo/store "$UNIONFS" run --rm --memory 32m --rootfs "$rootfs" \
    dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null || code=$?
echo "  exit code $code (137 means the OOM killer ended it inside its memory cgroup)"

section "The image store: import, a change in a container, diff, commit, history, run"
# The default store (/var/lib/unionfs as root; $UNIONFS_HOME or --root DIR elsewhere).
container=demo-c-$$
"$UNIONFS" rmi busybox:web busybox:demo >/dev/null 2>&1 || true   # an earlier demo's
echo "  \$ unionfs import busybox-rootfs busybox:demo      # a plain rootfs becomes a one-layer image"
"$UNIONFS" import "$rootfs" busybox:demo | sed 's/^/  /'
"$UNIONFS" images | sed 's/^/  /'
echo "  \$ unionfs create busybox:demo --name $container && unionfs mount $container"
"$UNIONFS" create busybox:demo --name "$container" >/dev/null
cmnt=$("$UNIONFS" mount "$container")
echo "  $cmnt"
echo "  \$ echo 'Welcome to the committed image' > etc/motd; rm bin/vi; mkdir srv; ...  (in the mount)"
echo "Welcome to the committed image" > "$cmnt/etc/motd"
rm "$cmnt/bin/vi"
mkdir "$cmnt/srv" && echo '<h1>hello</h1>' > "$cmnt/srv/index.html"
echo "  \$ unionfs diff $container"
"$UNIONFS" diff "$container" | sed 's/^/  /'
echo "  \$ unionfs commit $container busybox:web -m 'motd, a web page, no vi'   # while mounted"
"$UNIONFS" commit "$container" busybox:web -m "motd, a web page, no vi" | sed 's/^/  /'
"$UNIONFS" umount "$container"
echo "  \$ unionfs history busybox:web"
"$UNIONFS" history busybox:web | sed 's/^/  /'
echo "  \$ unionfs run --rm busybox:web sh -c 'cat /etc/motd; ls /srv; which vi || echo no vi'"
"$UNIONFS" run --rm busybox:web sh -c 'cat /etc/motd; ls /srv; which vi || echo no vi' | sed 's/^/  /'
echo "  \$ unionfs save busybox:web -o busybox-web.tar      # an OCI archive"
"$UNIONFS" save busybox:web -o "$demo/busybox-web.tar"
if command -v skopeo >/dev/null; then
    echo "  \$ skopeo inspect oci-archive:busybox-web.tar   (the layers, as another tool sees them)"
    skopeo inspect "oci-archive:$demo/busybox-web.tar" | grep -A3 '"Layers"' | sed 's/^/  /'
fi
"$UNIONFS" rm "$container" && container=

echo
echo "Done: the temporary files in $demo are removed. busybox:demo and busybox:web stay in"
echo "the default store: try  .venv/bin/unionfs run --rm busybox:web cat /etc/motd"
echo "(.venv/bin/unionfs rmi busybox:web busybox:demo  removes them)."
