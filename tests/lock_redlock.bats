#!/usr/bin/env bats
# dsys-lock on redlock:// over 3 independent redis-servers
# (tests/redis_helpers.bash): a majority decides, a failed attempt leaves
# nothing behind, fences rise across majorities, and 20 contenders never
# overlap while one server is killed.

load helpers
load redis_helpers
load lock_helpers
bats_require_minimum_version 1.5.0
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-120}

setup() { lock_setup; }

teardown() { lock_teardown rl_stop_all; }

@test "redlock: acquire, status, renew and release act on a majority, and fences rise" {
	redlock_start
	export DSYS_STORE=$RL_URL
	run --separate-stderr dsys-lock acquire job --ttl 60s --owner me   # outlives the commands up to the renew, at any load
	assert_success
	grant=$output
	fence=$(field "$grant" fence)
	token=$(field "$grant" token)
	[ "$(field "$grant" store)" = "$RL_URL" ]
	# every server holds the grant with the fence of the majority
	for p in "${RL_PORTS[@]}"; do
		[ "$(redis-cli -p "$p" get 'dsys/locks/{job}')" = "$token $fence me" ]
	done
	run -1 dsys-lock acquire job --nowait
	run --separate-stderr dsys-lock status job
	[ "$(field "$output" fence)" = "$fence" ]
	[ "$(field "$output" owner)" = me ]
	run -1 dsys-lock renew job --token 0123456789abcdef0123456789abcdef
	run --separate-stderr dsys-lock renew <<<"$grant"
	assert_success
	[ "$(field "$output" fence)" = "$fence" ]
	run -0 dsys-lock release job --token "$token"
	for p in "${RL_PORTS[@]}"; do
		[ -z "$(redis-cli -p "$p" get 'dsys/locks/{job}')" ]
	done
	run -1 dsys-lock release job --token "$token"
	# the fence of a grant on another majority is still greater: server 0
	# ran ahead, and a grant by servers 1 and 2 alone must pass it anyway
	redis-cli -p "${RL_PORTS[0]}" set 'dsys/locks/{job}/fence' 1000 >/dev/null
	run -0 dsys-lock release <<<"$(dsys-lock acquire job --nowait)"
	redis-cli -p "${RL_PORTS[0]}" set 'dsys/locks/{job}' 'other 1 x' >/dev/null
	run --separate-stderr dsys-lock acquire job --nowait
	assert_success
	[ "$(field "$output" fence)" -gt 1000 ]
}

@test "redlock: a minority holder does not block, a majority does, and a failed attempt leaves no key" {
	redlock_start
	export DSYS_STORE=$RL_URL
	redis-cli -p "${RL_PORTS[0]}" set 'dsys/locks/{m}' 'someone 1 x' >/dev/null
	run -0 dsys-lock acquire m --nowait
	redis-cli -p "${RL_PORTS[1]}" set 'dsys/locks/{n}' 'someone 1 x' >/dev/null
	redis-cli -p "${RL_PORTS[2]}" set 'dsys/locks/{n}' 'someone 1 x' >/dev/null
	run -1 dsys-lock acquire n --nowait
	[ -z "$(redis-cli -p "${RL_PORTS[0]}" get 'dsys/locks/{n}')" ]
	run -2 dsys-lock acquire n --limit 2
	[[ $output == *"no semaphores"* ]]
}

@test "redlock: one server down still grants; two down exits 3 and starts nothing" {
	redlock_start
	export DSYS_STORE=$RL_URL
	rl_kill 1
	run -0 dsys-lock run one -- true
	rl_kill 2
	run -3 dsys-lock run one -- touch "$BATS_TEST_TMPDIR/ran"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == *"cannot reach $RL_URL"* ]]
}

@test "redlock: 20 contending runs on 3 redis-servers never overlap and fences rise, with one server killed mid-run" {
	redlock_start
	local out=$BATS_TEST_TMPDIR/sections i
	contend_start "$RL_URL" "$out" 3s 60s 0.05
	for ((i = 0; i < 300; i++)); do [ "$(grep -c end "$out")" -ge 5 ] && break; sleep 0.02; done
	rl_kill 0
	local failed=0
	for i in "${PIDS[@]}"; do
		wait "$i" || failed=$((failed + 1))
	done
	cat "$BATS_TEST_TMPDIR/err" >&2
	[ "$failed" -eq 0 ]
	sections_ok "$out"
}

@test "redlock: bad input gets one clear line and exit 2, unreachable servers exit 3, and no key is left" {
	redlock_start
	export DSYS_STORE=$RL_URL
	long=$(printf 'n%.0s' {1..257})
	run -2 dsys-lock acquire "$long"
	[ "${#lines[@]}" -eq 1 ]
	run -2 dsys-lock acquire a/b
	run -2 dsys-lock acquire ok --ttl 0
	run -2 dsys-lock acquire ok --ttl -1s
	run -2 dsys-lock acquire '}x'
	run -2 dsys-lock acquire ok --store redlock://
	run -2 dsys-lock acquire ok --store 'redlock://127.0.0.1:notaport'
	p1=$(free_port)
	p2=$(free_port)
	run -3 dsys-lock acquire ok --store "redlock://127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:${RL_PORTS[0]}"
	[ "${#lines[@]}" -eq 1 ]
	for p in "${RL_PORTS[@]}"; do
		[ "$(redis-cli -p "$p" --scan --pattern 'dsys/locks/*' | grep -v /fence | wc -l)" -eq 0 ]
	done
}
