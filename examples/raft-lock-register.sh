#!/bin/bash
# raft-lock-register.sh -- dsys-lock and dsys-register on a dsys-raft
# cluster instead of etcd.
#
# dsys-raft serves etcd's v3 JSON API, so every program that takes
# --store etcd://H:P,... works on it unchanged:
#
#   dsys-raft cluster --nodes 3 --data-dir /var/lib/dsys-raft &
#   export DSYS_STORE=etcd://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
#   dsys-lock run nightly-report --nowait -- ./report
#   dsys-register add web --addr 10.0.0.5:8080 --ttl 10s -- ./web
#
# This script starts a 3-node cluster on free ports, runs a job that three
# workers start at once under one dsys-lock (it runs once), registers a
# service instance with dsys-register and discovers it, then shows with
# the dsys-raft client the keys kept in the cluster meanwhile.  Its
# stdout is JSON lines: the job that ran, the instances found, the keys.
set -eu
[ -n "${DSYS_BIN:-}" ] && PATH="$DSYS_BIN:$PATH"
tmp=$(mktemp -d)
cluster=
cleanup() {
	[ -n "$cluster" ] && kill -TERM "$cluster" 2>/dev/null && wait "$cluster" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# 1. the cluster: one ready line per member on stdout
dsys-raft cluster --nodes 3 --data-dir "$tmp/raft" >"$tmp/ready" 2>"$tmp/raft.log" &
cluster=$!
for _ in $(seq 200); do
	[ "$(grep -c '"event":"ready"' "$tmp/ready")" -eq 3 ] && break
	kill -0 "$cluster" 2>/dev/null || { cat "$tmp/raft.log" >&2; exit 1; }
	sleep 0.05
done
endpoints=$(jq -r .listen "$tmp/ready" | paste -sd, -)
export DSYS_RAFT_ENDPOINTS=$endpoints DSYS_STORE="etcd://$endpoints"
# the first write waits for the first leader
dsys-raft put example/started "$(date -u +%FT%TZ)" --timeout 10s >/dev/null

# 2. a job three workers start at once runs on one of them
job() {
	printf '{"job":"report","ran_on":"worker-%s","fence":%s}\n' "$1" "$DSYS_LOCK_FENCE"
	sleep 1
}
export -f job
pids=()
for w in 1 2 3; do
	dsys-lock run report --nowait --conflict-exit-code 0 --ttl 10s -- bash -c 'job "$0"' "$w" 2>/dev/null &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

# 3. an instance registers while its command runs; a client discovers it
dsys-register add web --addr 127.0.0.1:8080 --ttl 5s -- sleep 3 >/dev/null &
reg=$!
for _ in $(seq 100); do
	found=$(dsys-register list web 2>/dev/null) && [ -n "$found" ] && break
	sleep 0.05
done
printf '%s\n' "$found"

# 4. what is kept in the cluster meanwhile, read with its own client
dsys-raft get "" --prefix --keys-only | jq -c '{key}'
wait "$reg"
