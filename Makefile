# Thin wrappers: dev.sh does the work (a fresh Debian machine may not have make).
.PHONY: demo test setup bench
demo:
	./dev.sh demo
test:
	./dev.sh test
setup:
	./dev.sh setup
bench:
	.venv/bin/python -m bench
