# Thin wrappers: dev.sh does the work (a fresh Debian machine may not have make).
.PHONY: demo test setup bench
demo:
	./dev.sh demo
test:
	./dev.sh test
setup:
	./dev.sh setup
# The benchmark: installs the peers and matplotlib (bench/ itself installs nothing), then
# runs the quick mode; BENCH_ARGS="--full --plot" for the full one.
bench:
	./dev.sh setup
	dpkg-query -W unionfs-fuse mergerfs fuse-overlayfs >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse-overlayfs unionfs-fuse mergerfs; }
	.venv/bin/python -c 'import matplotlib' 2>/dev/null || .venv/bin/python -m pip install -q matplotlib
	.venv/bin/python -m bench $(BENCH_ARGS)
