#!/usr/bin/env bats
# dsys-lock run under faults, on etcd:// (a real etcd-server 3.4) and
# redlock:// (3 independent redis-servers): a holder killed with -9 or
# paused with SIGSTOP past its TTL, and a store that goes away while CMD
# runs.  (file: and redis:// have theirs in lock.bats.)
#
# Times are measured, never slept for: a second client waits for the lock
# with --wait, and the test checks when it got it.  etcd may grant a longer
# TTL than asked (its minimum, from the election timeout) and expires
# leases on a periodic check, so the etcd tests read the TTL the lease was
# actually granted and allow for that check.

load helpers
load redis_helpers
load etcd_helpers
load lock_helpers
bats_require_minimum_version 1.5.0
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-120}

setup_file() {
	etcd_require
}

setup() {
	lock_setup
	etcd_reset
}

teardown() {
	# the process group of the command a run started
	[[ -n ${child:-} ]] && kill -KILL -- "-$child" 2>/dev/null
	lock_teardown etcd_stop rl_stop_all
}

# granted_ms NAME: the TTL etcd granted the holder's lease, in ms.
granted_ms() {
	local key
	key=$(etcdctl --endpoints "$ETCD_ENDPOINT" get --prefix "dsys/locks/$1/" --keys-only | head -1)
	[ -n "$key" ] || return 1
	etcdctl --endpoints "$ETCD_ENDPOINT" lease timetolive "${key##*/}" -w json |
		"$DSYS_PY" -c 'import json,sys; print(json.load(sys.stdin)["granted-ttl"] * 1000)'
}

# The lease or key of a holder expires TTL after its last renewal, which
# was sent at most a third of the TTL before the fault: a second client
# may not get the lock sooner than MIN_MS = 2/3 TTL less a little slack,
# and must get it within MAX_MS = TTL + SLACK_MS.
bounds() {
	MIN_MS=$(($1 * 2 / 3 - 150))
	MAX_MS=$(($1 + $2))
}

# killed STORE TTL_MS SLACK_MS: `run` is killed with -9; its command dies
# with it; the lock stays held until the TTL has passed, then a waiter gets
# it with a greater fence.
killed() {
	export DSYS_STORE=$1
	dsys-lock run k --ttl "$2ms" -- sh -c 'echo $$ >"$0"; exec sleep 100' "$BATS_TEST_TMPDIR/child" 3>&- &
	holder=$!
	BG+=("$holder")
	for ((i = 0; i < 200; i++)); do [ -s "$BATS_TEST_TMPDIR/child" ] && break; sleep 0.02; done
	child=$(cat "$BATS_TEST_TMPDIR/child")
	wait_held k
	ttl=$2
	[[ $1 == etcd://* ]] && ttl=$(granted_ms k)
	((ttl >= $2))
	bounds "$ttl" "$3"
	run --separate-stderr dsys-lock status k
	oldfence=$(field "$output" fence)

	kill -9 "$holder"
	t0=$(now_ms)
	wait "$holder" || :
	run -1 dsys-lock acquire k --nowait   # the TTL has not passed
	run --separate-stderr dsys-lock acquire k --wait 30s --ttl 30s
	t1=$(now_ms)
	assert_success
	echo "granted TTL ${ttl}ms, the lock came free after $((t1 - t0))ms" >&3
	((t1 - t0 >= MIN_MS))
	((t1 - t0 <= MAX_MS))
	(($(field "$output" fence) > oldfence))
	pid_gone "$child"
}

# paused STORE TTL_MS SLACK_MS: `run` and its command are stopped; a
# second client gets the lock once the TTL has passed (never sooner), with a
# greater fence.  The command is let go first and writes on for a moment
# with its stale fence (as a paused process would); then dsys-lock wakes,
# finds the grant gone, stops the command and exits 5.
paused() {
	export DSYS_STORE=$1
	local marks=$BATS_TEST_TMPDIR/marks
	dsys-lock run p --ttl "$2ms" --kill-after 2s -- sh -c \
		'while :; do echo "$DSYS_LOCK_FENCE" >>"$0"; sleep 0.05; done' "$marks" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	holder=$!
	BG+=("$holder")
	for ((i = 0; i < 200; i++)); do [ -s "$marks" ] && break; sleep 0.02; done
	child=$(pgrep -P "$holder")
	[ -n "$child" ]
	ttl=$2
	[[ $1 == etcd://* ]] && ttl=$(granted_ms p)
	((ttl >= $2))
	bounds "$ttl" "$3"
	oldfence=$(head -1 "$marks")

	kill -STOP "$holder"
	kill -STOP -- "-$child"
	t0=$(now_ms)
	run -1 dsys-lock acquire p --nowait   # the TTL has not passed
	run --separate-stderr dsys-lock acquire p --wait 30s --ttl 30s
	t1=$(now_ms)
	assert_success
	echo "granted TTL ${ttl}ms, the lock came free after $((t1 - t0))ms" >&3
	((t1 - t0 >= MIN_MS))
	((t1 - t0 <= MAX_MS))
	newfence=$(field "$output" fence)
	((newfence > oldfence))

	kill -CONT -- "-$child"
	kill -CONT "$holder"
	st=0
	wait "$holder" || st=$?
	[ "$st" -eq 5 ]
	grep -q "lost lock 'p'" "$BATS_TEST_TMPDIR/err"
	pid_gone "$child"
	# every mark, those written after the handover too, carries the old
	# fence: a store that checks fences refuses them
	[ "$(sort -u "$marks")" = "$oldfence" ]
	# and the new holder still holds
	run --separate-stderr dsys-lock status p
	[ "$(field "$output" fence)" = "$newfence" ]
}

@test "lock faults: a run killed with -9 on etcd:// keeps the lock held until its lease's TTL, then a waiter gets a greater fence" {
	etcd_start
	killed "$ETCD_URL" 2000 1500   # etcd checks for expired leases every 500ms
}

@test "lock faults: a run killed with -9 on redlock:// keeps the lock held until its TTL, then a waiter gets a greater fence" {
	redlock_start
	killed "$RL_URL" 2000 1000
}

@test "lock faults: a run paused past its etcd lease's TTL has its command stopped on resume, exits 5, and the new fence is greater" {
	etcd_start
	paused "$ETCD_URL" 2000 1500
}

@test "lock faults: a run paused past its TTL on redlock:// has its command stopped on resume, exits 5, and the new fence is greater" {
	redlock_start
	paused "$RL_URL" 2000 1000
}

@test "lock faults: etcd killed and restarted within the TTL: run carries on, CMD's status comes back and the lock is released" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	dsys-lock run r --ttl 10s -- sh -c 'sleep 5; exit 7' 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	holder=$!
	BG+=("$holder")
	wait_held r
	etcd_kill
	sleep 0.5
	etcd_restart
	st=0
	wait "$holder" || st=$?
	cat "$BATS_TEST_TMPDIR/err" >&2
	[ "$st" -eq 7 ]
	run --separate-stderr dsys-lock status r
	assert_output '{"name":"r","held":false}'
}

@test "lock faults: etcd down past the TTL stops run's command group before the TTL has passed, exit 5; the lease then lapses" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	dsys-lock run d --ttl 2s -- sh -c 'sleep 100 & wait' 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	holder=$!
	BG+=("$holder")
	wait_held d
	child=$(pgrep -P "$holder")
	grandchild=$(pgrep -P "$child")
	[ -n "$grandchild" ]
	run --separate-stderr dsys-lock status d
	oldfence=$(field "$output" fence)
	etcd_kill
	t0=$(now_ms)
	st=0
	wait "$holder" || st=$?
	t1=$(now_ms)
	[ "$st" -eq 5 ]
	((t1 - t0 < 2000))   # the last confirmed renewal was sent less than a TTL ago
	grep -q "lost lock 'd' (renewal not confirmed within the TTL)" "$BATS_TEST_TMPDIR/err"
	pid_gone "$child"
	pid_gone "$grandchild"
	# etcd back: nobody renews the old lease, so it lapses and the lock
	# goes on with a greater fence
	etcd_restart
	run --separate-stderr dsys-lock acquire d --wait 30s
	assert_success
	(($(field "$output" fence) > oldfence))
}

@test "lock faults: redlock run survives one server killed, and stops its command within the TTL once a majority is gone, exit 5" {
	redlock_start
	export DSYS_STORE=$RL_URL
	dsys-lock run m --ttl 2s -- sh -c 'sleep 100 & wait' 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	holder=$!
	BG+=("$holder")
	wait_held m
	child=$(pgrep -P "$holder")
	grandchild=$(pgrep -P "$child")
	[ -n "$grandchild" ]
	rl_kill 0
	sleep 4.5   # more than two TTLs on a majority of two
	kill -0 "$holder"
	kill -0 "$grandchild"
	rl_kill 1
	t0=$(now_ms)
	st=0
	wait "$holder" || st=$?
	t1=$(now_ms)
	[ "$st" -eq 5 ]
	((t1 - t0 < 2000))
	grep -q "lost lock 'm'" "$BATS_TEST_TMPDIR/err"
	pid_gone "$grandchild"
}
