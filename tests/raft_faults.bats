#!/usr/bin/env bats
# dsys-raft under faults, on real processes: 3- and 5-member clusters on
# loopback, clients (tests/raft_load.py) putting, reading and
# compare-and-swapping through etcd's JSON gateway while members are
# killed, frozen, restarted with a cut log or a file-size limit.  Every
# run's history goes through lib/raft/linearize (tests/bench/lin_check):
# no violation, and the final reads of every key show that no acknowledged
# write was lost.

load helpers
load etcd_helpers
load raft_helpers
bats_require_minimum_version 1.5.0

setup() {
	raft_setup CLI CHECK
	RAFT_ARGS=(--request-timeout 2s --snapshot-count 300)
}

teardown() {
	raft_teardown
	dsys_teardown
}

# load_start, load_stop, put_ok, caught_up: tests/raft_helpers.bash

@test "raft faults: kill -9 of the leader under load, and its restart, keep the history linearizable" {
	raft_cluster 3
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	load_start
	sleep 2
	raft_kill "$lead"
	new=$(raft_wait_leader)
	[ "$new" -ne "$lead" ]
	put_ok after-kill 1
	sleep 1.5
	raft_start "$lead"
	caught_up "$lead" after-kill 1
	sleep 1
	load_stop
}

@test "raft faults: kill -9 of a follower under load, and its restart, keep the history linearizable" {
	raft_cluster 3
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 3))
	load_start
	sleep 2
	raft_kill "$f"
	put_ok while-down 1
	sleep 1.5
	raft_start "$f"
	caught_up "$f" while-down 1
	sleep 1
	load_stop
	run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[lead]}/health"
}

@test "raft faults: kill -9 of a majority stops writes; restarted, it serves every acknowledged write" {
	raft_cluster 3
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	load_start
	sleep 2
	a=$(((lead + 1) % 3)) b=$(((lead + 2) % 3))
	raft_kill "$a"
	raft_kill "$b"
	# one member alone commits nothing: a write times out
	run "$CLI" -t 3000 "etcd://127.0.0.1:${RAFT_CPORTS[lead]}" put lonely 1
	[ "$status" -ne 0 ]
	sleep 1
	raft_start "$a"
	raft_start "$b"
	raft_wait_leader >/dev/null
	put_ok back 1
	sleep 2
	load_stop
	caught_up "$a" back 1
	caught_up "$b" back 1
}

@test "raft faults: a leader frozen past the election timeout under load (SIGSTOP, SIGCONT) keeps the history linearizable" {
	raft_cluster 3
	raft_start_all >/dev/null
	old=$(raft_wait_leader)
	load_start
	sleep 2
	kill -STOP "${RAFT_PIDS[old]}"
	frozen=${RAFT_PIDS[old]}
	RAFT_PIDS[old]=
	new=$(raft_wait_leader)
	[ "$new" -ne "$old" ]
	# through the new leader: a client that tries the frozen member first
	# waits out its timeout on every try
	put_ok while-frozen 1 "etcd://127.0.0.1:${RAFT_CPORTS[new]}"
	sleep 1.5
	kill -CONT "$frozen"
	RAFT_PIDS[old]=$frozen
	caught_up "$old" while-frozen 1
	sleep 1
	load_stop
	for ((k = 0; k < 50; k++)); do
		lead=$(curl -s -m 1 "http://127.0.0.1:${RAFT_CPORTS[old]}/health" | jq -r .leader)
		if [[ $lead != "$((old + 1))" && $lead != 0 ]]; then break; fi
		sleep 0.1
	done
	[ "$lead" = $((new + 1)) ]
}

@test "raft faults: a 5-member cluster loses its leader and a follower under load and stays available and linearizable" {
	raft_cluster 5
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 5))
	LOAD_CLIENTS=5 load_start
	sleep 2
	raft_kill "$lead"
	raft_kill "$f"
	new=$(raft_wait_leader)
	[ "$new" -ne "$lead" ]
	put_ok two-down 1
	sleep 1.5
	raft_start "$lead"
	raft_start "$f"
	caught_up "$lead" two-down 1
	caught_up "$f" two-down 1
	sleep 1
	load_stop
}

# The one fault the log cannot tell from a crash: its synced tail cut.  A
# write acknowledged by the leader and one follower (the third member is
# down) is cut from that follower's log; with the leader gone, the
# follower and the third member together hold a majority but not the
# write.  Electing a leader from them would serve a store without an
# acknowledged write, so the follower abstains until a leader that has
# the write catches it up.
@test "raft faults: a member whose WAL lost an acknowledged write's tail abstains from elections until caught up" {
	raft_cluster 3
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 3)) t=$(((lead + 2) % 3))
	raft_kill "$t"
	put_ok before 1
	run -0 "$CLI" -t 3000 "$RAFT_URL" put acked-cut yes
	caught_up "$f" acked-cut yes
	raft_kill "$lead"
	raft_kill "$f"
	log="$RAFT_DIR/n$((f + 1))/wal/log"
	# cut the log inside the record that holds the write (and all after it):
	# the key is there as itself (a gRPC put's binary form) or in base64
	# (a gateway put's JSON)
	at=$("$DSYS_PY" -c 'import sys; d=open(sys.argv[1],"rb").read(); i=max(d.rfind(k.encode()) for k in sys.argv[2:]); print(i-2 if i >= 2 else "")' "$log" acked-cut "$(b64 acked-cut)")
	[ -n "$at" ]
	truncate -s "$at" "$log"
	raft_start "$f"
	raft_start "$t"
	grep -q 'not voting until a leader catches this member up' "$RAFT_DIR/n$((f + 1)).err"
	run -0 curl -s "http://127.0.0.1:${RAFT_CPORTS[f]}/health"
	[[ "$output" == *'"recovering"'* ]]
	# two of three members are up, yet no leader may be elected without the write
	sleep 2
	for m in "$f" "$t"; do
		run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${RAFT_CPORTS[m]}/health"
		assert_output 503
	done
	# the old leader back: a leader with the write, and the follower caught up
	raft_start "$lead"
	raft_wait_leader >/dev/null
	run -0 "$CLI" -t 3000 "$RAFT_URL" get acked-cut
	[ "$(field "$output" '["kvs"][0]["value"]')" = '"yes"' ]
	caught_up "$f" acked-cut yes
	for ((k = 0; k < 50; k++)); do
		grep -q 'voting again' "$RAFT_DIR/n$((f + 1)).err" && break
		sleep 0.1
	done
	grep -q 'voting again' "$RAFT_DIR/n$((f + 1)).err"
	[ ! -e "$RAFT_DIR/n$((f + 1))/wal/cut" ]
}

@test "raft faults: a follower restarted with a cut and corrupted WAL tail under load recovers and the history stays linearizable" {
	RAFT_ARGS=(--request-timeout 2s --snapshot-count 0)   # a log long enough to cut 3000 bytes from
	raft_cluster 3
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 3))
	load_start
	log="$RAFT_DIR/n$((f + 1))/wal/log"
	# until the load has logged enough (a busy machine's 2 s may not: the
	# commit index alone no longer adds a record)
	sleep 2
	for ((k = 0; k < 100; k++)); do
		[ "$(stat -c %s "$log")" -gt 8192 ] && break
		sleep 0.1
	done
	raft_kill "$f"
	size=$(stat -c %s "$log")
	[ "$size" -gt 4096 ]
	# the last 3000 bytes: cut off 1000, scramble the rest
	truncate -s $((size - 1000)) "$log"
	head -c 2000 /dev/urandom | dd of="$log" bs=1 seek=$((size - 3000)) conv=notrunc 2>/dev/null
	put_ok while-cut 1
	raft_start "$f"
	grep -q 'dropping a torn record' "$RAFT_DIR/n$((f + 1)).err"
	caught_up "$f" while-cut 1
	sleep 1
	load_stop
	# the leader rewound its probe past what the follower lost, and the
	# follower votes again
	for ((k = 0; k < 50; k++)); do
		grep -q 'voting again' "$RAFT_DIR/n$((f + 1)).err" && break
		sleep 0.1
	done
	grep -q 'voting again' "$RAFT_DIR/n$((f + 1)).err"
}

# A disk that refuses writes, without root: a file-size limit (ulimit -f,
# SIGXFSZ ignored by the node) makes the log's write fail with EFBIG, as
# ENOSPC or EIO would.  The member must stop rather than go on with a log
# it could not write, and come back from what is on disk.
@test "raft faults: a member whose log write fails (ulimit -f: EFBIG) stops with exit 3, and restarted catches up" {
	raft_cluster 3
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 3))
	raft_kill "$f"
	RAFT_ULIMIT_F=64 raft_start "$f"   # 64 KiB of log
	load_start
	st=0
	for ((k = 0; k < 300; k++)); do
		kill -0 "${RAFT_PIDS[f]}" 2>/dev/null || break
		sleep 0.1
	done
	wait "${RAFT_PIDS[f]}" || st=$?
	RAFT_PIDS[f]=
	[ "$st" -eq 3 ]
	grep -q 'File too large' "$RAFT_DIR/n$((f + 1)).err"
	grep -q 'failed to write or sync' "$RAFT_DIR/n$((f + 1)).err"
	put_ok after-efbig 1
	raft_start "$f"
	caught_up "$f" after-efbig 1
	sleep 1
	load_stop
}

@test "raft faults: lin_check passes a linearizable history and names the op of one that lost an acknowledged write" {
	h=$(dsys_tmp h)
	# c0 puts 5 and is told so; c1 later reads 5, then CAS 5->6 succeeds, a read sees 6
	cat >"$h/good" <<'HIST'
{"client":0,"kind":"put","key":1,"arg0":5,"arg1":0,"call":10,"ret":20,"ok":true,"value":0}
{"client":1,"kind":"get","key":1,"arg0":0,"arg1":0,"call":30,"ret":40,"ok":true,"value":5}
{"client":1,"kind":"cas","key":1,"arg0":5,"arg1":6,"call":50,"ret":60,"ok":true,"value":0}
{"client":0,"kind":"put","key":2,"arg0":9,"arg1":0,"call":55,"ret":null}
{"client":2,"kind":"get","key":1,"arg0":0,"arg1":0,"call":70,"ret":80,"ok":true,"value":6}
HIST
	run -0 "$CHECK" "$h/good"
	[ "$(jq -r .verdict <<<"$output")" = ok ]
	# the acknowledged put of 7 is gone: a later read still sees 6
	sed '$d' "$h/good" >"$h/bad"
	cat >>"$h/bad" <<'HIST'
{"client":0,"kind":"put","key":1,"arg0":7,"arg1":0,"call":70,"ret":75,"ok":true,"value":0}
{"client":2,"kind":"get","key":1,"arg0":0,"arg1":0,"call":80,"ret":90,"ok":true,"value":6}
HIST
	run -1 "$CHECK" "$h/bad"
	[ "$(jq -r .verdict <<<"$output")" = violation ]
	[[ "$(jq -r .desc <<<"$output")" == *get* ]]
	run -2 "$CHECK" /dev/stdin <<<'{"kind":"frob"}'
	run -2 "$CHECK" /dev/stdin <<<'not json'
}

# snap_puts FROM TO: puts sK=K through the cluster, each acknowledged.
snap_puts() {
	local m
	for ((m = $1; m <= $2; m++)); do
		"$CLI" -t 3000 "$RAFT_URL" put "s$m" "$m" >/dev/null || { echo "put s$m failed" >&2; return 1; }
	done
}

@test "raft snapshots: every --snapshot-count entries the store is snapshotted and the log cut behind it; a restart serves it all" {
	RAFT_ARGS+=(--snapshot-count 40)
	raft_cluster 3
	raft_start_all >/dev/null
	snap_puts 1 150
	for m in 0 1 2; do
		[ -s "$RAFT_DIR/n$((m + 1))/snap" ]
		run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[m]}/metrics"
		idx=$(awk '$1 == "raft_snapshot_index" {print $2}' <<<"$output")
		[ "${idx%.*}" -ge 120 ]
	done
	grep -q 'log rewritten from there' "$RAFT_DIR/n1.err"
	# the log holds only what follows the last snapshot: far less than 150 puts
	size=$(stat -c %s "$RAFT_DIR/n1/wal/log")
	[ "$size" -lt 6000 ]
	run -0 "$CLI" "$RAFT_URL" get s150
	rev=$(field "$output" '["revision"]')
	for m in 0 1 2; do stop_server "${RAFT_PIDS[m]}"; RAFT_PIDS[m]=; done
	raft_start_all >/dev/null
	run -0 "$CLI" "$RAFT_URL" get s prefix
	[ "$(field "$output" '["count"]')" = 150 ]
	[ "$(field "$output" '["revision"]')" = "$rev" ]
	run -0 "$CLI" "$RAFT_URL" get s77
	[ "$(field "$output" '["kvs"][0]["value"]')" = '"77"' ]
}

@test "raft snapshots: members take their first snapshot at staggered indexes (member i waits (i - 1) eighths of --snapshot-count more)" {
	RAFT_ARGS+=(--snapshot-count 160)
	raft_cluster 3
	raft_start_all >/dev/null
	# about 170 entries: past member 1's 160, short of member 2's 180 and 3's 200
	snap_puts 1 165
	local m k idx
	for ((k = 0; k < 100; k++)); do
		run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[0]}/metrics"
		idx=$(awk '$1 == "raft_snapshot_index" {print $2}' <<<"$output")
		[ "${idx%.*}" -gt 0 ] && break
		sleep 0.1
	done
	[ "${idx%.*}" -ge 160 ]
	for m in 1 2; do
		run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[m]}/metrics"
		idx=$(awk '$1 == "raft_snapshot_index" {print $2}' <<<"$output")
		[ "${idx%.*}" = 0 ]
	done
	# and past 200 entries every member has one
	snap_puts 166 200
	for m in 1 2; do
		for ((k = 0; k < 100; k++)); do
			run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[m]}/metrics"
			idx=$(awk '$1 == "raft_snapshot_index" {print $2}' <<<"$output")
			[ "${idx%.*}" -gt 0 ] && break
			sleep 0.1
		done
		[ "${idx%.*}" -ge $((160 + m * 20)) ]
	done
}

@test "raft snapshots: a wiped follower is caught up by InstallSnapshot, under load, and the history stays linearizable" {
	RAFT_ARGS+=(--snapshot-count 50)
	raft_cluster 3
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 3))
	snap_puts 1 120
	raft_kill "$f"
	rm -rf "$RAFT_DIR/n$((f + 1))"
	load_start
	snap_puts 121 200
	RAFT_ARGS+=(--initial-cluster-state existing)
	raft_start "$f"
	caught_up "$f" s200 200
	grep -q 'installed a snapshot at index' "$RAFT_DIR/n$((f + 1)).err"
	# empty in a running cluster: it voted for nobody until caught up
	grep -q 'not voting until a leader catches this member up' "$RAFT_DIR/n$((f + 1)).err"
	for ((k = 0; k < 50; k++)); do
		grep -q 'voting again' "$RAFT_DIR/n$((f + 1)).err" && break
		sleep 0.1
	done
	grep -q 'voting again' "$RAFT_DIR/n$((f + 1)).err"
	[ ! -e "$RAFT_DIR/n$((f + 1))/wal/cut" ]
	caught_up "$f" s1 1
	sleep 1
	load_stop
	# it restarts from the snapshot it was sent
	stop_server "${RAFT_PIDS[f]}"
	RAFT_PIDS[f]=
	raft_start "$f"
	run -0 post "${RAFT_CPORTS[f]}" /v3/kv/range "{\"key\":\"$(b64 s)\",\"range_end\":\"$(b64 t)\",\"serializable\":true,\"count_only\":true}"
	[ "$(jq -r .count <<<"$output")" = 200 ]
}

@test "raft snapshots: a damaged snapshot file refuses to start, naming it" {
	RAFT_ARGS+=(--snapshot-count 20)
	raft_cluster 1
	raft_start_all >/dev/null
	snap_puts 1 30
	raft_kill 0
	[ -s "$RAFT_DIR/n1/snap" ]
	printf '\xff' | dd of="$RAFT_DIR/n1/snap" bs=1 seek=60 conv=notrunc 2>/dev/null
	run --separate-stderr dsys-raft node --name n1 --data-dir "$RAFT_DIR/n1" \
		--listen-client "127.0.0.1:${RAFT_CPORTS[0]}" --initial-cluster "$RAFT_INITIAL"
	assert_failure 1
	[[ "$stderr" == *"/snap' is damaged"* ]]
	rm "$RAFT_DIR/n1/snap"
	run --separate-stderr dsys-raft node --name n1 --data-dir "$RAFT_DIR/n1" \
		--listen-client "127.0.0.1:${RAFT_CPORTS[0]}" --initial-cluster "$RAFT_INITIAL"
	assert_failure 1
	[[ "$stderr" == *"/snap' is missing"* ]]
}

@test "raft snapshots: a snapshot larger than a peer frame's slice goes in chunks and a wiped follower rebuilds from it" {
	RAFT_ARGS+=(--snapshot-count 30)
	raft_cluster 3
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 3))
	big=$(head -c 15000 /dev/zero | tr '\0' x)
	for m in $(seq 1 200); do
		"$CLI" -t 5000 "$RAFT_URL" put "big$m" "$m$big" >/dev/null || fail "put big$m"
	done
	raft_kill "$f"
	rm -rf "$RAFT_DIR/n$((f + 1))"
	raft_start "$f"
	caught_up "$f" big1 "1$big"
	caught_up "$f" big200 "200$big"
	run grep -h 'snapshot of [0-9]* bytes sent to' "$RAFT_DIR"/n*.err
	assert_output --regexp "sent to $((f + 1)) in ([3-9]|[1-9][0-9]+) chunks"
	grep -q 'installed a snapshot at index' "$RAFT_DIR/n$((f + 1)).err"
}
