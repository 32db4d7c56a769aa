#!/usr/bin/env bats
# Blue-green and rolling releases (examples/release.sh): real dsys-serve
# instances under dsys-register add, nginx in front with the upstream that
# dsys-register render writes, dsys-bench through nginx during the switch,
# and a real Prometheus scraping every instance.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	dsys_setup
	export DSYS_BIN DSYS_PY
	EX=$BATS_TEST_DIRNAME/../examples
}
teardown() { dsys_teardown; }

# release ARGS...: run the example with RATE 500/s; its JSON line in $res
# (and $output, until the next run)
release() {
	run --separate-stderr env RATE=500/s "$@"
	res=$output
	echo "$output"
	echo "$stderr" >&2
}

@test "release: blue-green moves every request from blue to green under load, none failed, Prometheus counts them all" {
	release bash "$EX/release.sh" blue-green
	[ "$status" -eq 0 ]
	run jq -e '.result == "released" and .under_load and .live == "green"' <<<"$res"
	assert_success
	run jq -e '.requests == 8000 and .errors == 0 and .lost == 0' <<<"$res"
	assert_success
	# the switch in Prometheus: two instances answered, and one of them
	# (blue) had its last traffic well before the other (green)
	run jq -e '(.prometheus.answered | length) == 2 and ([.prometheus.answered[]] | all(. > 0))' <<<"$res"
	assert_success
	run jq -e '[.prometheus.last_traffic_s[]] | sort | .[1] - .[0] >= 1' <<<"$res"
	assert_success
	run jq -e '.steps == [.steps[0]] and .steps[0].old == "blue" and .steps[0].new == "green"' <<<"$res"
	assert_success
	# nginx's old workers were gone within worker_shutdown_timeout (2 s)
	# and a margin before blue was stopped (the script fails past 5 s)
	run jq -e '.steps[0].nginx_old_workers_ms | type == "number" and . <= 5000' <<<"$res"
	assert_success
}

@test "release: rolling replaces three instances one at a time, each after its check passed, with no failed request" {
	release bash "$EX/release.sh" rolling
	[ "$status" -eq 0 ]
	run jq -e '.result == "released" and .under_load and .live == "v2-0 v2-1 v2-2"' <<<"$res"
	assert_success
	run jq -e '.errors == 0 and .lost == 0 and .requests == 20000' <<<"$res"
	assert_success
	run jq -c '[.steps[] | [.old, .new]]' <<<"$res"
	assert_output '[["v1-0","v2-0"],["v1-1","v2-1"],["v1-2","v2-2"]]'
	# a new instance waited for its check: two passes 1 s apart
	run jq -e '[.steps[].pass_ms] | all(. >= 900)' <<<"$res"
	assert_success
	run jq -e '[.steps[].nginx_old_workers_ms] | all(type == "number" and . <= 5000)' <<<"$res"
	assert_success
}

@test "release: a green that stays unhealthy is rolled back: blue keeps every request, none failed" {
	release env BROKEN=check CHECK_TIMEOUT=2 DURATION=8s bash "$EX/release.sh" blue-green
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"green did not pass its check: rolling back, blue keep serving"* ]]
	run jq -e '.result == "rolled_back" and .live == "blue" and .errors == 0 and .lost == 0' <<<"$res"
	assert_success
	run jq -c '.steps' <<<"$res"
	assert_output '[{"old":"blue","new":"green","rolled_back":"not passing after 2s"}]'
	# green never took a request
	run jq -e '(.prometheus.answered | length) == 1 and .prometheus.answered[] == .requests' <<<"$res"
	assert_success
}

@test "release: a green that cannot start is rolled back at once, blue serving on" {
	release env BROKEN=start DURATION=8s bash "$EX/release.sh" blue-green
	[ "$status" -eq 1 ]
	run jq -e '.result == "rolled_back" and .live == "blue" and .errors == 0 and .lost == 0' <<<"$res"
	assert_success
	run jq -r '.steps[0].rolled_back' <<<"$res"
	assert_output exited
}

@test "release: a mode it does not know is a usage error, exit 2" {
	run --separate-stderr bash "$EX/release.sh" red-black
	[ "$status" -eq 2 ]
	assert_equal "$stderr" "usage: release.sh blue-green|rolling"
}
