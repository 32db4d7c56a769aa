#!/bin/sh
# make bench's own Debian packages, installed only when missing: the load
# generator and the servers dsys-serve is compared with.  The build and test
# packages are the Makefile's deps target; this adds the rest through the
# same installer (tests/deps.sh: apt-get update first, no service started).
here=$(dirname "$0")
exec "$here/../deps.sh" --quiet wrk nginx-light h2o python3 procps util-linux
