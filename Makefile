# The two commands a new user needs; each installs what it needs first.
#   make run    the service, a local Redis and the ISMG simulator, until Ctrl-C
#   make test   formatting, lint and the whole trial suite

.PHONY: run test test-pypy bench bench-pypy install

install:
	scripts/install

run: install
	.venv/bin/twistd --nodaemon --pidfile= cmppsvc --demo

test:
	scripts/test

bench: install
	.venv/bin/python -m bench.all

# The codec, engine and pipeline benchmarks on Debian's PyPy, as an extra
bench-pypy:
	scripts/bench-pypy

# The whole trial suite on Debian's PyPy
test-pypy:
	scripts/install-pypy
	CMPPSVC_VENV=.venv-pypy scripts/test
