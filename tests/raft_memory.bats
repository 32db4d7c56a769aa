#!/usr/bin/env bats
# dsys-raft's memory, measured from /proc: what a member holds is the log
# since its last snapshot and the revisions since the last compaction
# (dsys-raft(1), MEMORY); once both are gone its resident size comes back
# down.  Bounds are generous (several times what an idle member takes)
# and no timing is measured.

load helpers
load etcd_helpers
load raft_helpers
bats_require_minimum_version 1.5.0

setup() {
	[ -z "${DSYS_SAN:-}" ] || skip "a sanitizer's allocator keeps what it frees ($DSYS_SAN)"
	raft_setup
}

teardown() {
	raft_teardown
	dsys_teardown
}

# rss_kib I: member I's resident size in KiB
rss_kib() { awk '$1 == "VmRSS:" {print $2}' "/proc/${RAFT_PIDS[$1]}/status"; }

# drop_all I: through member I, delete every big* key, compact at that
# revision (rev), and write enough small keys for a snapshot after it on
# every member (--snapshot-count 20); each member has them all
drop_all() {
	local k m
	run -0 post "${RAFT_CPORTS[$1]}" /v3/kv/deleterange "{\"key\":\"$(b64 big)\",\"range_end\":\"$(b64 bih)\"}"
	rev=$(jq -r .header.revision <<<"$output")
	run -0 post "${RAFT_CPORTS[$1]}" /v3/kv/compaction "{\"revision\":\"$rev\"}"
	for ((k = 0; k < 60; k++)); do
		run -0 post "${RAFT_CPORTS[$1]}" /v3/kv/put "{\"key\":\"$(b64 "small$k")\",\"value\":\"$(b64 x)\"}"
	done
	for m in 0 1 2; do
		caught_up "$m" small59 x || return 1
	done
}

@test "raft memory: after 60 MiB of values are deleted and compacted and the log is snapshotted, each member's RSS is back under 48 MiB" {
	RAFT_ARGS+=(--snapshot-count 20)
	raft_cluster 3
	raft_start_all >/dev/null
	big_txns 160 big
	for m in 0 1 2; do
		caught_up "$m" big159-23 "$(head -c 16384 /dev/zero | tr '\0' v)"
	done
	# the store holds 60 MiB of values on each member: the measure can tell
	for m in 0 1 2; do
		kib=$(rss_kib "$m")
		echo "member $m holding the store: $kib KiB" >&3
		[ "$kib" -gt 61440 ]
	done
	drop_all 0
	for m in 0 1 2; do
		run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[m]}/metrics"
		[ "$(awk '$1 == "raft_kv_bytes" {print $2}' <<<"$output")" -lt 10000 ]
		idx=$(awk '$1 == "raft_snapshot_index" {print $2}' <<<"$output")
		[ "${idx%.*}" -gt "$rev" ]
	done
	for m in 0 1 2; do
		kib=$(rss_kib "$m")
		echo "member $m after: $kib KiB" >&3
		[ "$kib" -lt 49152 ]
	done
}

@test "raft memory: a follower that installed a 60 MiB snapshot gives it back once a later snapshot of its own replaces it" {
	RAFT_ARGS+=(--snapshot-count 20)
	raft_cluster 3
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 3))
	raft_kill "$f"
	rm -rf "$RAFT_DIR/n$((f + 1))"
	big_txns 160 big "$lead"
	RAFT_ARGS+=(--initial-cluster-state existing)
	raft_start "$f"
	caught_up "$f" big159-23 "$(head -c 16384 /dev/zero | tr '\0' v)"
	grep -q 'installed a snapshot at index' "$RAFT_DIR/n$((f + 1)).err"
	drop_all "$lead"
	# its own snapshot after the compaction replaced the installed one
	run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[f]}/metrics"
	idx=$(awk '$1 == "raft_snapshot_index" {print $2}' <<<"$output")
	[ "${idx%.*}" -gt "$rev" ]
	grep -q 'log rewritten from there' "$RAFT_DIR/n$((f + 1)).err"
	kib=$(rss_kib "$f")
	echo "the follower after: $kib KiB" >&3
	[ "$kib" -lt 49152 ]
}
