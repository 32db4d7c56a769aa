#!/usr/bin/env bats
# The examples are part of the documentation: each one runs here.

bats_require_minimum_version 1.5.0

setup() {
	cd "$BATS_TEST_DIRNAME/.."
	: "${DSYS_BIN:=$PWD/build/bin}"
	export DSYS_BIN
}

@test "examples: make demo's script runs end to end and prints JSON lines only on stdout" {
	run --separate-stderr bash examples/demo.sh
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	[ -n "$output" ]
	# every stdout line is one JSON object
	while IFS= read -r line; do
		echo "$line" | jq -e 'type == "object"' >/dev/null || { echo "not JSON: $line"; false; }
	done <<<"$output"
	[[ "$output" == *'"program":"dsys-serve"'* ]]
}

@test "examples: the demo stops every server it started" {
	run --separate-stderr bash examples/demo.sh
	[ "$status" -eq 0 ]
	pids=$(echo "$output" | jq -r 'select(.event == "started") | .pid')
	[ -n "$pids" ]
	for p in $pids; do
		! kill -0 "$p" 2>/dev/null || { echo "pid $p still runs"; false; }
	done
}

@test "examples: the cron job that five machines start at once runs on exactly one" {
	run --separate-stderr bash examples/cron-once.sh
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	[ "${#lines[@]}" -eq 1 ] || { echo "$output"; false; }
	echo "$output" | jq -e '.ran_on | startswith("machine-")' >/dev/null
	echo "$output" | jq -e '.fence == 1' >/dev/null
}

@test "examples: the traced deploy is one trace of its steps, drawn as a waterfall with their output" {
	run --separate-stderr bash examples/traced-deploy.sh
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	[[ "${lines[0]}" == "trace "*"7 spans  2 services"* ]] || { echo "$output"; false; }
	[[ "${lines[1]}" == "*  deploy "* ]]
	for step in build migrate smoke release; do
		grep -qE "^[ *!]{2}   $step " <<<"$output" || { echo "no $step: $output"; false; }
	done
	grep -q -- '- INFO {"key":"deploys","value":1}' <<<"$output"
	# the service's spans, one level under the steps that called it
	grep -qE '^[ *!]{2}     PUT /counters/ +counter ' <<<"$output" || { echo "$output"; false; }
	grep -qE '^[ *!]{2}     POST /incr +counter ' <<<"$output" || { echo "$output"; false; }
}

@test "examples: grpc-user.sh calls the tutorial's UserService on dsys-serve through grpcio stubs from its .proto" {
	run --separate-stderr bash examples/grpc-user.sh
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	[ "${#lines[@]}" -eq 2 ] || { echo "$output"; false; }
	echo "${lines[0]}" | jq -e '.name == "user-42" and .age == 60' >/dev/null
	echo "${lines[1]}" | jq -e '.error == "NOT_FOUND"' >/dev/null
}

@test "examples: etcdctl-on-dsys-raft.sh puts, gets, watches, locks and lists members of a 3-node dsys-raft with etcdctl" {
	run --separate-stderr bash examples/etcdctl-on-dsys-raft.sh
	[ "$status" -eq 0 ] || { echo "$output"; echo "$stderr"; false; }
	[ "${#lines[@]}" -eq 4 ] || { echo "$output"; false; }
	echo "${lines[0]}" | jq -e '.value == "hello"' >/dev/null
	echo "${lines[1]}" | jq -e '.events == ["PUT","/demo/a","1","DELETE","/demo/a"]' >/dev/null
	echo "${lines[2]}" | jq -e '.held_as | startswith("demo-lock/")' >/dev/null
	echo "${lines[3]}" | jq -e '.members == ["n1","n2","n3"]' >/dev/null
}

@test "examples: nginx-upstream.sh keeps a real nginx's upstream block on the live instances as they come and die" {
	run --separate-stderr bash examples/nginx-upstream.sh
	[ "$status" -eq 0 ] || { echo "$output"; echo "$stderr"; false; }
	[ "${#lines[@]}" -eq 4 ] || { echo "$output"; false; }
	echo "${lines[1]}" | jq -e '.upstream == ["a","b","c"] and .answered_by == ["a","b","c"] and .failed == 0' >/dev/null
	echo "${lines[2]}" | jq -e '.step == "kill -9 a" and .answered_by == ["b","c"] and .failed == 0' >/dev/null
	echo "${lines[3]}" | jq -e '.answered_by == ["c"] and .ok > 0 and .failed == 0' >/dev/null
}

@test "examples: raft-lock-register.sh runs dsys-lock and dsys-register on a 3-node dsys-raft cluster" {
	run --separate-stderr bash examples/raft-lock-register.sh
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	# three workers, one job: exactly one ran it
	[ "$(grep -c '"job":"report"' <<<"$output")" -eq 1 ] || { echo "$output"; false; }
	grep '"job"' <<<"$output" | jq -e '.ran_on | startswith("worker-")' >/dev/null
	grep '"service"' <<<"$output" | jq -e '.addr == "127.0.0.1:8080" and .status == "passing"' >/dev/null
	grep -qx '{"key":"dsys/services/web/127.0.0.1:8080"}' <<<"$output" || { echo "$output"; false; }
	while IFS= read -r line; do
		jq -e 'type == "object"' <<<"$line" >/dev/null || { echo "not JSON: $line"; false; }
	done <<<"$output"
}
