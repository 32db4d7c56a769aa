#!/usr/bin/env bash
# make bench, section "raft-grpc": etcd's gRPC API on a 3-member dsys-raft
# cluster (dsys-raft cluster) and on a 3-member etcd 3.4 cluster, both on
# this machine, both fsyncing every commit, all members pinned to the
# server CPU, one gRPC client on the load CPU for both: h2load (nghttp2's
# HTTP/2 load generator) posting a framed protobuf request to the method's
# path, one call at a time per connection, as a grpc-go client per
# connection does.
#
# Cases (each BENCH_ROUNDS rounds, order reversed every other round):
#   put-cN     /etcdserverpb.KV/Put of a 1 KiB value to one key, N
#              connections (1, 100, 1000), to member 1 (leader or
#              follower: both forward to the leader, as etcd does)
#   range-cN   /etcdserverpb.KV/Range of that key, linearizable (N 100)
#   perf-L     etcdctl check perf --load L for each L of
#              BENCH_CHECK_PERF_LOADS (default "s m l xl"; 60 s each;
#              BENCH_CHECK_PERF=0 leaves them out): pass or fail, its writes/s
#              (issue 21's bar: dsys-raft passes l)
# h2load prints no percentiles: the latency column is its mean (mean_us).
# The bars of issue 21 (ratios of medians, shown, not enforced here):
#   dsys-raft/etcd put rps >= 3 at c100 and c1000, range rps >= 2.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/bench/etcd.sh
. "$here/etcd.sh"
bench_init raft-grpc || exit 1
bench_need h2load etcd etcdctl || exit 1
if ! command -v dsys-raft >/dev/null 2>&1; then
	bench_skip "dsys-raft: not built yet"
	bench_finish
	exit
fi
export DSYS_LOG_LEVEL=warn ETCDCTL_API=3
BENCH_COLUMNS=${BENCH_COLUMNS_GRPC:-rps mean_us cpu_us_per_req server_cpu_pct rss_kib}
BENCH_RATIOS=${BENCH_RATIOS_GRPC:-rps mean_us cpu_us_per_req}
servers=()

rdir=$(bench_dir raft-data)
bench_start dsys-raft 0 "$(command -v dsys-raft)" cluster --nodes 3 --data-dir "$rdir" && servers+=(dsys-raft)

# etcd: three members under one shell (tests/bench/etcd.sh), so the
# section's CPU sampling sees the whole cluster as one process tree
bench_etcd3_tree && servers+=(etcd)

# The framed requests: PutRequest{key=1, value=2}, RangeRequest{key=1}.
/usr/bin/python3 - "$BENCH_TMP" <<'PY'
import struct, sys
def varint(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7f | 0x80]); n >>= 7
    return out + bytes([n])
def field(num, data): return varint(num << 3 | 2) + varint(len(data)) + data
def frame(m): return b"\0" + struct.pack(">I", len(m)) + m
open(sys.argv[1] + "/put.bin", "wb").write(frame(field(1, b"bench-key") + field(2, b"x" * 1024)))
open(sys.argv[1] + "/range.bin", "wb").write(frame(field(1, b"bench-key")))
PY

# Each must take a put through gRPC (so a leader is there) before it is measured.
for s in "${servers[@]}"; do
	ok=
	for ((i = 0; i < 100; i++)); do
		out=$(etcdctl --endpoints "127.0.0.1:${BENCH_PORT[$s]}" --command-timeout 2s put bench-key probe 2>&1)
		[ "$out" = OK ] && { ok=1; break; }
		sleep 0.1
	done
	[ -n "$ok" ] || { bench_fail "$s: no put answered: '$out'; left out"; bench_stop "$s"; servers=("${servers[@]/$s/}"); }
done
read -r -a servers <<<"${servers[*]}"

# h2load's "finished in ..., R req/s" and "time for request: min max mean"
h2load_parse() {
	local line
	line=$(awk '
		function us(v) {
			if (v ~ /us$/) return v + 0
			if (v ~ /ms$/) return v * 1000
			if (v ~ /s$/) return v * 1000000
			return v + 0
		}
		/^finished in/ { rps = $4 }
		/^requests:/ { done = $6; ok = $8 }
		/^time for request:/ { mean = us($6) }
		END { printf "%s %d %d %d\n", (rps == "" ? 0 : rps), mean, done, ok }' "$1") || return 1
	read -r H_RPS H_MEAN_US H_DONE H_OK <<<"$line"
	[ "$H_OK" -gt 0 ]
}

# grpc_load CASE NAME ROUND METHOD BODY CONNS
grpc_load() {
	local case=$1 name=$2 round=$3 method=$4 body=$5 conns=$6 url
	url="http://127.0.0.1:${BENCH_PORT[$name]}/etcdserverpb.KV/$method"
	local args=(h2load -t1 -c "$conns" -m1 -H 'content-type: application/grpc' -H 'te: trailers'
		-d "$BENCH_TMP/$body")
	bench_load "${args[@]}" -D "${BENCH_WARMUP%s}" "$url" || {
		bench_fail "$case $name: warm-up failed: $(tail -3 "$BENCH_OUT.err")"; return 1; }
	bench_measure "$name" "${args[@]}" -D "${BENCH_DURATION%s}" "$url"
	if ! h2load_parse "$BENCH_OUT"; then
		bench_fail "$case $name: h2load counted no answers: $(tail -3 "$BENCH_OUT")"
		return 1
	fi
	local cpu_us busy
	read -r cpu_us busy < <(awk -v c="$BENCH_SERVER_CPU_S" -v w="$BENCH_WALL_S" -v n="$H_DONE" \
		'BEGIN { printf "%.2f %.0f\n", c * 1e6 / n, (w > 0 ? c * 100 / w : 0) }')
	bench_record "$case" "$name" "$round" rps="$H_RPS" mean_us="$H_MEAN_US" requests="$H_DONE" \
		errors=$((H_DONE - H_OK)) cpu_us_per_req="$cpu_us" server_cpu_pct="$busy" rss_kib="$BENCH_RSS_KIB"
	bench_log "$(printf '%-9s round %s %-10s %9.0f req/s  mean %7s us  cpu %6s us/req (busy %3s%%)' \
		"$case" "$round" "$name" "$H_RPS" "$H_MEAN_US" "$cpu_us" "$busy")"
}

# check perf: its verdict (1 pass, 0 fail) and the writes/s it reports
check_perf() {
	local case=$1 name=$2 round=$3 load=$4 pass wps
	bench_measure "$name" etcdctl --endpoints "127.0.0.1:${BENCH_PORT[$name]}" check perf --load "$load"
	pass=$(grep -c '^PASS: Throughput\|^PASS$' "$BENCH_OUT")
	grep -q '^FAIL' "$BENCH_OUT" && pass=0
	wps=$(sed -n 's/.*Throughput \(is\|too low:\) \([0-9.]*\) writes\/s.*/\2/p' "$BENCH_OUT" | head -1)
	bench_record "$case" "$name" "$round" pass="$([ "$pass" -gt 0 ] && echo 1 || echo 0)" rps="${wps:-0}"
	# its verdict lines, not its progress bar
	bench_log "$case $name: $(tr '\r' '\n' <"$BENCH_OUT" | grep -E '^(PASS|FAIL|Slowest|Stddev)' | tr '\n' ' ')"
}

for c in 1 100 1000; do
	bench_rounds "put-c$c" "${servers[*]}" grpc_load Put put.bin "$c"
done
bench_rounds range-c100 "${servers[*]}" grpc_load Range range.bin 100
if [ "${BENCH_CHECK_PERF:-1}" = 1 ]; then
	for load in ${BENCH_CHECK_PERF_LOADS:-s m l xl}; do
		BENCH_ROUNDS=1 bench_rounds "perf-$load" "${servers[*]}" check_perf "$load"
	done
fi
bench_stop_all
echo
bench_report etcd
bench_finish
