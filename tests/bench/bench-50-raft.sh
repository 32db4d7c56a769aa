#!/usr/bin/env bash
# make bench, section "raft": the consensus core and its simulator, no I/O.
#
# Cases (each BENCH_ROUNDS rounds, pinned to the load CPU):
#   core   build/bench/raft_core: a 3-node lib/raft cluster in one process,
#          delivery instant, 100-byte entries proposed 512 between Readies;
#          entries committed per second on one core.  The bar: 2M/s.
#   sim    dsys-raft sim over 50 seeds on 3, 5 and 7 nodes with every fault:
#          simulated steps (milliseconds) and seeds per second of wall time
#          on one core, the seconds a 500-seed sweep like make test's would
#          take (bar: 5 min), and the minutes make soak's 200,000 seeds
#          would take spread over this machine's cores.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
BENCH_ROW_LABEL=run
BENCH_COLUMNS="entries_per_s steps_per_s seeds_per_s sweep500_s soak200k_min"
BENCH_RATIOS=""
bench_init raft || exit 1
bench_need jq || exit 1
core_bin=$DSYS_BUILD/bench/raft_core
if [ ! -x "$core_bin" ] || ! command -v dsys-raft >/dev/null 2>&1; then
	bench_skip "raft: not built (expected $core_bin and dsys-raft)"
	exit 0
fi

now() { date +%s.%N; }

core_run() { # CASE NAME ROUND
	bench_load "$core_bin" 5000000 100 512 || { bench_fail "raft_core: $(head -3 "$BENCH_OUT.err")"; return 1; }
	bench_record "$1" "$2" "$3" entries_per_s="$(jq .entries_per_s "$BENCH_OUT")"
}

sim_run() { # CASE NAME ROUND
	local t0 t1 steps
	t0=$(now)
	bench_load dsys-raft sim --seed $((1 + 50 * $3)) --seeds 50 --nodes 3,5,7 --ticks 2000 ||
		{ bench_fail "dsys-raft sim: status $BENCH_RC: $(head -3 "$BENCH_OUT.err")"; return 1; }
	t1=$(now)
	steps=$(jq -s 'map(.steps) | add' "$BENCH_OUT")
	bench_record "$1" "$2" "$3" \
		steps_per_s="$(awk -v s="$steps" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", s / (b - a) }')" \
		seeds_per_s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", 50 / (b - a) }')" \
		sweep500_s="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 10 }')" \
		soak200k_min="$(awk -v a="$t0" -v b="$t1" -v c="$(nproc)" 'BEGIN { printf "%.1f", (b - a) * 4000 / c / 60 }')"
}

bench_rounds core "3-node-100B" core_run
bench_rounds sim "500-seed-sweep" sim_run
bench_report ""
bench_finish
exit
