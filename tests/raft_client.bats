#!/usr/bin/env bats
# dsys-raft's thin client (put get del txn watch lease): the same exact
# JSON lines against a 3-node dsys-raft cluster and against a real etcd
# 3.4 (both start at revision 1, so even the revisions agree); the leader
# killed while it runs; a dead endpoint first in the list; bad input.

load helpers
load etcd_helpers
load raft_helpers
bats_require_minimum_version 1.5.0

setup() {
	raft_setup
	BG_PID=
	unset DSYS_RAFT_ENDPOINTS
}

teardown() {
	[[ -n $BG_PID ]] && { kill "$BG_PID" 2>/dev/null; wait "$BG_PID" 2>/dev/null; }
	raft_teardown
	dsys_teardown
}

# backend raft|etcd: a fresh store; EP is its --endpoints list.
backend() {
	if [[ $1 == raft ]]; then
		raft_cluster 3
		raft_start_all >/dev/null
		EP=$RAFT_ENDPOINTS
	else
		etcd_require || skip "etcd-server is not installed"
		etcd_start
		EP=127.0.0.1:$ETCD_PORT
	fi
}

# (background commands call dsys-raft itself, so that their PID is its own)
c() { dsys-raft "$1" --endpoints "$EP" "${@:2}"; }

KV_A1='{"key":"a","value":"1","create_revision":2,"mod_revision":2,"version":1,"lease":"0"}'
KV_A2='{"key":"a","value":"2","create_revision":2,"mod_revision":3,"version":2,"lease":"0"}'
KV_AB='{"key":"ab","value":"3","create_revision":4,"mod_revision":4,"version":1,"lease":"0"}'

check_kv() {
	run --separate-stderr c put a 1
	assert_success
	assert_output '{"revision":2}'
	run --separate-stderr c put a 2 --prev-kv
	assert_output "{\"revision\":3,\"prev_kv\":$KV_A1}"
	run -0 --separate-stderr c put ab 3
	run -0 --separate-stderr c put 'ключ "q"' 'two words'
	assert_output '{"revision":5}'
	run --separate-stderr c get a
	assert_success
	assert_output "$KV_A2"
	run --separate-stderr c get a --prefix
	assert_success
	assert_equal "${#lines[@]}" 2
	assert_equal "${lines[0]}" "$KV_A2"
	assert_equal "${lines[1]}" "$KV_AB"
	run -0 --separate-stderr c get a --prefix --count-only
	assert_output '{"count":2,"revision":5}'
	run -0 --separate-stderr c get a --prefix --keys-only --limit 1
	assert_output '{"key":"a","create_revision":2,"mod_revision":3,"version":2,"lease":"0"}'
	run -0 --separate-stderr c get a --rev 2
	assert_output "$KV_A1"
	run -0 --separate-stderr c get 'ключ "q"'
	assert_output '{"key":"ключ \"q\"","value":"two words","create_revision":5,"mod_revision":5,"version":1,"lease":"0"}'
	# a serializable read may trail on a follower: it catches up
	for i in $(seq 50); do
		out=$(c get ab --serializable) && [[ $out == "$KV_AB" ]] && break
		sleep 0.1
	done
	assert_equal "$out" "$KV_AB"
	run --separate-stderr c get nothing-here
	assert_failure 1
	assert_output ''
	[ -z "$stderr" ]
	run --separate-stderr c del a --prefix --prev-kv
	assert_success
	assert_output "{\"deleted\":2,\"revision\":6,\"prev_kvs\":[$KV_A2,$KV_AB]}"
	run --separate-stderr c del a
	assert_failure 1
	assert_output '{"deleted":0,"revision":6}'
	run -0 --separate-stderr c get '' --prefix --count-only
	assert_output '{"count":1,"revision":6}'
	# no VALUE: all of stdin, newlines and all
	run -0 --separate-stderr c put multi <<<$'line 1\nline 2'
	assert_output '{"revision":7}'
	run -0 --separate-stderr c get multi
	assert_output '{"key":"multi","value":"line 1\nline 2\n","create_revision":7,"mod_revision":7,"version":1,"lease":"0"}'
}

check_txn() {
	run -0 --separate-stderr c put t 1
	assert_output '{"revision":2}'
	script=$'value("t") = "1"\n\nput t 2 --prev-kv\nget t\n\nget t\n'
	run --separate-stderr c txn <<<"$script"
	assert_success
	assert_output '{"succeeded":true,"revision":3,"responses":[{"op":"put","prev_kv":{"key":"t","value":"1","create_revision":2,"mod_revision":2,"version":1,"lease":"0"}},{"op":"get","count":1,"kvs":[{"key":"t","value":"2","create_revision":2,"mod_revision":3,"version":2,"lease":"0"}]}]}'
	# the same again: the compare fails, the failure branch runs, exit 1
	run --separate-stderr c txn <<<"$script"
	assert_failure 1
	assert_output '{"succeeded":false,"revision":3,"responses":[{"op":"get","count":1,"kvs":[{"key":"t","value":"2","create_revision":2,"mod_revision":3,"version":2,"lease":"0"}]}]}'
	run --separate-stderr c txn <<<$'version("t") > 1\nmod("t") < 100\ncreate("t") = 2\nvalue("t") != "x"\n\ndel t --prev-kv\n'
	assert_success
	assert_output '{"succeeded":true,"revision":4,"responses":[{"op":"del","deleted":1,"prev_kvs":[{"key":"t","value":"2","create_revision":2,"mod_revision":3,"version":2,"lease":"0"}]}]}'
	# no compares: a blank first line; two puts are one revision
	run --separate-stderr c txn <<<$'\n# two at once\nput u 1\nput "v w" "x y"\n'
	assert_success
	assert_output '{"succeeded":true,"revision":5,"responses":[{"op":"put"},{"op":"put"}]}'
	run --separate-stderr c txn <<<$'\nput u 1\nput u 2\n'
	assert_failure 2
	assert_output ''
	assert_equal "$stderr" 'dsys-raft txn: etcdserver: duplicate key given in txn request'
}

check_lease() {
	run -0 --separate-stderr c lease grant 30
	id=$(jq -r .id <<<"$output")
	[[ $id =~ ^[0-9a-f]+$ ]]
	assert_output "{\"id\":\"$id\",\"ttl\":30}"
	run -0 --separate-stderr c put k v --lease "$id"
	assert_output '{"revision":2}'
	run -0 --separate-stderr c get k
	assert_output "{\"key\":\"k\",\"value\":\"v\",\"create_revision\":2,\"mod_revision\":2,\"version\":1,\"lease\":\"$id\"}"
	run -0 --separate-stderr c lease ttl "$id" --keys
	jq -e --arg id "$id" '.id == $id and .granted_ttl == 30 and .ttl > 20 and .ttl <= 30 and .keys == ["k"]' <<<"$output"
	run -0 --separate-stderr c lease list
	assert_line "{\"id\":\"$id\"}"
	run -0 --separate-stderr c lease keepalive "$id" --count 1
	assert_output "{\"id\":\"$id\",\"ttl\":30}"
	run -0 --separate-stderr c lease revoke "$id"
	assert_output "{\"id\":\"$id\",\"revoked\":true,\"revision\":3}"
	run --separate-stderr c get k
	assert_failure 1
	run --separate-stderr c lease ttl "$id"
	assert_failure 1
	assert_equal "$stderr" "dsys-raft lease: ttl: lease $id not found (expired or revoked)"
	run --separate-stderr c lease revoke "$id"
	assert_failure 1
	assert_equal "$stderr" 'dsys-raft lease: revoke: etcdserver: requested lease not found'
	run --separate-stderr c lease keepalive "$id"
	assert_failure 1
	assert_output ''
}

check_watch() {
	run -0 --separate-stderr c put w0 old
	dsys-raft watch w --endpoints "$EP" --prefix --prev-kv --rev 3 --count 3 >"$BATS_TEST_TMPDIR/watch" 2>&1 3>&- &
	BG_PID=$!
	run -0 c put w1 a
	run -0 c put w1 b
	run -0 c del w --prefix
	wait "$BG_PID"
	BG_PID=
	run cat "$BATS_TEST_TMPDIR/watch"
	assert_equal "${#lines[@]}" 3
	assert_equal "${lines[0]}" '{"type":"PUT","key":"w1","value":"a","create_revision":3,"mod_revision":3,"version":1,"lease":"0"}'
	assert_equal "${lines[1]}" '{"type":"PUT","key":"w1","value":"b","create_revision":3,"mod_revision":4,"version":2,"lease":"0","prev_kv":{"key":"w1","value":"a","create_revision":3,"mod_revision":3,"version":1,"lease":"0"}}'
	# one delete of two keys: two events, in key order
	assert_equal "${lines[2]}" '{"type":"DELETE","key":"w0","value":"","create_revision":0,"mod_revision":5,"version":0,"lease":"0","prev_kv":{"key":"w0","value":"old","create_revision":2,"mod_revision":2,"version":1,"lease":"0"}}'
	# history: from revision 2, without --prev-kv
	run -0 --separate-stderr c watch w0 --rev 2 --count 2
	assert_equal "${lines[0]}" '{"type":"PUT","key":"w0","value":"old","create_revision":2,"mod_revision":2,"version":1,"lease":"0"}'
	assert_equal "${lines[1]}" '{"type":"DELETE","key":"w0","value":"","create_revision":0,"mod_revision":5,"version":0,"lease":"0"}'
	# SIGTERM ends a watch with exit 0
	dsys-raft watch nothing --endpoints "$EP" >/dev/null 2>&1 3>&- &
	BG_PID=$!
	sleep 0.5
	kill -TERM "$BG_PID"
	st=0
	wait "$BG_PID" || st=$?
	BG_PID=
	[ "$st" -eq 0 ]
	# a compacted start revision: exit 1, and says where history starts
	curl -sf "http://${EP%%,*}/v3/kv/compaction" -d '{"revision":"5"}' >/dev/null
	run --separate-stderr c watch w0 --rev 2
	assert_failure 1
	assert_equal "$stderr" 'dsys-raft watch: revision 2 has been compacted; the oldest left is 5'
}

@test "raft client: put, get and del with prefix, limit, revision, keys-only and count-only print exact lines on a dsys-raft cluster" {
	backend raft
	check_kv
}

@test "raft client: put, get and del print the same lines on a real etcd 3.4" {
	backend etcd
	check_kv
}

@test "raft client: txn reads etcdctl's format from stdin and runs the branch its compares pick on a dsys-raft cluster" {
	backend raft
	check_txn
}

@test "raft client: txn answers the same on a real etcd 3.4" {
	backend etcd
	check_txn
}

@test "raft client: lease grant, put --lease, ttl, list, keepalive and revoke on a dsys-raft cluster" {
	backend raft
	check_lease
}

@test "raft client: lease commands answer the same on a real etcd 3.4" {
	backend etcd
	check_lease
}

@test "raft client: watch prints one line per event, from history too, and stops on --count, SIGTERM or compaction on a dsys-raft cluster" {
	backend raft
	check_watch
}

@test "raft client: watch prints the same lines on a real etcd 3.4" {
	backend etcd
	check_watch
}

@test "raft client: the leader killed mid-run: puts go on through the next endpoint and the watch misses no event" {
	backend raft
	lead=$(raft_wait_leader)
	# the leader first, so the client starts on it
	EP=127.0.0.1:${RAFT_CPORTS[lead]}
	for m in 0 1 2; do
		[ "$m" -eq "$lead" ] || EP+=",127.0.0.1:${RAFT_CPORTS[m]}"
	done
	dsys-raft watch k --endpoints "$EP" --prefix --rev 2 --count 20 >"$BATS_TEST_TMPDIR/watch" 2>"$BATS_TEST_TMPDIR/watch.err" 3>&- &
	BG_PID=$!
	# not i: bats' run sets a global i (bats_version_lt), which the
	# message would show.  A put is never resent after it may have been
	# proposed (exit 3 'request timed out' instead); the put right after
	# the kill still succeeds because the follower it reaches has its
	# FWD_REQ to the dead leader dropped unsent with the connection (the
	# kill is reaped before the put starts), so the member answers it
	# through the next leader, or 'no leader', which the client resends
	for k in $(seq 1 20); do
		[ "$k" -eq 11 ] && raft_kill "$lead"
		run --separate-stderr c put "k$k" "v$k" --timeout 10s
		[ "$status" -eq 0 ] || { echo "put k$k: $status $stderr"; false; }
	done
	run -0 --separate-stderr c get k --prefix --count-only
	assert_output '{"count":20,"revision":21}'
	for i in $(seq 50); do kill -0 "$BG_PID" 2>/dev/null || break; sleep 0.1; done
	st=0
	wait "$BG_PID" || st=$?
	BG_PID=
	[ "$st" -eq 0 ] || { cat "$BATS_TEST_TMPDIR/watch.err"; false; }
	run jq -r .key "$BATS_TEST_TMPDIR/watch"
	assert_output "$(printf 'k%s\n' $(seq 1 20))"
}

@test "raft client: a dead endpoint first in the list is passed over; none alive is exit 3 within --timeout" {
	backend raft
	dead=$(etcd_free_ports 2)
	d1=$(head -1 <<<"$dead")
	d2=$(tail -1 <<<"$dead")
	EP="127.0.0.1:$d1,$RAFT_ENDPOINTS"
	run -0 --separate-stderr c put x 1
	assert_output '{"revision":2}'
	run -0 --separate-stderr c get x
	# etcdctl's form of the list is taken too
	run -0 --separate-stderr dsys-raft get x --endpoints "http://127.0.0.1:$d1,http://$RAFT_ENDPOINTS"
	DSYS_RAFT_ENDPOINTS="127.0.0.1:$d1,$RAFT_ENDPOINTS" run -0 --separate-stderr dsys-raft get x
	jq -e '.value == "1"' <<<"$output"
	start=$(date +%s%N)
	run --separate-stderr dsys-raft put x 2 --endpoints "127.0.0.1:$d1,127.0.0.1:$d2" --timeout 1s
	end=$(date +%s%N)
	assert_failure 3
	assert_output ''
	assert_equal "$stderr" "dsys-raft put: cannot reach 127.0.0.1:$d1,127.0.0.1:$d2: no member answered"
	[ $(((end - start) / 1000000)) -lt 3000 ]
}

@test "raft client: without a quorum put and get exit 4 at --timeout, a serializable get still answers" {
	backend raft
	run -0 --separate-stderr c put q 1
	# every member has applied it before two of them go
	for m in 0 1 2; do
		for i in $(seq 50); do
			dsys-raft get q --serializable --endpoints "127.0.0.1:${RAFT_CPORTS[m]}" >/dev/null && break
			sleep 0.1
		done
	done
	lead=$(raft_wait_leader)
	raft_kill "$lead"
	raft_kill $(((lead + 1) % 3))
	start=$(date +%s%N)
	run --separate-stderr c put q 2 --timeout 1s
	end=$(date +%s%N)
	assert_failure 4
	assert_output ''
	assert_equal "$stderr" 'dsys-raft put: timed out after 1000ms'
	[ $(((end - start) / 1000000)) -lt 3000 ]
	run --separate-stderr c get q --timeout 1s
	assert_failure 4
	run -0 --separate-stderr c get q --serializable --timeout 1s
	jq -e '.value == "1"' <<<"$output"
}

@test "raft client: bad input exits 2 with a message naming the problem, before any connection" {
	nowhere=(--endpoints 127.0.0.1:1)
	bad() {
		run --separate-stderr dsys-raft "$@"
		assert_failure 2
		assert_output ''
	}
	bad put "${nowhere[@]}"
	[[ $stderr == *"missing operand"* ]]
	bad put a b c "${nowhere[@]}"
	[[ $stderr == *"unexpected argument 'c'"* ]]
	bad get a --limit 0 "${nowhere[@]}"
	[[ $stderr == *"invalid value '0' for --limit"* ]]
	bad get a --timeout soon "${nowhere[@]}"
	[[ $stderr == *"invalid value 'soon' for --timeout"* ]]
	bad put a b --lease xyz "${nowhere[@]}"
	[[ $stderr == *"invalid value 'xyz' for --lease: want a lease ID in hexadecimal"* ]]
	bad get a --endpoints ''
	[[ $stderr == *"empty endpoint"* ]]
	bad get a --endpoints 127.0.0.1:1,,127.0.0.1:2
	[[ $stderr == *"empty endpoint"* ]]
	bad get a --endpoints https://127.0.0.1:1
	[[ $stderr == *"https is not supported"* ]]
	DSYS_RAFT_ENDPOINTS=127.0.0.1:99999 bad get a
	[[ $stderr == *"in DSYS_RAFT_ENDPOINTS"* ]]
	bad lease frob "${nowhere[@]}"
	[[ $stderr == *"unknown lease command 'frob'"* ]]
	bad lease grant "${nowhere[@]}"
	[[ $stderr == *"lease grant wants a TTL"* ]]
	bad lease grant 0 "${nowhere[@]}"
	[[ $stderr == *"invalid TTL '0'"* ]]
	bad lease revoke nothex "${nowhere[@]}"
	[[ $stderr == *"invalid lease ID 'nothex'"* ]]
	bad lease list extra "${nowhere[@]}"
	bad watch "${nowhere[@]}"
	bad watch a --count 0 "${nowhere[@]}"
	txn() {
		run --separate-stderr dsys-raft txn "${nowhere[@]}" <<<"$1"
		assert_failure 2
		assert_output ''
	}
	txn $'value("a") ~ "1"\n'
	assert_equal "$stderr" 'dsys-raft txn: line 1: want one of = != > < after the key'
	txn $'valu("a") = "1"\n'
	[[ $stderr == *'line 1: want a compare: value|version|create|mod|lease("KEY")'* ]]
	txn $'version("a") = one\n'
	[[ $stderr == *'line 1: version, create and mod compare with an integer'* ]]
	txn $'value("a") = "1"\n\nput a\n'
	assert_equal "$stderr" 'dsys-raft txn: line 3: want put KEY VALUE'
	txn $'value("a") = "1"\n\nput a "open\n'
	[[ $stderr == *'line 3: a quote that does not end'* ]]
	txn $'\nput a 1\n\nget b\n\nget c\n'
	[[ $stderr == *'line 6: more than three sections'* ]]
	txn $'put a 1\n'
	[[ $stderr == *'a txn without compares starts with a blank line'* ]]
}

@test "raft client: --help of each subcommand exits 0 and every option is in the man page" {
	for sub in put get del txn watch lease; do
		run -0 dsys-raft "$sub" --help
		assert_line --index 0 --partial "usage: dsys-raft $sub"
		for o in $(dsys-raft "$sub" --list-options); do
			grep -qE "Fl -${o#--}( |$)" "$BATS_TEST_DIRNAME/../man/man1/dsys-raft.1" ||
				{ echo "$sub: $o is not in the man page"; false; }
		done
	done
}

@test "raft client: bash and zsh complete the client subcommands, their options and lease's commands" {
	load helpers_completion
	bcomp=$BATS_TEST_DIRNAME/../completions/bash/dsys-raft
	zcomp=$BATS_TEST_DIRNAME/../completions/zsh/_dsys-raft
	cd "$BATS_TEST_TMPDIR"
	touch some-file
	run bash_complete "$bcomp" dsys-raft ''
	for sub in put get del txn watch lease; do assert_line "$sub"; done
	run bash_complete "$bcomp" dsys-raft get --co
	assert_output -- --count-only
	run bash_complete "$bcomp" dsys-raft watch --p
	assert_line -- --prefix
	assert_line -- --prev-kv
	run bash_complete "$bcomp" dsys-raft lease k
	assert_output keepalive
	run bash_complete "$bcomp" dsys-raft get --endpoints ''
	assert_output ''
	run zsh_complete "$zcomp" dsys-raft lease ''
	assert_line grant
	assert_line list
	run zsh_complete "$zcomp" dsys-raft put --l
	assert_line -- --lease
	run zsh_complete "$zcomp" dsys-raft put --timeout ''
	assert_output '<message:value>'
}
