#!/usr/bin/env bash
# make mutants: plant each bug of tests/mutants/*.patch in lib/raft/raft.c,
# build dsys-raft with it, and see whether the simulator alone catches it.
#
# A mutant is one realistic mistake (the patch's first line says which).
# The detectors are simulator sweeps, tried in order until one exits 1
# (a broken safety property, a failed INVARIANT or a linearizability
# violation); the unit tests are not asked (MUTANTS_UNITS=1 adds them,
# reported apart).  Prints one line per mutant and the score by detector;
# exits 1 when a mutant survives every sweep or a patch no longer applies.
#
#   MUTANTS_SEEDS   seeds per sweep (default 1000)
#   MUTANTS_ONLY    a glob of patch names to run (default all)
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${DSYS_BUILD:-$root/build}
libs=$(sed -n 's/^PKG_LIBS := //p' "$build/config.mk")
seeds=${MUTANTS_SEEDS:-1000}
only=${MUTANTS_ONLY:-*}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -f "$build/libdsys.a" ] || { echo "mutants: $build/libdsys.a is missing: run make first" >&2; exit 2; }

# name|arguments: each a sweep of dsys-raft sim, -q, stopping at the first violation
detectors=(
	"sweep|--seed 1 --seeds $seeds --nodes 3,5,7 --ticks 2000 --faults all"
	"no-pre-vote|--seed 1 --seeds $seeds --nodes 3,5,7 --ticks 2000 --no-pre-vote"
	"figure8|--seed 1 --seeds $seeds --nodes 3,5,7 --ticks 2000 --scenario figure8"
	"lease|--seed 1 --seeds $seeds --nodes 3,5,7 --ticks 2000 --lease-reads --faults drop,dup,reorder,delay,partition,crash,disk,membership,transfer"
	"lease-partition|--seed 1 --seeds $seeds --nodes 3,5,7 --scenario leader-partition --lease-reads --faults drop,dup,reorder,delay,partition,crash,disk,membership,transfer"
	"crash-before-send|--seed 1 --seeds $seeds --nodes 3,5,7 --faults drop,crash,disk --scenario crash-before-send"
)

total=0 caught=0 failed=0
declare -A by
for p in "$root"/tests/mutants/$only.patch; do
	name=$(basename "$p" .patch)
	total=$((total + 1))
	src=$tmp/raft.c bin=$tmp/dsys-raft-$name
	if ! patch -s -o "$src" "$root/lib/raft/raft.c" <"$p" >"$tmp/patch.err" 2>&1; then
		printf '%-40s PATCH DOES NOT APPLY: %s\n' "$name" "$(head -1 "$tmp/patch.err")"
		failed=$((failed + 1))
		continue
	fi
	if ! "$root/tests/raft-variant.sh" "$bin" "$src" -DDSYS_VERSION='"mutant"' 2>"$tmp/cc.err"; then
		printf '%-40s DOES NOT BUILD: %s\n' "$name" "$(grep -m1 error "$tmp/cc.err")"
		failed=$((failed + 1))
		continue
	fi
	hit=""
	for d in "${detectors[@]}"; do
		dname=${d%%|*}
		# shellcheck disable=SC2086
		out=$("$bin" sim ${d#*|} -q 2>/dev/null)
		rc=$?
		if [ "$rc" -eq 1 ]; then
			seed=$(printf '%s\n' "$out" | jq -r '.seed' | head -1)
			what=$(printf '%s\n' "$out" | jq -r '.invariant' | head -1 | cut -c1-70)
			hit="$dname (seed $seed: $what)"
			by[$dname]=$((${by[$dname]:-0} + 1))
			break
		fi
	done
	units=""
	if [ "${MUTANTS_UNITS:-0}" = 1 ]; then
		units=" units:survive"
		for t in test_raft test_raft_sim; do
			cc -std=c11 -D_GNU_SOURCE -O1 -I"$root/lib" -I"$root/tests/unit" -o "$tmp/$t" \
				"$root/tests/unit/$t.c" "$src" "$build/libdsys.a" $libs -lm -lpthread 2>/dev/null &&
				! "$tmp/$t" >/dev/null 2>&1 && { units=" units:caught($t)"; break; }
		done
	fi
	if [ -n "$hit" ]; then
		caught=$((caught + 1))
		printf '%-40s caught by %s%s\n' "$name" "$hit" "$units"
	else
		printf '%-40s SURVIVES every sweep%s\n' "$name" "$units"
	fi
done
printf 'mutants: %d of %d caught by the simulator' "$caught" "$total"
for d in "${detectors[@]}"; do
	printf ', %s %d' "${d%%|*}" "${by[${d%%|*}]:-0}"
done
printf '\n'
[ "$caught" -eq "$total" ] && [ "$failed" -eq 0 ]
