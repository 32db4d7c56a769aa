#!/usr/bin/env bats
# dsys-counter on real redis-server processes: redis:// and a 3-master
# redis-cluster:// started on loopback ports (tests/redis_helpers.bash).

load helpers
load redis_helpers
load counter_helpers
bats_require_minimum_version 1.5.0

setup_file() {
	command -v redis-server >/dev/null || fail "redis-server is not installed (make deps installs it)"
}

setup() {
	dsys_setup
	export DSYS_LOG_LEVEL=warn
	REDIS_PID=
	CLUSTER_PIDS=()
}

teardown() {
	dsys_teardown
	redis_stop
	redis_cluster_stop
}

@test "counter redis: incr, get, set, del and list on redis://, straight and through the service" {
	redis_start
	run dsys-counter incr a --by 5 --store "$REDIS_URL"
	assert_output '{"key":"a","value":5}'
	[ "$(redis-cli -p "$REDIS_PORT" get a)" = 5 ]
	REDIS_URL=$REDIS_URL run dsys-counter incr a   # REDIS_URL alone picks the store
	assert_output '{"key":"a","value":6}'
	run dsys-counter set --store "$REDIS_URL" -- b -7   # -- before a negative value
	assert_output '{"key":"b","value":-7}'
	redis-cli -p "$REDIS_PORT" set 'a*b' 1 >/dev/null
	run dsys-counter list --prefix 'a*' --store "$REDIS_URL"   # glob characters are literal
	assert_output '{"key":"a*b","value":1}'
	serve --store "$REDIS_URL"
	[[ $SERVER_READY == *"\"store\":\"redis://127.0.0.1:$REDIS_PORT/0\""* ]]
	run post /incr '[{"key":"a"},{"key":"b","by":7}]'
	assert_output '200 [{"key":"a","value":7},{"key":"b","value":0}]'
	run curl -s "$URL/counters?prefix=b"
	assert_output '{"key":"b","value":0}'
	run curl -s -X DELETE "$URL/counters/b"
	assert_output '{"key":"b","deleted":true,"value":0}'
	run dsys-counter get b --server "$URL"
	[ "$status" -eq 1 ]
	run dsys-counter del b --store "$REDIS_URL"
	[ "$status" -eq 1 ]
}

@test "counter redis: an overflow is a 400 and a key holding no integer a 409, both unchanged" {
	redis_start
	redis-cli -p "$REDIS_PORT" set big 9223372036854775807 >/dev/null
	redis-cli -p "$REDIS_PORT" set text hello >/dev/null
	serve --store "$REDIS_URL"
	run post /incr '{"key":"big","by":1}'
	assert_output '400 {"key":"big","error":"increment would overflow int64"}'
	run post /incr '{"key":"text"}'
	assert_output '409 {"key":"text","error":"the stored value is not an integer"}'
	[ "$(redis-cli -p "$REDIS_PORT" get big)" = 9223372036854775807 ]
	[ "$(redis-cli -p "$REDIS_PORT" get text)" = hello ]
	run dsys-counter incr big --store "$REDIS_URL"
	[ "$status" -eq 2 ]
}

@test "counter redis: M concurrent clients making N increments leave exactly N, answers a permutation of 1..N" {
	redis_start
	serve --store "$REDIS_URL"
	"$DSYS_PY" "$BATS_TEST_DIRNAME/counter_load.py" "$SERVER_PORT" perm 8 2000 "$BATS_TEST_TMPDIR/vals"
	run permutation "$BATS_TEST_TMPDIR/vals" 2000
	assert_success
	[ "$(redis-cli -p "$REDIS_PORT" get perm)" = 2000 ]
}

@test "counter redis: redis-server stopped and restarted under load: 503s meanwhile, no crash, full service after" {
	redis_start
	serve --store "$REDIS_URL" --backend-timeout 1s
	COUNTER_LOAD_MAX_FAILURES=0 "$DSYS_PY" "$BATS_TEST_DIRNAME/counter_load.py" "$SERVER_PORT" k 4 3000 \
		"$BATS_TEST_TMPDIR/acked" "$BATS_TEST_TMPDIR/errors" 3>&- &
	load=$!
	for ((i = 0; i < 200; i++)); do
		[ "$(wc -l <"$BATS_TEST_TMPDIR/acked")" -ge 200 ] && break
		sleep 0.05
	done
	[ "$(wc -l <"$BATS_TEST_TMPDIR/acked")" -ge 200 ]   # Redis stops under load
	redis_stop
	run post /incr '{"key":"k"}'
	assert_output --partial '503 {"key":"k","error":"backend unreachable"}'
	wait "$load"
	[ "$(cat "$BATS_TEST_TMPDIR/errors")" -gt 0 ]
	kill -0 "$SERVER_PID"
	[ "$(metric "$SERVER_PORT" counter_backend_errors_total)" -gt 0 ]
	redis_restart
	for ((i = 0; i < 100; i++)); do
		[[ $(post /incr '{"key":"back"}') == 200* ]] && break
		sleep 0.1
	done
	"$DSYS_PY" "$BATS_TEST_DIRNAME/counter_load.py" "$SERVER_PORT" after 4 1000 "$BATS_TEST_TMPDIR/vals"
	run permutation "$BATS_TEST_TMPDIR/vals" 1000
	assert_success
}

@test "counter cluster: keys spread over 3 masters, hash tags share a slot, list walks every master" {
	redis_cluster_start 3
	seq 1 60 | sed 's/^/key/' | dsys-counter incr - --store "$CLUSTER_URL" >/dev/null
	for port in "${CLUSTER_PORTS[@]}"; do
		n=$(redis-cli -p "$port" dbsize)
		echo "port $port holds $n keys"
		[ "$n" -gt 0 ]
	done
	run dsys-counter list --prefix key --store "$CLUSTER_URL"
	[ "${#lines[@]}" -eq 60 ]
	run dsys-counter incr '{user1}:a' --store "$CLUSTER_URL"
	run dsys-counter incr '{user1}:b' --by 2 --store "$CLUSTER_URL"
	slot=$(redis-cli -p "${CLUSTER_PORTS[0]}" cluster keyslot user1)
	owner=$(redis_cluster_owner "$slot")
	[ "$(redis-cli -p "$owner" get '{user1}:a')" = 1 ]
	[ "$(redis-cli -p "$owner" get '{user1}:b')" = 2 ]
}

@test "counter cluster: concurrent increments are exact, and a resharded slot is followed (MOVED)" {
	redis_cluster_start 3
	serve --store "$CLUSTER_URL"
	"$DSYS_PY" "$BATS_TEST_DIRNAME/counter_load.py" "$SERVER_PORT" perm 8 1500 "$BATS_TEST_TMPDIR/vals"
	run permutation "$BATS_TEST_TMPDIR/vals" 1500
	assert_success
	run post /incr '{"key":"moving"}'
	assert_output '200 {"key":"moving","value":1}'
	slot=$(redis-cli -p "${CLUSTER_PORTS[0]}" cluster keyslot moving)
	from=$(redis_cluster_owner "$slot")
	for p in "${CLUSTER_PORTS[@]}"; do [ "$p" != "$from" ] && to=$p && break; done
	redis_cluster_move_slot "$slot" "$from" "$to"
	run post /incr '{"key":"moving","by":2}'
	assert_output '200 {"key":"moving","value":3}'
	[ "$(redis-cli -p "$to" get moving)" = 3 ]
	run curl -s "$URL/counters/moving"
	assert_output '{"key":"moving","value":3}'
}

@test "counter redis: a redis-server that stops answering gets a 503 within --backend-timeout" {
	redis_start
	serve --store "$REDIS_URL" --backend-timeout 500ms
	run post /incr '{"key":"t"}'
	assert_output '200 {"key":"t","value":1}'
	kill -STOP "$REDIS_PID"
	run curl -s --max-time 20 -w ' %{http_code}' -X POST -d '{"key":"t"}' "$URL/incr"
	kill -CONT "$REDIS_PID"
	assert_output '{"key":"t","error":"backend timed out"} 503'
	for ((i = 0; i < 50; i++)); do
		[[ $(post /incr '{"key":"t"}') == 200* ]] && break
		sleep 0.1
	done
	run post /incr '{"key":"t"}'
	assert_output --partial '200 {"key":"t","value":'
}

@test "counter redis: del of a key holding no integer refuses and leaves the key as it was" {
	redis_start
	redis-cli -p "$REDIS_PORT" set notint hello >/dev/null
	redis-cli -p "$REDIS_PORT" set big 9223372036854775808 >/dev/null
	redis-cli -p "$REDIS_PORT" rpush alist x >/dev/null
	redis-cli -p "$REDIS_PORT" set min -9223372036854775808 >/dev/null
	run --separate-stderr dsys-counter del notint --store "$REDIS_URL"
	[ "$status" -eq 1 ]
	assert_output '{"key":"notint","error":"the stored value is not an integer"}'
	[ "$(redis-cli -p "$REDIS_PORT" get notint)" = hello ]
	run --separate-stderr dsys-counter del big --store "$REDIS_URL"
	[ "$status" -eq 1 ]
	[ "$(redis-cli -p "$REDIS_PORT" get big)" = 9223372036854775808 ]
	run --separate-stderr dsys-counter del alist --store "$REDIS_URL"
	[ "$status" -eq 1 ]
	[ "$(redis-cli -p "$REDIS_PORT" lrange alist 0 -1)" = x ]
	run --separate-stderr dsys-counter del min --store "$REDIS_URL"
	assert_success
	assert_output '{"key":"min","deleted":true,"value":-9223372036854775808}'
	[ "$(redis-cli -p "$REDIS_PORT" exists min)" = 0 ]
	serve --store "$REDIS_URL"
	run req DELETE /counters/notint
	assert_output '409 {"key":"notint","error":"the stored value is not an integer"}'
	[ "$(redis-cli -p "$REDIS_PORT" get notint)" = hello ]
}

@test "counter cluster: del of a key holding no integer refuses and leaves the key as it was" {
	redis_cluster_start 3
	dsys-counter set '{t}:n' 4 --store "$CLUSTER_URL"
	slot=$(redis-cli -p "${CLUSTER_PORTS[0]}" cluster keyslot t)
	owner=$(redis_cluster_owner "$slot")
	redis-cli -p "$owner" set '{t}:s' hello >/dev/null
	run --separate-stderr dsys-counter del '{t}:s' --store "$CLUSTER_URL"
	[ "$status" -eq 1 ]
	assert_output '{"key":"{t}:s","error":"the stored value is not an integer"}'
	[ "$(redis-cli -p "$owner" get '{t}:s')" = hello ]
	run --separate-stderr dsys-counter del '{t}:n' --store "$CLUSTER_URL"
	assert_success
	assert_output '{"key":"{t}:n","deleted":true,"value":4}'
	[ "$(redis-cli -p "$owner" exists '{t}:n')" = 0 ]
}

@test "counter redis: a backend timeout through --server is 'backend timed out' and exit 4, as with --store" {
	redis_start
	serve --store "$REDIS_URL" --backend-timeout 300ms
	dsys-counter incr t --server "$URL"
	kill -STOP "$REDIS_PID"
	run --separate-stderr dsys-counter incr t --server "$URL"
	local st1=$status out1=$output
	run --separate-stderr bash -c "echo t | dsys-counter incr - --server '$URL'"
	local st2=$status out2=$output
	run --separate-stderr dsys-counter get t --store "$REDIS_URL" --backend-timeout 300ms
	kill -CONT "$REDIS_PID"
	[ "$st1" -eq 4 ]
	[ "$out1" = '{"key":"t","error":"backend timed out"}' ]
	[ "$st2" -eq 4 ]
	[ "$out2" = '{"key":"t","error":"backend timed out"}' ]
	[ "$status" -eq 4 ]
	assert_output '{"key":"t","error":"backend timed out"}'
}

@test "counter redis: /health is 503 with the reason while the store is unreachable, failures are logged once a second" {
	local port
	redis_start
	port=$REDIS_PORT
	redis_stop
	serve --store "redis://127.0.0.1:$port"
	run curl -s -w ' %{http_code}' "$URL/health"
	assert_output "{\"status\":\"unavailable\",\"reason\":\"backend unreachable\",\"store\":\"redis://127.0.0.1:$port/0\"} 503"
	local t0=$SECONDS
	"$DSYS_PY" - "$SERVER_PORT" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(500):
    c.request("POST", "/incr", body='{"key":"k"}')
    c.getresponse().read()
PY
	local secs=$((SECONDS - t0 + 1))
	run grep -c 'backend redis://127.0.0.1:'"$port"'/0: backend unreachable' "$SERVER_ERR"
	echo "$output log lines for 500 failures in about $secs s"
	[ "$output" -ge 1 ]
	[ "$output" -le $((secs + 2)) ]
	# the store comes up: healthy, and one line says so
	redis_restart
	for ((i = 0; i < 50; i++)); do
		[[ $(curl -s -o /dev/null -w '%{http_code}' "$URL/health") == 200 ]] && break
		sleep 0.1
	done
	run curl -s -w ' %{http_code}' "$URL/health"
	assert_output "{\"status\":\"ok\",\"store\":\"redis://127.0.0.1:$port/0\"} 200"
	run post /incr '{"key":"k"}'
	assert_output '200 {"key":"k","value":1}'
	grep -q 'answers again' "$SERVER_ERR"
}

@test "counter redis: a URL naming what is not there says so: a database out of range, a cluster that is a plain Redis" {
	redis_start
	run -2 --separate-stderr dsys-counter get a --store "$REDIS_URL/99"
	assert_equal "$stderr" "dsys-counter: cannot use $REDIS_URL/99: the backend has no such database: the /DB of the URL is out of range"
	run -2 --separate-stderr dsys-counter serve --listen 127.0.0.1:0 --store "$REDIS_URL/99"
	[[ $stderr == *'no such database'* ]]
	local cl=${REDIS_URL/redis:/redis-cluster:}
	run -2 --separate-stderr dsys-counter incr a --store "$cl"
	assert_equal "$stderr" "dsys-counter: cannot use $cl: cluster support is disabled on the backend: use redis:// for it"
	run -2 --separate-stderr dsys-counter serve --listen 127.0.0.1:0 --store "$cl"
	[[ $stderr == *'cluster support is disabled'* ]]
	[ "$(redis-cli -p "$REDIS_PORT" dbsize)" = 0 ]
	run --separate-stderr dsys-counter incr a --store "$REDIS_URL/3"
	assert_output '{"key":"a","value":1}'
}
