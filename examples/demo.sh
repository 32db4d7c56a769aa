#!/usr/bin/env bash
# make demo: the toolkit working together, one step per program.
#
# Every step prints what it runs on stderr and its JSON results on stdout,
# so `make demo | jq .` reads as a report.  Servers are started on free
# loopback ports in a temporary directory and stopped by PID at the end,
# whatever happens.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${DSYS_BIN:-$here/build/bin}
PATH=$bin:$PATH
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

# Start "$@" in the background and wait for its ready line; sets $listen
# and $pid.  (Not in a $(...) subshell: the server must be our child.)
start() {
	local out=$tmp/ready.${#pids[@]}
	"$@" >"$out" 2>>"$tmp/stderr.log" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do
		if grep -q '"event":"ready"' "$out" 2>/dev/null; then
			listen=$(jq -r .listen <"$out" | head -1)
			return 0
		fi
		sleep 0.05
	done
	echo "demo: $1 did not become ready" >&2
	cat "$tmp/stderr.log" >&2
	return 1
}

say "dsys-serve: an HTTP microservice on a free port"
start dsys-serve --listen 127.0.0.1:0 --threads 1
addr=$listen
echo "{\"event\":\"started\",\"program\":\"dsys-serve\",\"listen\":\"$addr\",\"pid\":$pid}"
run curl -s "http://$addr/hello" >&2; echo >&2
run curl -s "http://$addr/health" >&2; echo >&2
say "its /metrics, in Prometheus text format"
curl -s "http://$addr/metrics" | grep -E '^http_requests_total|^http_connections_open' | head -8 >&2

if command -v dsys-bench >/dev/null; then
	say "dsys-bench: a short load against it, results as JSON"
	run dsys-bench --threads 1 --connections 20 --duration 1s "http://$addr/hello" |
		jq -c '{requests, rps, errors, latency_us: {p50: .latency_us.p50, p99: .latency_us.p99}}'
fi

if command -v dsys-counter >/dev/null; then
	say "dsys-counter: exact counts under concurrency"
	start dsys-counter serve --store mem: --listen 127.0.0.1:0 --threads 1
	caddr=$listen
	echo "{\"event\":\"started\",\"program\":\"dsys-counter\",\"listen\":\"$caddr\",\"pid\":$pid}"
	printf 'alice\nbob\nalice\n' | run dsys-counter incr - --server "http://$caddr"
	run dsys-counter get alice --server "http://$caddr"
fi

if command -v dsys-raft >/dev/null; then
	say "dsys-raft sim: a 5-node cluster under faults, one seed, checked"
	run dsys-raft sim --seed 42 --nodes 5 --faults drop,dup,reorder,delay,partition,crash |
		jq -c '{seed, elections, leader_changes, entries_committed, reads_checked, writes_checked, linearizable, violations}'
fi

say "done: every server stopped"
