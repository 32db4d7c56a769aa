#!/bin/bash
# Build a variant of dsys-raft for the tests that plant bugs in lib/raft
# (tests/raft.bats, make mutants): RAFT_C stands in for lib/raft/raft.c,
# compiled with the extra flags given, beside bin/dsys-raft/ and linked
# with the build's libdsys.a and the libraries make found (config.mk).
# A libdsys.a built with sanitizers (make check) is linked the same way.
#
#   tests/raft-variant.sh OUT RAFT_C [CFLAG...]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OUT RAFT_C [CFLAG...]" >&2; exit 2; }
out=$1 src=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
build=${DSYS_BUILD:-$root/build}
[ -f "$build/libdsys.a" ] || { echo "$0: $build/libdsys.a is missing: run make first" >&2; exit 2; }
[ -f "$build/config.mk" ] || { echo "$0: $build/config.mk is missing: run make first" >&2; exit 2; }
libs=$(sed -n 's/^PKG_LIBS := //p' "$build/config.mk")
# make check says its flags (DSYS_SAN); run by hand, the library tells.
# grep reads all of nm's output: with -q it would quit at the first
# match, nm would die of SIGPIPE, and pipefail would call it no match.
san=()
if [ -n "${DSYS_SAN:-}" ]; then
	read -ra san <<<"$DSYS_SAN"
elif nm "$build/libdsys.a" 2>/dev/null | grep __asan_ >/dev/null; then
	san=(-fsanitize=address,undefined)
fi
# shellcheck disable=SC2086
exec cc -std=c11 -D_GNU_SOURCE -O2 "${san[@]}" -I"$root/lib" -I"$build/gen/lib" "$@" -o "$out" \
	"$src" "$root"/bin/dsys-raft/*.c "$build/libdsys.a" $libs -lm -lpthread
