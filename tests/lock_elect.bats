#!/usr/bin/env bats
# dsys-lock elect and leader on file:, redis:// and etcd:// (real servers):
# one leader at a time, handover on death within the TTL, at once on
# resignation, leader --watch, and etcdctl elect's layout on etcd.

load helpers
load redis_helpers
load etcd_helpers
load lock_helpers
bats_require_minimum_version 1.5.0
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-90}

setup() {
	lock_setup
	export ETCDCTL_API=3
	DIR=$(dsys_tmp locks)
}

teardown() { lock_teardown redis_stop etcd_stop; }

# running: how many candidates have a CMD running now.
running() {
	local p n=0
	for p in "${CAND[@]}"; do
		pgrep -P "$p" >/dev/null && n=$((n + 1))
	done
	echo "$n"
}

# wait_leader_change OLD: until leader's value differs from OLD and a CMD runs.
wait_leader_change() {
	local i v
	for ((i = 0; i < 500; i++)); do
		v=$(dsys-lock leader e 2>/dev/null)
		v=$(field "$v" leader)
		[[ $v != None && $v != "$1" && $(running) -eq 1 ]] && { echo "$v"; return 0; }
		sleep 0.02
	done
	return 1
}

# elections STORE TTL_MS: three candidates, exactly one CMD at any moment.
elections() {
	export DSYS_STORE=$1
	local ttl=$2 log=$BATS_TEST_TMPDIR/log i
	: >"$log"
	dsys-lock leader e --watch >"$BATS_TEST_TMPDIR/watch" 2>&1 3>&- &
	BG+=($!)
	CAND=()
	for i in 0 1 2; do
		dsys-lock elect e --value "c$i" --ttl "${ttl}ms" -- sh -c \
			'echo "$0 $DSYS_LOCK_FENCE" >>"$1"; exec sleep 100' "c$i" "$log" 3>&- &
		CAND+=($!)
		BG+=($!)
	done
	first=$(wait_leader_change none)
	[ "$(running)" -eq 1 ]
	sleep 0.5
	[ "$(running)" -eq 1 ]
	[ "$(wc -l <"$log")" -eq 1 ]
	[ "$(cut -d' ' -f1 "$log")" = "$first" ]

	# what one look at the election costs (wait_leader_change's step, two
	# processes and a python): a change is seen up to that late, which on
	# a loaded machine is hundreds of ms, so the bounds below allow it
	t0=$(now_ms)
	dsys-lock leader e >/dev/null 2>&1
	field '{"a":1}' a >/dev/null
	running >/dev/null
	look=$(($(now_ms) - t0 + 20))

	# the leader dies: another takes over within the TTL
	idx=${first#c}
	t0=$(now_ms)
	kill -KILL "${CAND[idx]}"
	wait "${CAND[idx]}" 2>/dev/null || :
	second=$(wait_leader_change "$first")
	t1=$(now_ms)
	((t1 - t0 <= ttl + 1000 + 2 * look)) || { echo "takeover after $((t1 - t0)) ms (a look: $look ms)"; false; }
	[ "$(running)" -eq 1 ]

	# the leader resigns (its CMD ends on SIGTERM): the last one at once
	idx=${second#c}
	t0=$(now_ms)
	kill -TERM "${CAND[idx]}"
	third=$(wait_leader_change "$second")
	t1=$(now_ms)
	((t1 - t0 < 1000 + 2 * look)) || { echo "resignation seen after $((t1 - t0)) ms (a look: $look ms)"; false; }
	[ "$(running)" -eq 1 ]
	[ "$(wc -l <"$log")" -eq 3 ]
	# fences of the three terms rise
	sort -c -n -k2 "$log"

	# leader --watch printed each change, the first leader first
	sleep 0.3
	grep -q "\"leader\":\"$first\"" "$BATS_TEST_TMPDIR/watch"
	grep -q "\"leader\":\"$third\"" "$BATS_TEST_TMPDIR/watch"
	[ "$(grep -c '"leader":"' "$BATS_TEST_TMPDIR/watch")" -ge 3 ]
}

@test "elect: three candidates on file: run one CMD at a time, handing over on death and on resignation" {
	elections "file:$DIR" 2000
}

@test "elect: three candidates on redis:// run one CMD at a time, handing over within the TTL" {
	redis_start
	elections "$REDIS_URL" 2000
}

@test "elect: three candidates on etcd:// run one CMD at a time, handing over within the TTL" {
	etcd_start
	elections "$ETCD_URL" 2000
}

@test "elect: on etcd, etcdctl elect and dsys-lock elect share one election" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	run --separate-stderr dsys-lock leader x
	assert_output '{"name":"x","leader":null}'
	etcdctl --endpoints "$ETCD_ENDPOINT" elect dsys/elections/x from-etcdctl >/dev/null 3>&- &
	BG+=($!)
	ctl=$!
	for ((i = 0; i < 200; i++)); do
		[[ $(dsys-lock leader x) == *from-etcdctl* ]] && break
		sleep 0.02
	done
	run --separate-stderr dsys-lock leader x
	[ "$(field "$output" leader)" = from-etcdctl ]
	# our candidate waits behind etcdctl's
	dsys-lock elect x --value ours --ttl 5s -- sh -c 'touch "$0"; sleep 100' "$BATS_TEST_TMPDIR/ours" 3>&- &
	BG+=($!)
	sleep 1
	[ ! -e "$BATS_TEST_TMPDIR/ours" ]
	kill "$ctl"   # etcdctl resigns on SIGTERM
	for ((i = 0; i < 200; i++)); do [ -e "$BATS_TEST_TMPDIR/ours" ] && break; sleep 0.02; done
	[ -e "$BATS_TEST_TMPDIR/ours" ]
	# and etcdctl sees our value as the leader's
	run timeout 2 etcdctl --endpoints "$ETCD_ENDPOINT" elect -l dsys/elections/x
	[[ $output == *ours* ]]
}

@test "elect: bad input exits 2" {
	run -2 dsys-lock elect e --store "file:$DIR"
	run -2 dsys-lock elect e --limit 2 --store "file:$DIR" -- true
	run -2 dsys-lock leader --store "file:$DIR"
	run -2 dsys-lock leader a/b --store "file:$DIR"
	run -2 dsys-lock elect e --value "$(printf 'v%.0s' {1..257})" --store "file:$DIR" -- true
}
