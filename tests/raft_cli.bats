#!/usr/bin/env bats
# dsys-raft sim's command line: lists with empty members, seeds that JSON
# readers cannot hold, seed ranges that would wrap, and a stdout that
# cannot be written.  (The simulation itself is tests/raft.bats'.)

load helpers
bats_require_minimum_version 1.5.0

setup() { dsys_setup; }
teardown() { dsys_teardown; }

@test "raft sim: an empty --faults list is refused, not taken as no faults" {
	run --separate-stderr dsys-raft sim --faults '' --ticks 10
	assert_failure 2
	[[ "$stderr" == *"invalid value '' for --faults"* ]]
	[ -z "$output" ]
	run --separate-stderr dsys-raft sim --faults drop, --ticks 10
	assert_failure 2
	run --separate-stderr dsys-raft sim --faults none --ticks 10
	assert_success
	jq -e '.faults == ""' <<<"$output"
}

@test "raft sim: a --nodes list with an empty member is refused" {
	for list in 3,,5 ,3 3, ''; do
		run --separate-stderr dsys-raft sim --nodes "$list" --ticks 10
		assert_failure 2
		[[ "$stderr" == *"invalid value '$list' for --nodes"* ]]
	done
	run --separate-stderr dsys-raft sim --nodes 3,5 --seeds 2 --ticks 10
	assert_success
	assert_equal "$(jq -c -s 'map(.nodes)' <<<"$output")" '[3,5]'
}

@test "raft sim: seeds up to 2^53-1 print exactly as jq reads them, larger ones are refused" {
	run --separate-stderr dsys-raft sim --seed 9007199254740991 --ticks 10
	assert_success
	assert_equal "$(jq -r .seed <<<"$output")" 9007199254740991
	run --separate-stderr dsys-raft sim --seed 9007199254740992 --ticks 10
	assert_failure 2
	[[ "$stderr" == *"2^53-1"* ]]
	[ -z "$output" ]
	run --separate-stderr dsys-raft sim --seed 18446744073709551615 --ticks 10
	assert_failure 2
}

@test "raft sim: --seed near the top with --seeds never wraps to seed 0" {
	run --separate-stderr dsys-raft sim --seed 9007199254740990 --seeds 3 --ticks 10
	assert_failure 2
	[[ "$stderr" == *"runs past the last seed"* ]]
	[ -z "$output" ]
	# the order of the flags does not matter
	run --separate-stderr dsys-raft sim --seeds 3 --seed 9007199254740990 --ticks 10
	assert_failure 2
	run --separate-stderr dsys-raft sim --seed 9007199254740989 --seeds 3 --ticks 10
	assert_success
	assert_equal "$(jq -r .seed <<<"$output" | tail -1)" 9007199254740991
}

@test "raft sim: a full stdout is a write error on stderr and exit 1" {
	run --separate-stderr bash -c 'dsys-raft sim --ticks 10 >/dev/full'
	assert_failure 1
	assert_equal "$stderr" "dsys-raft sim: write error: No space left on device"
}

@test "raft sim: a reader that goes away (EPIPE) ends the run quietly with 0" {
	run --separate-stderr bash -c 'dsys-raft sim --seeds 50 --ticks 100 | head -c 1 >/dev/null; echo "${PIPESTATUS[0]}"'
	assert_equal "$output" 0
	assert_equal "$stderr" ""
}

@test "raft sim: the replay example of dsys-raft(1) names a seed its sweep runs, on the nodes it says" {
	page=$BATS_TEST_DIRNAME/../man/man1/dsys-raft.1
	sweep=$(sed -n 's/^\.Dl \$ dsys-raft sim \(--seed 1 --seeds [0-9]* --nodes [0-9,]*\) .*--quiet$/\1/p' "$page")
	replay=$(sed -n 's/^\.Dl \$ dsys-raft sim --seed \([0-9]*\) --nodes \([0-9]*\) .*jq .elections$/\1 \2/p' "$page")
	[ -n "$sweep" ]
	[ -n "$replay" ]
	read -r seed nodes <<<"$replay"
	# shellcheck disable=SC2086 # the sweep's flags, split on purpose
	run --separate-stderr dsys-raft sim $sweep --ticks 10
	assert_success
	assert_equal "$(jq -r "select(.seed == $seed) | .nodes" <<<"$output")" "$nodes"
}
