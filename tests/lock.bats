#!/usr/bin/env bats
# dsys-lock on file:DIR and on real redis-server processes (redis:// and a
# 3-master redis-cluster://, tests/redis_helpers.bash): the semantics of
# acquire/release/renew/status, semaphores, contention with fences, and
# what `run` does to its command when the lock is lost.

load helpers
load redis_helpers
load lock_helpers
bats_require_minimum_version 1.5.0
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-60}   # a hang fails its test instead of the suite

setup() {
	lock_setup
	DIR=$(dsys_tmp locks)
}

teardown() { lock_teardown redis_stop redis_cluster_stop; }

# field JSON KEY: one field of a JSON line (strings bare, null as None).
# A grant line has every documented field, with the right types.
check_grant() {
	"$DSYS_PY" - "$1" <<'EOF'
import json, re, sys
g = json.loads(sys.argv[1])
assert set(g) == {"name", "owner", "token", "fence", "lease", "ttl_ms", "expires_at", "store"}, g
assert re.fullmatch(r"[0-9a-f]{32}", g["token"]), g
assert isinstance(g["fence"], int) and g["fence"] >= 1, g
assert isinstance(g["ttl_ms"], int) and g["lease"] is None, g
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", g["expires_at"]), g
EOF
}

# The semantics every store shares.
semantics() {
	export DSYS_STORE=$1
	# a TTL far longer than the dozen commands up to the renew take on a
	# machine at load 17 (10 s was not)
	run --separate-stderr dsys-lock acquire job --ttl 60s --owner me
	assert_success
	check_grant "$output"
	grant=$output
	fence=$(field "$grant" fence)
	token=$(field "$grant" token)
	[ "$(field "$grant" ttl_ms)" = 60000 ]
	[ "$(field "$grant" owner)" = me ]

	run -1 dsys-lock acquire job --nowait
	run -9 dsys-lock acquire job --nowait --conflict-exit-code 9
	run --separate-stderr dsys-lock status job
	assert_success
	[ "$(field "$output" held)" = True ]
	[ "$(field "$output" fence)" = "$fence" ]
	[ "$(field "$output" owner)" = me ]

	# a wrong token releases and renews nothing
	run -1 dsys-lock release job --token 0123456789abcdef0123456789abcdef
	[[ $output == *"not held with this token"* ]]
	run -1 dsys-lock renew job --token 0123456789abcdef0123456789abcdef
	run --separate-stderr dsys-lock status job
	[ "$(field "$output" fence)" = "$fence" ]
	[ "$(field "$output" held)" = True ]

	# the holder renews (token from acquire's line on stdin) and releases
	run --separate-stderr dsys-lock renew --ttl 20s <<<"$grant"
	assert_success
	[ "$(field "$output" fence)" = "$fence" ]
	[ "$(field "$output" ttl_ms)" = 20000 ]
	run --separate-stderr dsys-lock release job --token "$token"
	assert_output '{"name":"job","released":true}'
	run --separate-stderr dsys-lock status job
	assert_output '{"name":"job","held":false}'
	run -1 dsys-lock release <<<"$grant"   # twice is a "no"

	# the next grant has a greater fence
	run --separate-stderr dsys-lock acquire job --nowait
	assert_success
	[ "$(field "$output" fence)" -gt "$fence" ]
}

@test "lock: acquire, status, renew and release keep their promises on file:" {
	semantics "file:$DIR"
	[ -f "$DIR/job.state" ]
	head -1 "$DIR/job.state" | grep -q '"fence":2'
}

@test "lock: acquire, status, renew and release keep their promises on redis://" {
	redis_start
	semantics "$REDIS_URL"
	[ "$(redis-cli -p "$REDIS_PORT" get 'dsys/locks/{job}/fence')" = 2 ]
	[[ $(redis-cli -p "$REDIS_PORT" get 'dsys/locks/{job}') == *" 2 "* ]]
}

@test "lock: acquire, status, renew and release keep their promises on redis-cluster://" {
	redis_cluster_start 3
	semantics "$CLUSTER_URL"
	[ "$(redis-cli -c -p "${CLUSTER_PORTS[0]}" get 'dsys/locks/{job}/fence')" = 2 ]
}

expiry() {
	export DSYS_STORE=$1
	run --separate-stderr dsys-lock acquire short --ttl 300ms
	assert_success
	old=$output
	sleep 0.5
	run --separate-stderr dsys-lock acquire short --nowait
	assert_success
	run -1 dsys-lock renew <<<"$old"
	run -1 dsys-lock release <<<"$old"
	run --separate-stderr dsys-lock status short
	[ "$(field "$output" held)" = True ]
}

@test "lock: a grant not renewed expires after its TTL, and its token is then refused (file:, redis://)" {
	expiry "file:$DIR"
	redis_start
	expiry "$REDIS_URL"
}

waiting() {
	export DSYS_STORE=$1
	dsys-lock acquire w --ttl 10s >/dev/null
	t0=$(now_ms)
	run -4 dsys-lock acquire w --wait 400ms
	t1=$(now_ms)
	[[ $output == *"still held after waiting 400 ms"* ]]
	((t1 - t0 >= 400))
	((t1 - t0 < 2000))
	# a waiter gets the lock when the holder's short TTL ends
	dsys-lock acquire w2 --ttl 300ms >/dev/null
	run --separate-stderr dsys-lock acquire w2 --wait 5s
	assert_success
}

@test "lock: waiting past --wait exits 4, and a waiter gets a lock once it is free (file:, redis://)" {
	waiting "file:$DIR"
	redis_start
	waiting "$REDIS_URL"
}

semaphore() {
	export DSYS_STORE=$1
	local toks=() i
	for i in 1 2 3; do
		run --separate-stderr dsys-lock acquire pool --limit 3 --nowait
		assert_success
		toks+=("$(field "$output" token)")
	done
	run -1 dsys-lock acquire pool --limit 3 --nowait
	run -1 dsys-lock acquire pool --nowait   # a mutex cannot join a held semaphore
	run --separate-stderr dsys-lock status pool
	[ "${#lines[@]}" -eq 3 ]
	run --separate-stderr dsys-lock renew pool --token "${toks[1]}" --ttl 5s
	assert_success
	run --separate-stderr dsys-lock release pool --token "${toks[0]}"
	assert_success
	run --separate-stderr dsys-lock acquire pool --limit 3 --nowait
	assert_success
	[ "$(field "$output" fence)" = 4 ]
}

@test "lock: --limit N makes a semaphore of N holders (file:, redis://)" {
	semaphore "file:$DIR"
	redis_start
	semaphore "$REDIS_URL"
}

# contend STORE: 20 processes, one critical section each, appending
# (fence, start, end) to one file; sections must not overlap and fences
# must strictly increase.
contend() {
	local out=$BATS_TEST_TMPDIR/sections.$2 i
	contend_start "$1" "$out" 5s 30s 0.01
	for i in "${PIDS[@]}"; do
		wait "$i" || { cat "$BATS_TEST_TMPDIR/err" >&2; return 1; }
	done
	sections_ok "$out"
}

@test "lock: 20 contending runs never overlap and their fences strictly increase on file:" {
	contend "file:$DIR" file
}

@test "lock: 20 contending runs never overlap and their fences strictly increase on redis://" {
	redis_start
	contend "$REDIS_URL" redis
}

@test "lock: 20 contending runs never overlap and their fences strictly increase on redis-cluster://" {
	redis_cluster_start 3
	contend "$CLUSTER_URL" cluster
}

@test "lock: a run killed with -9 frees a file: lock at once, and its command dies with it" {
	export DSYS_STORE=file:$DIR
	dsys-lock run k --ttl 30s -- sh -c 'echo $$ >"$0"; exec sleep 100' "$BATS_TEST_TMPDIR/child" 3>&- &
	BG+=($!)
	holder=$!
	for ((i = 0; i < 100; i++)); do [ -s "$BATS_TEST_TMPDIR/child" ] && break; sleep 0.02; done
	child=$(cat "$BATS_TEST_TMPDIR/child")
	run -1 dsys-lock acquire k --nowait
	kill -9 "$holder"
	wait "$holder" || true
	t0=$(now_ms)
	run --separate-stderr dsys-lock acquire k --wait 5s
	t1=$(now_ms)
	assert_success
	((t1 - t0 < 1000))
	pid_gone "$child"
}

@test "lock: a run killed with -9 blocks the others on redis:// no longer than its TTL" {
	redis_start
	export DSYS_STORE=$REDIS_URL
	dsys-lock run k --ttl 1500ms -- sleep 100 3>&- &
	BG+=($!)
	holder=$!
	for ((i = 0; i < 100; i++)); do
		[[ $(dsys-lock status k) == *'"held":true'* ]] && break
		sleep 0.02
	done
	kill -9 "$holder"
	t0=$(now_ms)
	run --separate-stderr dsys-lock acquire k --wait 10s
	t1=$(now_ms)
	assert_success
	((t1 - t0 <= 1500 + 500))
}

# paused STORE: dsys-lock and its command are stopped past the TTL; another
# process takes the lock with a greater fence; when they resume, the
# command is stopped at once and dsys-lock exits 5.
paused() {
	export DSYS_STORE=$1
	local marks=$BATS_TEST_TMPDIR/marks.$2
	dsys-lock run p --ttl 1s --kill-after 2s -- sh -c \
		'while :; do echo "$DSYS_LOCK_FENCE" >>"$0"; sleep 0.05; done' "$marks" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	holder=$!
	BG+=("$holder")
	for ((i = 0; i < 100; i++)); do [ -s "$marks" ] && break; sleep 0.02; done
	child=$(pgrep -P "$holder")
	[ -n "$child" ]
	kill -STOP "$holder" "$child"
	sleep 1.3
	run --separate-stderr dsys-lock acquire p --nowait --ttl 10s
	assert_success
	newfence=$(field "$output" fence)
	kill -CONT "$child" "$holder"
	st=0
	wait "$holder" || st=$?
	[ "$st" -eq 5 ]
	grep -q "lost lock 'p'" "$BATS_TEST_TMPDIR/err"
	pid_gone "$child"
	# the old holder's marks all carry the old fence: a store that checks
	# fences refuses what it wrote after the handover
	[ "$(sort -u "$marks")" -lt "$newfence" ]
}

@test "lock: a run paused past its TTL has its command stopped on resume and exits 5 (file:)" {
	paused "file:$DIR" file
}

@test "lock: a run paused past its TTL has its command stopped on resume and exits 5 (redis://)" {
	redis_start
	paused "$REDIS_URL" redis
}

@test "lock: on lock loss the whole process group dies, the grandchild of sh -c too" {
	redis_start
	export DSYS_STORE=$REDIS_URL
	gc=$BATS_TEST_TMPDIR/gc
	dsys-lock run g --ttl 2s --kill-after 1s -- sh -c 'sleep 100 & echo $! >"$0"; wait' "$gc" \
		2>"$BATS_TEST_TMPDIR/err" 3>&- &
	holder=$!
	BG+=("$holder")
	for ((i = 0; i < 100; i++)); do [ -s "$gc" ] && break; sleep 0.02; done
	kill -0 "$(cat "$gc")"
	redis-cli -p "$REDIS_PORT" del 'dsys/locks/{g}' >/dev/null   # the lock is taken away
	st=0
	wait "$holder" || st=$?
	[ "$st" -eq 5 ]
	grep -q "no longer grants it" "$BATS_TEST_TMPDIR/err"
	# killed at once; poll only while init reaps the orphan's zombie
	pid_gone "$(cat "$gc")"
}

@test "lock: a file: run whose state is removed loses the lock and exits 5" {
	export DSYS_STORE=file:$DIR
	dsys-lock run r --ttl 900ms -- sleep 100 2>/dev/null 3>&- &
	holder=$!
	BG+=("$holder")
	for ((i = 0; i < 100; i++)); do [ -f "$DIR/r.state" ] && break; sleep 0.02; done
	rm "$DIR/r.state"
	st=0
	wait "$holder" || st=$?
	[ "$st" -eq 5 ]
}

@test "lock: SIGTERM to dsys-lock run reaches the command, whose status comes back, and the lock is released" {
	export DSYS_STORE=file:$DIR
	f=$BATS_TEST_TMPDIR/got
	dsys-lock run t -- sh -c 'trap "echo term >\"$0\"; exit 3" TERM; echo up >"$0"; sleep 100 & wait' "$f" 3>&- &
	holder=$!
	BG+=("$holder")
	for ((i = 0; i < 100; i++)); do [ -s "$f" ] && break; sleep 0.02; done
	kill -TERM "$holder"
	st=0
	wait "$holder" || st=$?
	[ "$st" -eq 3 ]
	[ "$(cat "$f")" = term ]
	run --separate-stderr dsys-lock status t
	assert_output '{"name":"t","held":false}'
}

@test "lock: run returns the command's exact status: exit 7 is 7, SIGKILL is 137, 127 and 126 as env(1)" {
	export DSYS_STORE=file:$DIR
	run -7 dsys-lock run x -- sh -c 'exit 7'
	run -137 dsys-lock run x -- sh -c 'kill -9 $$'
	run -0 dsys-lock run x -- true
	run -127 dsys-lock run x -- /no/such/command
	[[ $output == *"cannot run '/no/such/command'"* ]]
	run -126 dsys-lock run x -- "$DIR"
	# the command sees the lock it holds, and no option of its own is ours
	run --separate-stderr dsys-lock run x -- sh -c 'echo "$DSYS_LOCK_NAME ${#DSYS_LOCK_TOKEN} $DSYS_LOCK_FENCE"'
	assert_output "x 32 6"   # five grants before this one
	run --separate-stderr dsys-lock run x --ttl 5s echo -n --ttl
	assert_output "--ttl"
	run --separate-stderr dsys-lock status x
	assert_output '{"name":"x","held":false}'
}

# fds_seen [dsys-lock run ... --]: the open descriptors of find, run as
# given (with descriptor 7 open on /dev/null), "FD TARGET" a line, minus
# the one find reads /proc through, and 1 and 2, which bats' run replaces.
fds_seen() {
	"$@" find /proc/self/fd -mindepth 1 -maxdepth 1 -printf '%f %l\n' 7</dev/null |
		grep -v -e ' /proc/[0-9]*/fd$' -e '^[12] ' | sort -n
}

@test "lock: run's command gets the descriptors dsys-lock inherited and none of its own (file:, redis://)" {
	redis_start
	want=$(fds_seen)   # what the shell hands down: 0, 7, and bats' own
	echo "without dsys-lock: $want"
	[[ $want == *"7 /dev/null"* ]]
	for store in "file:$DIR" "redis://127.0.0.1:$REDIS_PORT"; do
		run --separate-stderr fds_seen dsys-lock run fds --store "$store" --
		assert_success
		echo "$store: $output"
		# the same, to the same files: not the store's socket or lock
		# file, not the event loop's descriptors
		[ "$output" = "$want" ]
	done
	# with a limit on open files below poll's batch, found through /proc
	run --separate-stderr bash -c "ulimit -n 100; $(declare -f fds_seen); fds_seen dsys-lock run fds --store file:$DIR --"
	assert_success
	echo "ulimit -n 100: $output"
	[ "$output" = "$want" ]
}

@test "lock: run --nowait on a held lock exits 1 without starting the command" {
	export DSYS_STORE=file:$DIR
	dsys-lock acquire busy >/dev/null
	run -1 dsys-lock run busy --nowait -- touch "$BATS_TEST_TMPDIR/ran"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	run -4 dsys-lock run busy --wait 100ms -- touch "$BATS_TEST_TMPDIR/ran"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
}

@test "lock: bad input gets one clear line and exit 2, an unreachable store exit 3, and leaves no lock" {
	export DSYS_STORE=file:$DIR
	long=$(printf 'n%.0s' {1..257})
	run -2 dsys-lock acquire "$long"
	[[ $output == *"is longer than 256 bytes"* ]]
	[ "${#lines[@]}" -eq 1 ]
	run -2 dsys-lock acquire a/b
	[[ $output == *"contains '/'"* ]]
	run -2 dsys-lock acquire ok --ttl 0
	run -2 dsys-lock acquire ok --ttl -1s
	run -2 dsys-lock acquire ok --limit 0
	run -2 dsys-lock acquire
	run -2 dsys-lock release ok --token nothex
	run -2 dsys-lock release ok <<<'not json'
	run -2 dsys-lock run ok
	run -2 dsys-lock frobnicate
	run -2 dsys-lock acquire ok --store mysql://x
	run -2 dsys-lock acquire ok --store mem:
	[[ $output == *"mem: holds no locks"* ]]
	run -3 dsys-lock acquire ok --store redlock://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3
	run -3 dsys-lock acquire ok --store etcd://127.0.0.1:1
	port=$(free_port)
	run -3 dsys-lock acquire ok --store "redis://127.0.0.1:$port"
	[[ $output == *"cannot reach redis://127.0.0.1:$port/0"* ]]
	[ "${#lines[@]}" -eq 1 ]
	run -3 dsys-lock run ok --store "redis://127.0.0.1:$port" -- touch "$BATS_TEST_TMPDIR/ran"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	redis_start
	run -2 dsys-lock acquire '}x' --store "$REDIS_URL"
	run --separate-stderr dsys-lock status ok
	assert_output '{"name":"ok","held":false}'
	# a key of another program under our names is an error, not a crash
	redis-cli -p "$REDIS_PORT" rpush 'dsys/locks/{theirs}' 1 >/dev/null
	run -3 dsys-lock acquire theirs --wait 2s --store "$REDIS_URL"
}

@test "lock: names beyond the plain file-name set get a hashed file and keep their own state" {
	export DSYS_STORE=file:$DIR
	run --separate-stderr dsys-lock acquire 'a lock with spaces and {braces}'
	assert_success
	run --separate-stderr dsys-lock acquire '.hidden' --nowait
	assert_success
	run -1 dsys-lock acquire 'a lock with spaces and {braces}' --nowait
	ls "$DIR" | grep -q '^~[0-9a-f]\{16\}\.state$'
}

@test "lock: a run whose Redis goes away stops its command before the TTL has passed, exit 5" {
	redis_start
	export DSYS_STORE=$REDIS_URL
	dsys-lock run down --ttl 3s -- sleep 100 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	holder=$!
	BG+=("$holder")
	for ((i = 0; i < 100; i++)); do
		[[ $(dsys-lock status down) == *'"held":true'* ]] && break
		sleep 0.02
	done
	t0=$(now_ms)
	redis_stop
	st=0
	wait "$holder" || st=$?
	t1=$(now_ms)
	[ "$st" -eq 5 ]
	((t1 - t0 < 3000))   # the last confirmed renewal was sent less than a TTL ago
	grep -q "renewal not confirmed within the TTL" "$BATS_TEST_TMPDIR/err"
}

@test "lock: file: fences are reserved durably in blocks; a state from another boot drops its grants and fences go on past the reservation" {
	export DSYS_STORE=file:$DIR
	run --separate-stderr dsys-lock acquire b --ttl 1h
	assert_success
	[ "$(field "$output" fence)" = 1 ]
	grep -q '^{"reserved":1000}$' "$DIR/b.fence"
	boot=$(cat /proc/sys/kernel/random/boot_id)
	grep -q "\"reserved\":1000,\"boot\":\"$boot\"" "$DIR/b.state"
	run -1 dsys-lock acquire b --nowait
	# as if the machine had crashed and booted again: the unsynced state
	# is not trusted, the grant died with its boot
	sed -i 's/"boot":"[^"]*"/"boot":"00000000-0000-0000-0000-000000000000"/' "$DIR/b.state"
	run --separate-stderr dsys-lock status b
	assert_output '{"name":"b","held":false}'
	run --separate-stderr dsys-lock acquire b --nowait
	assert_success
	[ "$(field "$output" fence)" = 1001 ]
	grep -q '^{"reserved":2000}$' "$DIR/b.fence"
	run -0 dsys-lock release <<<"$output"
	# a state lost whole: the counter goes on from the reservation
	rm "$DIR/b.state"
	run --separate-stderr dsys-lock acquire b --nowait
	assert_success
	[ "$(field "$output" fence)" = 2001 ]
	# a .fence that is not ours is an error, not a reset
	rm "$DIR/b.state"
	echo junk >"$DIR/b.fence"
	run -3 dsys-lock acquire b --nowait
}
