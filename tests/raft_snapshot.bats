#!/usr/bin/env bats
# dsys-raft's snapshots of a large store under load: the store is
# serialized in slices between passes of the member's loop, never in one
# piece, and a snapshot taken while writes go on is exactly the store at
# its index, so a member restarted from it answers every range as the
# others.  Nothing is timed: slices and entries applied meanwhile are
# counts the members log.

load helpers
load etcd_helpers
load raft_helpers
bats_require_minimum_version 1.5.0

setup() {
	raft_setup
	WRITERS=()
}

teardown() {
	local p
	[[ -z ${RAFT_DIR:-} ]] || touch "$RAFT_DIR/writers.stop"
	for p in "${WRITERS[@]}"; do
		kill "$p" 2>/dev/null || :
		wait "$p" 2>/dev/null || :
	done
	raft_teardown
	dsys_teardown
}

# snap_lines I: member I's "serialized" log lines as "INDEX SLICES BYTES MEANWHILE"
snap_lines() {
	grep -o 'snapshot at index [0-9]*: the store serialized in [0-9]* slices[^(]*([0-9]* bytes; [0-9]* entries' \
		"$RAFT_DIR/n$(($1 + 1)).err" | awk '{print $4+0, $9, substr($(NF-3), 2), $(NF-1)}'
}

# writer W I: puts (and now and then a delete) to keys w<W>-<0..49>
# through member I until $RAFT_DIR/writers.stop exists
writer() {
	local i k
	for ((i = 0; ; i++)); do
		[ -e "$RAFT_DIR/writers.stop" ] && return 0
		k=$(b64 "w$1-$((i % 50))")
		if ((i % 7 == 6)); then
			post "${RAFT_CPORTS[$2]}" /v3/kv/deleterange "{\"key\":\"$k\"}" >/dev/null
		else
			post "${RAFT_CPORTS[$2]}" /v3/kv/put "{\"key\":\"$k\",\"value\":\"$(b64 "$i")\"}" >/dev/null
		fi
	done
}

@test "raft snapshot: a 24 MiB store is serialized in slices of --snapshot-slice between loop passes, never in one piece" {
	RAFT_ARGS+=(--snapshot-count 20)
	raft_cluster 3
	raft_start_all >/dev/null
	big_txns 64 big
	for ((k = 0; k < 40; k++)); do
		run -0 post "${RAFT_CPORTS[0]}" /v3/kv/put "{\"key\":\"$(b64 "small$k")\",\"value\":\"$(b64 x)\"}"
	done
	for m in 0 1 2; do
		caught_up "$m" small39 x
	done
	# every member has written a snapshot of the whole 24 MiB (each after
	# its own count of entries: wait for the line)
	for m in 0 1 2; do
		for ((k = 0; k < 100; k++)); do
			snap_lines "$m" | awk '$3 > 25000000 {f = 1} END {exit !f}' && break
			sleep 0.1
		done
		snap_lines "$m" >&3
		run -0 snap_lines "$m"
		# at least one slice per 512 KiB (the default --snapshot-slice is 256K):
		# a store copied in one piece would show 1
		awk '$3 > 25000000 {big = 1} $2 < $3 / 524288 {bad = 1} END {exit !(big && !bad)}' <<<"$output"
		run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[m]}/metrics"
		[ "$(awk '$1 == "raft_snapshot_slices_total" {print $2 + 0}' <<<"$output")" -ge 48 ]
	done
}

@test "raft snapshot: one taken in slices while writes go on is the store at its index: a member restarted from it answers every range as the others" {
	RAFT_ARGS+=(--snapshot-count 20 --snapshot-slice 4K)
	raft_cluster 3
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 3))
	big_txns 24 big "$lead"
	# puts as fast as the leader takes them (so that entries are applied
	# between slices), and deletes now and then
	dsys-bench -t 1 -c 16 -d 120s -m POST -b "{\"key\":\"$(b64 hot)\",\"value\":\"$(b64 v)\"}" \
		"http://127.0.0.1:${RAFT_CPORTS[lead]}/v3/kv/put" >"$RAFT_DIR/bench.out" 2>&1 &
	WRITERS+=($!)
	writer 0 "$lead" &
	WRITERS+=($!)
	# the follower writes snapshots that entries were applied during (the
	# writers go on): once its last two were (DIR/snap holds one of them),
	# it is killed, frozen first so that no other one comes meanwhile
	for ((k = 0; k < 300; k++)); do
		kill -STOP "${RAFT_PIDS[f]}"
		snap_lines "$f" | tail -n 2 | awk '$4 > 0 {n++} END {exit n != 2}' && break
		kill -CONT "${RAFT_PIDS[f]}"
		sleep 0.1
	done
	snap_lines "$f" >&3
	raft_kill "$f"
	# restarted, it takes its snapshot and the log after it
	raft_start "$f"
	idx=$(grep -o 'the store restored from DIR/snap at index [0-9]* ' "$RAFT_DIR/n$((f + 1)).err" | tail -n 1 | awk '{print $8}')
	echo "# restored from the snapshot at $idx" >&3
	[ -n "$idx" ]
	run -0 snap_lines "$f"
	awk -v i="$idx" '$1 == i && $4 > 0 {f = 1} END {exit !f}' <<<"$output"
	touch "$RAFT_DIR/writers.stop"
	kill -INT "${WRITERS[0]}"
	for p in "${WRITERS[@]}"; do
		wait "$p" || :
	done
	WRITERS=()
	echo "# $(tail -c 300 "$RAFT_DIR/bench.out")" >&3
	run -0 post "${RAFT_CPORTS[lead]}" /v3/kv/put "{\"key\":\"$(b64 end)\",\"value\":\"$(b64 x)\"}"
	rev=$(jq -r .header.revision <<<"$output")
	for m in 0 1 2; do
		caught_up "$m" end x
	done
	# the whole store, and its history at a few revisions, the same on
	# every member (keys, values, create and mod revisions, versions)
	for r in 2 $((rev / 3)) $((rev / 2)) $((rev - 1)) "$rev"; do
		body="{\"key\":\"AA==\",\"range_end\":\"AA==\",\"serializable\":true,\"revision\":\"$r\"}"
		want=$(post "${RAFT_CPORTS[lead]}" /v3/kv/range "$body" | jq -S -c '{kvs, count}' | sha256sum)
		for m in 0 1 2; do
			got=$(post "${RAFT_CPORTS[m]}" /v3/kv/range "$body" | jq -S -c '{kvs, count}' | sha256sum)
			[ "$got" = "$want" ]
		done
	done
	run -0 post "${RAFT_CPORTS[f]}" /v3/kv/range "{\"key\":\"AA==\",\"range_end\":\"AA==\",\"serializable\":true,\"count_only\":true}"
	echo "# $output" >&3
	[ "$(jq -r .count <<<"$output")" -gt 24 ]
}
