#!/usr/bin/env bash
# make bench, section "raft-node": puts through etcd's JSON gateway into a
# 3-member dsys-raft cluster (dsys-raft cluster) and into a 3-member etcd
# 3.4 cluster, both on this machine, both fsyncing every commit, all
# members pinned to the server CPU, wrk on the load CPU.
#
# Cases (each BENCH_ROUNDS rounds, order reversed every other round):
#   c1 c64 c512   wrk -cN POST /v3/kv/put with a 1 KiB value, keys round
#                 robin over 1000, to member 1 (a follower or the leader:
#                 both forward to the leader, as etcd does)
#   range-c64     wrk -c64 POST /v3/kv/range of those keys, linearizable
# The bars of issue 20 (as ratios of medians, shown, not enforced here):
#   dsys-raft/etcd writes/s >= 3 at c64 and c512, with a p99 no higher;
#   linearizable reads/s >= 2.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/bench/etcd.sh
. "$here/etcd.sh"
bench_init raft-node || exit 1
bench_need wrk etcd curl || exit 1
if ! command -v dsys-raft >/dev/null 2>&1; then
	bench_skip "dsys-raft: not built yet"
	bench_finish
	exit
fi
export DSYS_LOG_LEVEL=warn
servers=()

rdir=$(bench_dir raft-data)
bench_start dsys-raft 0 "$(command -v dsys-raft)" cluster --nodes 3 --data-dir "$rdir" && servers+=(dsys-raft)

# etcd: three members under one shell (tests/bench/etcd.sh), so the
# section's CPU sampling sees the whole cluster as one process tree
bench_etcd3_tree && servers+=(etcd)

# Each must take a put (so a leader is there) before it is measured.
for s in "${servers[@]}"; do
	ok=
	for ((i = 0; i < 100; i++)); do
		body=$(curl -s --max-time 2 "http://127.0.0.1:${BENCH_PORT[$s]}/v3/kv/put" -d '{"key":"cHJvYmU=","value":"MQ=="}')
		[[ $body == *'"revision"'* ]] && { ok=1; break; }
		sleep 0.1
	done
	[ -n "$ok" ] || { bench_fail "$s: no put answered: '$body'; left out"; bench_stop "$s"; servers=("${servers[@]/$s/}"); }
done
read -r -a servers <<<"${servers[*]}"

for c in 1 64 512; do
	bench_rounds "c$c" "${servers[*]}" bench_wrk /v3/kv/put -c"$c" -s "$here/raft_put.lua" -- 1000
done
bench_rounds range-c64 "${servers[*]}" bench_wrk /v3/kv/range -c64 -s "$here/raft_put.lua" -- 1000 range
bench_stop_all
echo
bench_report etcd
bench_finish
