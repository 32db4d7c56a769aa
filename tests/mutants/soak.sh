#!/usr/bin/env bash
# make soak: a long simulator sweep, not part of make test.
#
# SOAK_SEEDS seeds (default 200000) from SOAK_FIRST (default 1) with every
# fault at 2000 ticks over 3, 5 and 7 nodes, split into SOAK_JOBS ranges
# (default: the number of cores) that run in parallel.  Prints one summary
# JSON line (seeds, seconds, seeds_per_s, lin_unknown: seeds whose
# linearizability check ran out of budget) and, for a violation, the
# command that replays it; exits 1 then.
set -u
first=${SOAK_FIRST:-1}
seeds=${SOAK_SEEDS:-200000}
jobs=${SOAK_JOBS:-$(nproc)}
raft=${DSYS_BIN:+$DSYS_BIN/}dsys-raft
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
t0=$(date +%s.%N)
per=$(((seeds + jobs - 1) / jobs))
per=$(((per + 2) / 3 * 3))
pids=() # ranges start 3k seeds apart: each seed keeps the node count one sweep gives it
for ((j = 0; j < jobs; j++)); do
	s=$((first + j * per))
	n=$((seeds - j * per < per ? seeds - j * per : per))
	[ "$n" -gt 0 ] || break
	"$raft" sim --seed "$s" --seeds "$n" --nodes 3,5,7 --ticks 2000 --faults all >"$tmp/$j.out" 2>"$tmp/$j.err" &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
for f in "$tmp"/*.err; do [ -s "$f" ] && rc=1; done
t1=$(date +%s.%N)
done_seeds=$(cat "$tmp"/*.out | wc -l)
unknown=$(cat "$tmp"/*.out | grep -c '"linearizable":"unknown"')
awk -v n="$done_seeds" -v u="$unknown" -v a="$t0" -v b="$t1" -v j="$jobs" \
	'BEGIN { printf "{\"seeds\":%d,\"jobs\":%d,\"seconds\":%.1f,\"seeds_per_s\":%.0f,\"lin_unknown\":%d}\n", n, j, b - a, n / (b - a), u }'
for f in "$tmp"/*.out; do
	grep '"violations":1' "$f" | while IFS= read -r line; do
		seed=$(printf '%s\n' "$line" | jq -r .seed)
		nodes=$(printf '%s\n' "$line" | jq -r .nodes)
		echo "soak: violation: $(printf '%s\n' "$line" | jq -r .invariant)" >&2
		echo "soak: replay: dsys-raft sim --seed $seed --nodes $nodes --ticks 2000 --faults all" >&2
	done
done
cat "$tmp"/*.err >&2
[ "$rc" -eq 0 ] && [ "$done_seeds" -eq "$seeds" ]
