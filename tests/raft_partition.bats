#!/usr/bin/env bats
# dsys-raft under network faults, on real processes: a fault proxy
# (tests/raft_proxy.py) sits on every link between the members of a
# 3-member cluster on loopback -- each member's --initial-cluster names
# the proxy's port for every peer -- and drops or delays one direction of
# one link on command, while tests/raft_load.py clients put, read and
# compare-and-swap through every member.  Every run's history goes through
# lib/raft/linearize (build/bench/lin_check): no violation, and the final
# reads show that no acknowledged write was lost.

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

# link I J MODE: the link from member I to member J (0-based) drops
# ("drop"), delays ("delay MS") or passes ("pass") what I sends to J.
link() {
	local f="$RAFT_PROXY_CTL/$(($1 + 1))-$(($2 + 1))"
	if [[ $3 == pass ]]; then rm -f "$f"; else echo "$3" >"$f.tmp" && mv "$f.tmp" "$f"; fi
}

# health I: member I's /health, one field (leader or term)
health() { curl -s -m 1 "http://127.0.0.1:${RAFT_CPORTS[$1]}/health" | jq -r ".$2"; }

# revision I: member I's store revision (raft_kv_revision)
revision() {
	curl -s -m 2 "http://127.0.0.1:${RAFT_CPORTS[$1]}/metrics" | awk '$1 == "raft_kv_revision" {printf "%d\n", $2}'
}

# names_leader I L: wait until member I names member L (0-based) its leader
names_leader() {
	local k
	for ((k = 0; k < 100; k++)); do
		[ "$(health "$1" leader)" = $(($2 + 1)) ] && return 0
		sleep 0.1
	done
	echo "member $1 names $(health "$1" leader), not $(($2 + 1))" >&2
	return 1
}

# majority_leader: wait until member a names a or b its leader, and b
# names the same one; sets new to it (0-based)
majority_leader() {
	local k
	for ((k = 0; k < 100; k++)); do
		new=$(($(health "$a" leader) - 1))
		[[ $new == "$a" || $new == "$b" ]] && break
		sleep 0.1
	done
	[[ $new == "$a" || $new == "$b" ]] || { echo "members $a and $b elected no leader of their own" >&2; return 1; }
	names_leader "$b" "$new"
}

# cluster_setup: 3 members behind the proxy, a leader, and load
cluster_setup() {
	raft_cluster 3
	raft_proxy
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	a=$(((lead + 1) % 3)) b=$(((lead + 2) % 3))
	load_start
	sleep 1.5
}

# The leader cut off from both followers (both directions): the majority
# elects a leader of its own; the old one, with check-quorum, gives up
# leadership within an election timeout and commits nothing meanwhile.
@test "raft partitions: a leader isolated from the majority under load is replaced, acknowledges no write, and after healing nothing acknowledged is lost" {
	cluster_setup
	for m in "$a" "$b"; do
		link "$lead" "$m" drop
		link "$m" "$lead" drop
	done
	# the majority side elects one of its own
	majority_leader
	put_ok on-majority 1 "etcd://127.0.0.1:${RAFT_CPORTS[new]}"
	# the old leader: no write acknowledged, and it stops calling itself leader
	run "$CLI" -t 2500 "etcd://127.0.0.1:${RAFT_CPORTS[lead]}" put on-minority 1
	[ "$status" -ne 0 ]
	for ((k = 0; k < 50; k++)); do
		[ "$(health "$lead" leader)" != $((lead + 1)) ] && break
		sleep 0.1
	done
	[ "$(health "$lead" leader)" != $((lead + 1)) ]
	run -0 curl -s -m 1 "http://127.0.0.1:${RAFT_CPORTS[lead]}/health"
	assert_output --partial '"health":"false"'
	# healed: the old leader follows the new one and has its write
	for m in "$a" "$b"; do
		link "$lead" "$m" pass
		link "$m" "$lead" pass
	done
	names_leader "$lead" "$new"
	caught_up "$lead" on-majority 1
	sleep 1
	load_stop
	# the write the isolated leader took was never committed: the new
	# leader's log replaced it everywhere
	for m in 0 1 2; do
		run -0 post "${RAFT_CPORTS[m]}" /v3/kv/range "{\"key\":\"$(b64 on-minority)\",\"serializable\":true}"
		[ "$(jq -r '.count // "0"' <<<"$output")" = 0 ]
	done
}

# One direction of one link lost: first the follower hears nothing from
# the leader (its own messages still arrive), then the leader hears
# nothing from the follower.  Pre-vote and check-quorum keep the deaf
# follower from deposing a leader the other follower still hears, so the
# term never moves and writes go on throughout.
@test "raft partitions: one-way partitions between the leader and a follower under load keep the leader, its term and the history" {
	cluster_setup
	term=$(health "$lead" term)
	# the writes go to the leader: a follower that cannot reach it answers
	# "request timed out" (its forward may have arrived), and a write is
	# never sent on after that, so a client on that follower alone waits
	local lead_url="etcd://127.0.0.1:${RAFT_CPORTS[lead]}"
	link "$lead" "$a" drop
	put_ok leader-to-follower-cut 1 "$lead_url"
	sleep 1.5
	put_ok leader-to-follower-cut 2 "$lead_url"
	link "$lead" "$a" pass
	caught_up "$a" leader-to-follower-cut 2
	link "$a" "$lead" drop
	put_ok follower-to-leader-cut 1 "$lead_url"
	sleep 1.5
	put_ok follower-to-leader-cut 2 "$lead_url"
	link "$a" "$lead" pass
	# the leader heard no acknowledgement from it, so sent it no more than
	# its window: it catches up once its answers arrive again
	caught_up "$a" follower-to-leader-cut 2
	sleep 1
	load_stop
	for m in 0 1 2; do
		names_leader "$m" "$lead"
		[ "$(health "$m" term)" = "$term" ]
	done
}

# Every link 100 ms late in both directions (a round trip of 200 ms, well
# under the 500 ms election timeout): slower, but no election, and writes
# still acknowledged.
@test "raft partitions: a 100 ms delay on every link under load keeps the leader and its term, and writes are still acknowledged" {
	cluster_setup
	term=$(health "$lead" term)
	for f in 0 1 2; do
		for t in 0 1 2; do
			if [ "$f" -ne "$t" ]; then link "$f" "$t" "delay 100"; fi
		done
	done
	sleep 0.2
	start=$(date +%s%N)
	put_ok delayed 1
	took=$((($(date +%s%N) - start) / 1000000))
	echo "# a put with 100 ms links: ${took} ms" >&3
	# a commit needs a round trip to a follower: at least 200 ms
	[ "$took" -ge 200 ]
	# the clients' writes go on: the store's revision moves
	sleep 1.5
	before=$(revision "$lead")
	sleep 1.5
	after=$(revision "$lead")
	echo "# revisions in 1.5 s with 100 ms links: $((after - before))" >&3
	[ "$after" -ge $((before + 3)) ]
	for f in 0 1 2; do
		for t in 0 1 2; do
			if [ "$f" -ne "$t" ]; then link "$f" "$t" pass; fi
		done
	done
	caught_up "$a" delayed 1
	load_stop
	for m in 0 1 2; do
		names_leader "$m" "$lead"
		[ "$(health "$m" term)" = "$term" ]
	done
}

# A write the leader proposed and replicated, but whose acknowledgements
# never came back: the followers elect a leader of their own, which
# commits it, and compacts its log past it.  Healed, the old leader is
# sent a snapshot that holds the write; it cannot tell whether its own
# proposal is in it, so the client is answered "request timed out"
# (outcome unknown), and the write is never proposed again, which would
# apply it twice (install_snapshot in node.c).
@test "raft partitions: a write committed behind its old leader's back and covered by the snapshot it is sent is applied once" {
	RAFT_ARGS=(--request-timeout 30s --snapshot-count 20)
	raft_cluster 3
	raft_proxy
	raft_start_all >/dev/null
	lead=$(raft_wait_leader)
	a=$(((lead + 1) % 3)) b=$(((lead + 2) % 3))
	put_ok before 1
	# the followers' answers to the leader are lost; what it sends arrives
	link "$a" "$lead" drop
	link "$b" "$lead" drop
	local out
	out=$(dsys_tmp put)/out
	curl -s -m 40 -X POST "http://127.0.0.1:${RAFT_CPORTS[lead]}/v3/kv/put" \
		-d "{\"key\":\"$(b64 once)\",\"value\":\"$(b64 1)\"}" >"$out" 2>&1 3>&- &
	local put=$!
	# the followers have the write, then elect a leader of their own
	majority_leader
	# the new leader committed the old one's write, once
	caught_up "$new" once 1
	# and compacts its log far past it
	for ((k = 0; k < 60; k++)); do
		put_ok "after$k" 1 "etcd://127.0.0.1:${RAFT_CPORTS[new]}"
	done
	# healed: the old leader is sent a snapshot
	link "$a" "$lead" pass
	link "$b" "$lead" pass
	wait "$put" || :
	cat "$out"
	grep -q "installed a snapshot" "$RAFT_DIR/n$((lead + 1)).err"
	caught_up "$lead" after59 1
	# its client was told the outcome is unknown, not "leader changed" or a success
	grep -q "request timed out" "$out"
	# and the write is there once: version 1
	run -0 post "${RAFT_CPORTS[new]}" /v3/kv/range "{\"key\":\"$(b64 once)\"}"
	[ "$(jq -r '.kvs[0].version' <<<"$output")" = 1 ]
}
