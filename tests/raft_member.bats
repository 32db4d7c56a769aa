#!/usr/bin/env bats
# dsys-raft membership changes as etcd's users make them (bin/dsys-raft
# node.c "membership"): member add (voter or learner), promote, remove,
# update and list through the JSON gateway and through etcdctl (gRPC);
# members joining with --initial-cluster-state existing, caught up by log
# or snapshot; removals of a follower and of the leader under client load,
# checked for linearizability; restarts after changes.

load helpers
load etcd_helpers
load raft_helpers
bats_require_minimum_version 1.5.0

export ETCDCTL_API=3

setup() {
	raft_setup CLI CHECK
	RAFT_ARGS=(--request-timeout 3s)
}

teardown() {
	raft_teardown
	[[ -n ${ADD_PID:-} ]] && { kill "$ADD_PID" 2>/dev/null; wait "$ADD_PID" 2>/dev/null; }
	dsys_teardown
}

# grow_plan FIRST TOTAL: ports and names for TOTAL members, of which the
# first FIRST make the first cluster (RAFT_FIRST, its --initial-cluster);
# RAFT_INITIAL names them all, as etcdctl member add prints it for the last.
grow_plan() {
	raft_cluster "$2"
	RAFT_FULL=$RAFT_INITIAL
	RAFT_FIRST=$(tr , '\n' <<<"$RAFT_INITIAL" | head -n "$1" | paste -sd,)
}

# start_first: the first cluster's members, with its own --initial-cluster
start_first() {
	local i
	RAFT_INITIAL=$RAFT_FIRST
	for ((i = 0; i < $1; i++)); do raft_start "$i" || return 1; done
	RAFT_INITIAL=$RAFT_FULL
	raft_wait_leader >/dev/null
}

# join I: start member I as one joining the running cluster
join() {
	local saved=("${RAFT_ARGS[@]}")
	RAFT_ARGS+=(--initial-cluster-state existing)
	raft_start "$1"
	local rc=$?
	RAFT_ARGS=("${saved[@]}")
	return $rc
}

# members I: member I's member list; mid I J: the etcd ID of member J (by its peer port) as I lists it
members() { post "${RAFT_CPORTS[$1]}" /v3/cluster/member/list '{}'; }
mid() { members "$1" | jq -r --arg u "http://127.0.0.1:${RAFT_PPORTS[$2]}" '.members[] | select(.peerURLs[0] == $u) | .ID'; }
add() { post "${RAFT_CPORTS[$1]}" /v3/cluster/member/add "{\"peerURLs\":[\"http://127.0.0.1:${RAFT_PPORTS[$2]}\"]${3:+,\"isLearner\":true}}"; }

# gone PID: the process exits by itself within 5 s
gone() {
	local k
	for ((k = 0; k < 50; k++)); do
		kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null; return 0; }
		sleep 0.1
	done
	echo "process $1 is still running" >&2
	return 1
}

@test "raft member: a 1-member cluster grows to 3 by member add and --initial-cluster-state existing, one change at a time, and the data arrives" {
	# a long election timeout: the lone leader keeps leading while its first add waits for the new member
	RAFT_ARGS+=(--election-timeout 3s --snapshot-count 20 --request-timeout 10s)
	grow_plan 1 3
	start_first 1
	for i in $(seq 1 30); do put_ok "g$i" "v$i"; done
	# a voter added to a cluster of one: committed once the new member answers
	add 0 1 >"$RAFT_DIR/add1" &
	ADD_PID=$!
	sleep 0.3
	# one change at a time: a second is refused while the first is pending
	run -0 add 0 2
	[ "$(jq -r .message <<<"$output")" = "etcdserver: unhealthy cluster" ]
	join 1
	wait "$ADD_PID"
	ADD_PID=
	run jq -r '.member.peerURLs[0]' "$RAFT_DIR/add1"
	[ "$output" = "http://127.0.0.1:${RAFT_PPORTS[1]}" ]
	[ "$(jq '.members | length' "$RAFT_DIR/add1")" = 2 ]
	caught_up 1 g30 v30
	grep -q 'joined cluster' "$RAFT_DIR/n2.err"
	# the same peer URL twice: etcd's error
	run -0 add 0 1
	[ "$(jq -r .message <<<"$output")" = "etcdserver: Peer URLs already exists" ]
	# the third: the log was compacted (--snapshot-count 20), so it comes by snapshot
	for i in $(seq 31 60); do put_ok "g$i" "v$i"; done
	run -0 add 1 2
	[ "$(jq '.members | length' <<<"$output")" = 3 ]
	join 2
	caught_up 2 g60 v60
	caught_up 2 g1 v1
	grep -q 'installed a snapshot at index' "$RAFT_DIR/n3.err"
	# every member lists all three, each with the name and client URL it published
	want="n1 http://127.0.0.1:${RAFT_CPORTS[0]},n2 http://127.0.0.1:${RAFT_CPORTS[1]},n3 http://127.0.0.1:${RAFT_CPORTS[2]}"
	for i in 0 1 2; do
		for ((k = 0; k < 50; k++)); do
			got=$(members "$i" | jq -r '[.members[] | "\(.name) \(.clientURLs[0])"] | sort | join(",")')
			[ "$got" = "$want" ] && break
			sleep 0.1
		done
		[ "$got" = "$want" ]
	done
	# the new members vote: without the first, they elect a leader and take writes
	raft_kill 0
	lead=$(raft_wait_leader)
	[ "$lead" -ne 0 ]
	put_ok after-first-gone 1 "etcd://127.0.0.1:${RAFT_CPORTS[1]},127.0.0.1:${RAFT_CPORTS[2]}"
	raft_start 0
	caught_up 0 after-first-gone 1
	# the member that came by snapshot restarts from its own snapshot and log: same id, same members
	stop_server "${RAFT_PIDS[2]}"
	RAFT_PIDS[2]=
	raft_start 2
	put_ok after-restart 1
	caught_up 2 after-restart 1
	caught_up 2 g1 v1
	run -0 members 2
	[ "$(jq -r '[.members[].name] | sort | join(",")' <<<"$output")" = n1,n2,n3 ]
	[ "$(jq -r .header.member_id <<<"$output")" = "$(mid 0 2)" ]
}

@test "raft member: a learner is refused promotion until caught up, then promoted; member update moves a peer URL; all survives a restart" {
	grow_plan 3 4
	start_first 3
	for i in $(seq 1 20); do put_ok "l$i" "v$i"; done
	run -0 add 0 3 learner
	[ "$(jq -r .member.isLearner <<<"$output")" = true ]
	[ "$(jq '[.members[] | select(.isLearner)] | length' <<<"$output")" = 1 ]
	id=$(mid 0 3)
	# not started: not in sync with the leader, so not promoted (etcd's text)
	run -0 post "${RAFT_CPORTS[1]}" /v3/cluster/member/promote "{\"ID\":\"$id\"}"
	[ "$(jq -r .message <<<"$output")" = "etcdserver: can only promote a learner member which is in sync with leader" ]
	# etcd 3.4 allows one learner
	run -0 post "${RAFT_CPORTS[0]}" /v3/cluster/member/add '{"peerURLs":["http://127.0.0.1:1"],"isLearner":true}'
	[ "$(jq -r .message <<<"$output")" = "etcdserver: too many learner members in cluster" ]
	join 3
	caught_up 3 l20 v20
	# caught up: promoted (through a follower, which hands it to the leader)
	for ((k = 0; k < 50; k++)); do
		run post "${RAFT_CPORTS[2]}" /v3/cluster/member/promote "{\"ID\":\"$id\"}"
		[ "$(jq -r '.members | length' <<<"$output" 2>/dev/null)" = 4 ] && break
		sleep 0.1
	done
	[ "$(jq '[.members[] | select(.isLearner)] | length' <<<"$output")" = 0 ]
	run -0 post "${RAFT_CPORTS[0]}" /v3/cluster/member/promote "{\"ID\":\"$id\"}"
	[ "$(jq -r .message <<<"$output")" = "etcdserver: can only promote a learner member" ]
	run -0 post "${RAFT_CPORTS[0]}" /v3/cluster/member/remove '{"ID":"12345"}'
	[ "$(jq -r .message <<<"$output")" = "etcdserver: member not found" ]
	# update: member 3 moves to another peer port
	newp=$(etcd_free_ports 1)
	id3=$(mid 0 2)
	run -0 post "${RAFT_CPORTS[0]}" /v3/cluster/member/update "{\"ID\":\"$id3\",\"peerURLs\":[\"http://127.0.0.1:$newp\"]}"
	[ "$(jq -r --arg i "$id3" '.members[] | select(.ID == $i) | .peerURLs[0]' <<<"$output")" = "http://127.0.0.1:$newp" ]
	stop_server "${RAFT_PIDS[2]}"
	RAFT_PIDS[2]=
	RAFT_PPORTS[2]=$newp
	raft_start 2
	put_ok after-move 1
	caught_up 2 after-move 1
	# every member restarts: the four, the learner's promotion and the moved address are remembered
	for i in 0 1 2 3; do stop_server "${RAFT_PIDS[i]}"; RAFT_PIDS[i]=; done
	for i in 0 1 2 3; do raft_start "$i"; done
	raft_wait_leader >/dev/null
	for i in 0 3; do
		run -0 members "$i"
		[ "$(jq '.members | length' <<<"$output")" = 4 ]
		[ "$(jq '[.members[] | select(.isLearner)] | length' <<<"$output")" = 0 ]
		[ "$(jq -r --arg i "$id3" '.members[] | select(.ID == $i) | .peerURLs[0]' <<<"$output")" = "http://127.0.0.1:$newp" ]
	done
	put_ok after-restart 1
	caught_up 3 after-restart 1
	caught_up 2 l1 v1
}

@test "raft member: removing a follower, then the leader, under client load loses no acknowledged write and the history stays linearizable" {
	grow_plan 3 4
	start_first 3
	run -0 add 0 3
	join 3
	put_ok before 1
	caught_up 3 before 1
	load_start "$RAFT_ENDPOINTS"
	sleep 1.5
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 4))
	fid=$(mid "$lead" "$f")
	run -0 post "${RAFT_CPORTS[lead]}" /v3/cluster/member/remove "{\"ID\":\"$fid\"}"
	[ "$(jq '.members | length' <<<"$output")" = 3 ]
	# the removed follower learns it from the leader and stops
	gone "${RAFT_PIDS[f]}"
	RAFT_PIDS[f]=
	sleep 1
	lid=$(mid "$lead" "$lead")
	run -0 post "${RAFT_CPORTS[lead]}" /v3/cluster/member/remove "{\"ID\":\"$lid\"}"
	[ "$(jq '.members | length' <<<"$output")" = 2 ]
	[ -z "$(jq -r --arg i "$lid" '.members[] | select(.ID == $i) | .ID' <<<"$output")" ]
	# it hands leadership to another voter first, then is removed, and stops
	gone "${RAFT_PIDS[lead]}"
	RAFT_PIDS[lead]=
	grep -q 'member remove of this leader: handing leadership to' "$RAFT_DIR/n$((lead + 1)).err"
	grep -q 'this member was removed from the cluster' "$RAFT_DIR/n$((lead + 1)).err"
	new=$(raft_wait_leader)
	[ "$new" -ne "$lead" ]
	[ "$new" -ne "$f" ]
	rest=
	for i in 0 1 2 3; do [[ -n ${RAFT_PIDS[i]} ]] && rest+="${rest:+,}127.0.0.1:${RAFT_CPORTS[i]}"; done
	put_ok after-removals 1 "etcd://$rest"
	sleep 1.5
	load_stop
	run -0 post "${RAFT_CPORTS[new]}" /v3/cluster/member/list '{}'
	[ "$(jq '.members | length' <<<"$output")" = 2 ]
}

@test "raft member: etcdctl member add --learner, list, promote and remove through gRPC, and the added member starts from etcdctl's output" {
	grow_plan 1 2
	start_first 1
	ctl() { etcdctl --endpoints "127.0.0.1:${RAFT_CPORTS[0]}" --command-timeout 5s "$@"; }
	run -0 ctl put k v
	run -0 ctl member add n2 --learner --peer-urls "http://127.0.0.1:${RAFT_PPORTS[1]}"
	[[ $output == *"Member "*" added to cluster "* ]]
	[[ $output == *"ETCD_INITIAL_CLUSTER=\"$RAFT_FULL\""* ]] || [[ $output == *"ETCD_INITIAL_CLUSTER=\"n2=http://127.0.0.1:${RAFT_PPORTS[1]},n1="* ]]
	[[ $output == *'ETCD_INITIAL_CLUSTER_STATE="existing"'* ]]
	run -0 ctl member list -w json
	[ "$(jq '.members | length' <<<"$output")" = 2 ]
	[ "$(jq '[.members[] | select(.isLearner)] | length' <<<"$output")" = 1 ]
	# the table, not -w json: jq reads 64-bit ids as doubles
	hex=$(ctl member list | awk -F', ' '$6 == "true" { print $1 }')
	[ -n "$hex" ]
	# etcdctl prints "Member %16x ...": an id under 16 hex digits (1 in
	# 16) is padded with spaces, which the table's %x is not
	hex16=$(printf '%16s' "$hex")
	run ctl member promote "$hex"
	[ "$status" -ne 0 ]
	[[ $output == *"can only promote a learner member which is in sync with leader"* ]]
	join 1
	caught_up 1 k v
	for ((k = 0; k < 50; k++)); do
		run ctl member promote "$hex"
		[ "$status" -eq 0 ] && break
		sleep 0.1
	done
	[ "$status" -eq 0 ]
	[[ $output == *"Member $hex16 promoted in cluster"* ]]
	run -0 ctl member list
	[ "$(grep -c ', started, ' <<<"$output")" = 2 ]
	[[ $output == *", n2, http://127.0.0.1:${RAFT_PPORTS[1]}, "*", false"* ]]
	run -0 ctl member update "$hex" --peer-urls "http://127.0.0.1:${RAFT_PPORTS[1]}"
	[[ $output == *"Member $hex16 updated in cluster"* ]]
	run ctl member update "$hex" --peer-urls "http://127.0.0.1:${RAFT_PPORTS[0]}"
	[ "$status" -ne 0 ]
	[[ $output == *"etcdserver: Peer URLs already exists"* ]]
	run -0 ctl member remove "$hex"
	[[ $output == *"Member $hex16 removed from cluster"* ]]
	gone "${RAFT_PIDS[1]}"
	RAFT_PIDS[1]=
	run -0 ctl member list -w json
	[ "$(jq '.members | length' <<<"$output")" = 1 ]
	run -0 ctl put k2 v2
}

@test "raft member: malformed member requests are refused, never crash the node" {
	raft_cluster 1
	raft_start_all >/dev/null
	for body in '' '{' '[]' '{"peerURLs":"x"}' '{"peerURLs":[]}' '{"peerURLs":[1]}' '{"peerURLs":["https://h:1"]}' \
		'{"peerURLs":["http://127.0.0.1"]}' '{"peerURLs":["http://127.0.0.1:2\"x"]}'; do
		run -0 post "${RAFT_CPORTS[0]}" /v3/cluster/member/add "$body"
		[ "$(jq -r .code <<<"$output")" = 3 ]
	done
	for path in remove promote update; do
		for body in '' '{"ID":"x"}' '{"ID":-1}' '{"ID":"18446744073709551615"}' '{"ID":{}}'; do
			run -0 post "${RAFT_CPORTS[0]}" "/v3/cluster/member/$path" "$body"
			[ "$(jq -r .code <<<"$output")" = 5 ]
		done
	done
	run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[0]}/health"
	run -0 members 0
	[ "$(jq '.members | length' <<<"$output")" = 1 ]
}
