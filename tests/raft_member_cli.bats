#!/usr/bin/env bats
# dsys-raft member list|add|add-learner|promote|remove (member_cli.c): the
# command-line client of the node's /v3/cluster/member/ routes, growing a
# cluster of 2 to 3 through a learner and shrinking it again.

load helpers
load etcd_helpers
load raft_helpers
bats_require_minimum_version 1.5.0

setup() {
	dsys_setup
	RAFT_PIDS=()
	RAFT_ARGS=()
}

teardown() {
	local i
	for i in "${!RAFT_PIDS[@]}"; do
		[[ -n ${RAFT_PIDS[i]} ]] && raft_kill "$i"
	done
	dsys_teardown
}

# the first 2 of 3 planned members as a cluster of their own
start_two() {
	raft_cluster 3
	RAFT_FULL=$RAFT_INITIAL
	RAFT_INITIAL=$(tr , '\n' <<<"$RAFT_FULL" | head -n 2 | paste -sd,)
	raft_start 0
	raft_start 1
	RAFT_INITIAL=$RAFT_FULL
	raft_wait_leader >/dev/null
	EPS="127.0.0.1:${RAFT_CPORTS[0]},127.0.0.1:${RAFT_CPORTS[1]}"
}

@test "raft member cli: list skips an endpoint that does not answer and prints etcd's member list as one JSON line" {
	start_two
	run --separate-stderr -0 dsys-raft member list --endpoints "127.0.0.1:1,$EPS"
	[ "${#lines[@]}" -eq 1 ]
	[ "$(jq -c '[.members[].name] | sort' <<<"$output")" = '["n1","n2"]' ]
	[[ $stderr == *"cannot reach 127.0.0.1:1"* ]]
}

@test "raft member cli: add-learner, start it, promote it, then remove it: 2 members, 3, and 2 again" {
	start_two
	run --separate-stderr -0 dsys-raft member add-learner n3 --peer-urls "http://127.0.0.1:${RAFT_PPORTS[2]}" --endpoints "$EPS"
	local id
	id=$(jq -r '.member.ID' <<<"$output")
	[ "$(jq -r '.member.isLearner' <<<"$output")" = true ]
	# not started yet: not in sync, etcd's FailedPrecondition text, exit 1
	run --separate-stderr dsys-raft member promote "$id" --endpoints "$EPS"
	[ "$status" -eq 1 ]
	[[ $stderr == *"etcdserver: can only promote a learner member which is in sync with leader"* ]]
	RAFT_ARGS=(--initial-cluster-state existing)
	raft_start 2
	local i
	for ((i = 0; i < 100; i++)); do
		dsys-raft member promote "$id" --endpoints "$EPS" >/dev/null 2>&1 && break
		sleep 0.1
	done
	run --separate-stderr -0 dsys-raft member list --endpoints "127.0.0.1:${RAFT_CPORTS[2]}"
	[ "$(jq '[.members[] | select(.isLearner != true)] | length' <<<"$output")" = 3 ]
	run --separate-stderr -0 dsys-raft member remove "$id" --endpoints "$EPS"
	[ "$(jq '.members | length' <<<"$output")" = 2 ]
	run --separate-stderr -0 dsys-raft member list --endpoints "$EPS"
	[ "$(jq -c '[.members[].name] | sort' <<<"$output")" = '["n1","n2"]' ]
}

@test "raft member cli: an unknown member is exit 1 with etcd's text, bad input 2, no endpoint 3" {
	start_two
	run --separate-stderr dsys-raft member remove 12345 --endpoints "$EPS"
	[ "$status" -eq 1 ]
	[[ $stderr == *"etcdserver: member not found"* ]]
	run --separate-stderr dsys-raft member add n9 --endpoints "$EPS"
	[ "$status" -eq 2 ]
	run --separate-stderr dsys-raft member remove --endpoints "$EPS"
	[ "$status" -eq 2 ]
	run --separate-stderr dsys-raft member frobnicate --endpoints "$EPS"
	[ "$status" -eq 2 ]
	run --separate-stderr dsys-raft member list --endpoints 127.0.0.1:1
	[ "$status" -eq 3 ]
}

@test "raft member cli: bash and zsh complete member's commands and options, and every option is in the man page" {
	load helpers_completion
	local bcomp=$BATS_TEST_DIRNAME/../completions/bash/dsys-raft zcomp=$BATS_TEST_DIRNAME/../completions/zsh/_dsys-raft
	run bash_complete "$bcomp" dsys-raft ''
	assert_line member
	run bash_complete "$bcomp" dsys-raft member add
	assert_line add
	assert_line add-learner
	run bash_complete "$bcomp" dsys-raft member list --end
	assert_output -- --endpoints
	run zsh_complete "$zcomp" dsys-raft member --peer
	assert_line -- --peer-urls
	local o
	for o in $(dsys-raft member --list-options); do
		grep -qE "Fl -${o#--}( |$)" "$BATS_TEST_DIRNAME/../man/man1/dsys-raft.1" ||
			{ echo "member: $o is not in the man page"; false; }
	done
}
