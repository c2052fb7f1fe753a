#!/usr/bin/env bash
# The two quick-start commands, and what they need installed.
#   ./dev.sh demo   install what is missing, then run the demo (tools/demo.sh)
#   ./dev.sh test   install what is missing, then lint, type-check and run the test suite
#   ./dev.sh setup  only install (Debian packages, .venv with unionfs, the mount(8) helper)
#   ./dev.sh bench  setup, plus what `python -m bench` alone needs (see bench/README.md)
# Every step is idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)

# Debian packages. fuse3/libfuse3-dev/pkg-config/gcc/python3-dev build and run pyfuse3;
# attr gives getfattr/setfattr; kmod for modprobe overlay; the peers are compared in tests.
APT_PACKAGES=(fuse3 libfuse3-dev pkg-config gcc python3-dev python3-venv attr kmod
              libc6-dev   # libc.a: tests/runtime/probes/*.c are built static for busybox
              patch e2fsprogs   # patch: third_party/pyfuse3; e2fsprogs: lsattr/chattr, mkfs.ext4 in tests
              meson ninja-build curl   # build libfuse 3.17 into .venv (third_party/libfuse)
              util-linux fuse-overlayfs busybox-static strace
              runc   # runc: the reference runtime that tests/runtime/test_runc.py compares with
              crun   # crun: a second --runtime for the container tests (skipped on a hybrid host)
              umoci skopeo   # OCI image tools: tests/store/test_interop.py compares with them
              uidmap   # newuidmap/newgidmap: rootless runs map /etc/subuid ranges (tests/rootless)
              docker-registry openssl   # registry tests: the real registry, token signing
              libcap2-bin   # setcap/getcap: copy-up must keep file capabilities (tests/differential)
              podman   # podman: tests/podman runs it with unionfs as its mount_program
              groff-base   # groff: tests/cli checks that every generated man page renders
              passt   # pasta: a container's own network (--network private, -p), as podman's
              catatonit   # run --init: the init podman runs as PID 1 (static: it runs in any image)
              # the estargz reference reader, built by tests/store/test_reference_reader.py:
              golang-go golang-github-containerd-stargz-snapshotter-dev)

# Only for bench/: the unionfs-fuse peer, mmdebstrap for the real workloads' Debian root.
BENCH_APT_PACKAGES=(unionfs-fuse mmdebstrap)

need_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "dev.sh: installing Debian packages needs root (missing: $*)" >&2
        exit 1
    fi
}

setup_apt() {
    local missing=()
    for p in "${APT_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        need_root "${missing[@]}"
        echo "dev.sh: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

setup_venv() {
    # Debian's interpreter, not a per-user one: an unprivileged user must be able to run it.
    local py=/usr/bin/python3
    [ -x "$py" ] || py=$(command -v python3)
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    local stamp=.venv/.unionfs-installed want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! .venv/bin/python -c 'import unionfs' 2>/dev/null; then
        # libfuse's C build (meson, ninja) runs while pip upgrades itself: neither waits
        # for the other on a fresh machine.
        bash third_party/libfuse/install.sh .venv &
        local libfuse=$!
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null
        wait "$libfuse"
        # pyfuse3 first, patched and built against libfuse 3.17 in .venv/opt
        # (third_party/pyfuse3/README.md): the project's own install then finds its pyfuse3
        # requirement met and keeps it. No build isolation for the project: pyfuse3's
        # build requirements already put a new enough setuptools into .venv (an isolated
        # build would download and install one more, for every fresh setup).
        setup_pyfuse3
        .venv/bin/python -m pip install -q --no-build-isolation -e '.[test]'
        echo "$want" > "$stamp"
    fi
    # Rebuilds only when a patch changed (or someone replaced the patched build).
    setup_pyfuse3
    # After pyfuse3 (which installs stock trio as its dependency): trio with
    # third_party/trio's patches (TLS and idna imported on first use: a faster mount start).
    bash third_party/trio/install.sh .venv/bin/python
}

setup_pyfuse3() {
    bash third_party/libfuse/install.sh .venv
    bash third_party/pyfuse3/install.sh .venv/bin/python \
        "$(bash third_party/libfuse/install.sh --prefix .venv)"
}

setup_mount_helper() {
    # mount(8) runs /sbin/mount.fuse.unionfs for `mount -t fuse.unionfs`: point it at this
    # checkout's CLI by absolute path, so neither mount's reset PATH nor Debian's unrelated
    # /usr/bin/unionfs (unionfs-fuse) can be picked instead.
    [ "$(id -u)" = 0 ] || return 0
    local helper=/usr/sbin/mount.fuse.unionfs
    local body="#!/bin/sh
exec '$ROOT/.venv/bin/unionfs' \"\$@\""
    if [ ! -f "$helper" ] || [ "$(cat "$helper")" != "$body" ]; then
        printf '%s\n' "$body" > "$helper.tmp" && chmod 755 "$helper.tmp" && mv "$helper.tmp" "$helper"
    fi
}

setup_bytecode() {
    # Every `unionfs` command, mount and container start is a new interpreter. Where the
    # environment says PYTHONDONTWRITEBYTECODE, nothing caches the project's own modules
    # and each start compiles them again (about 60 ms of CPU). Compile them once here:
    # only stale ones are redone, and an edited module is still read from its source.
    .venv/bin/python -m compileall -q -j 0 unionfs tests bench tools >/dev/null
}

setup() {
    setup_apt
    setup_venv
    setup_bytecode
    setup_mount_helper
}

case "${1:-}" in
    setup) setup ;;
    bench)
        setup
        setup_apt "${BENCH_APT_PACKAGES[@]}"
        .venv/bin/python -c 'import matplotlib' 2>/dev/null || .venv/bin/python -m pip install -q -e '.[test,bench]'
        ;;
    demo) setup; exec bash tools/demo.sh ;;
    test)
        setup
        .venv/bin/ruff check unionfs tests tools
        .venv/bin/mypy
        shift
        exec .venv/bin/pytest "$@"
        ;;
    *) echo "usage: ./dev.sh demo|test|setup|bench" >&2; exit 2 ;;
esac
