#!/usr/bin/env bats
# The long-running programs under valgrind: no leak, no memory error, and no
# allocation per request in the steady state.
#
# Each server runs with --threads 1 under memcheck (--leak-check=full, leaks
# of the definite and indirect kinds count as errors, --error-exitcode=99),
# is driven over keep-alive connections, then stopped with SIGTERM.  valgrind
# passes the program's exit status through unless it found an error, so exit
# 0 is the first proof; its log must also say "ERROR SUMMARY: 0 errors" and
# that nothing was definitely or indirectly lost.
#
# The allocation test compares valgrind's "total heap usage: A allocs" of two
# runs that differ only in the number of requests (N1 and N1 + EXTRA, over
# the same 4 connections, which dsys-bench must report it opened exactly
# once each): the steady state allocates nothing, so A must not grow with
# the requests.  See heap_growth_ok for the bound.  /metrics is left out:
# a scrape is not a hot path, and it reads /proc through stdio (about 11
# allocations a scrape, measured).
#
# dsys-register add and dsys-lock run, which run to their command's end,
# are run the same way to their end (vg_run), on file: and on a real etcd.
#
# Valgrind cannot run a sanitizer build (make check), so the file skips there.

load valgrind_helpers

@test "valgrind: dsys-serve answers every route, bad requests and a drain with no leak and exits 0" {
	vg_start serve "${serve_cmd[@]}" --drain-timeout 2s
	local u="http://127.0.0.1:$SERVER_PORT"
	# one curl, one keep-alive connection; -o applies to one URL each
	run curl -s -w '%{http_code} ' --max-time 60 -o /dev/null "$u/hello" \
		-o /dev/null "$u/health" -o /dev/null "$u/metrics" \
		-o /dev/null "$u/nope" -o /dev/null "$u/hello?x=1"
	assert_output '200 200 200 404 200 '
	run curl -s -o /dev/null -w '%{http_code}' --max-time 60 -X POST -d x "$u/hello"
	assert_output 405
	run raw_http -n 1 -w 30 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\n\r\n'
	assert_output --partial 'HTTP/1.1 400'
	run raw_http -n 1 -w 30 "$SERVER_PORT" "GET /hello HTTP/1.1\r\nHost: a\r\nX: $(head -c 9000 /dev/zero | tr '\0' a)\r\n\r\n"
	assert_output --partial 'HTTP/1.1 431'
	run raw_http -n 2 -w 30 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /hel'
	assert_output --partial 'Hello from dsys!'
	# a connection with half a request, and an idle one, open at SIGTERM
	exec 5<>"/dev/tcp/127.0.0.1/$SERVER_PORT" 6<>"/dev/tcp/127.0.0.1/$SERVER_PORT"
	printf 'GET /hello HTTP/1.1\r\nHo' >&5
	curl -s -o /dev/null --max-time 60 "$u/health"
	vg_stop
	exec 5>&- 6>&-
}

@test "valgrind: dsys-counter serve on mem: answers every route and bad input with no leak and exits 0" {
	vg_start counter "${counter_cmd[@]}" --store mem: --drain-timeout 2s
	local u="http://127.0.0.1:$SERVER_PORT"
	post() {
		curl -s -w ' %{http_code}' --max-time 60 -X "$1" -H 'Content-Type: application/json' -d "$3" "$u$2"
	}
	run post POST /incr '{"key":"k","by":5}'
	assert_output '{"key":"k","value":5} 200'
	run post POST /incr '[{"key":"a"},{"key":"k","by":-2},{"key":"caf\u00e9"}]'
	assert_output '[{"key":"a","value":1},{"key":"k","value":3},{"key":"café","value":1}] 200'
	run post PUT /counters/b '{"value":7}'
	assert_output --partial 200
	run curl -s --max-time 60 "$u/counters/b" "$u/counters?prefix=" "$u/metrics" "$u/health"
	assert_output --partial '{"key":"b","value":7}'
	run post DELETE /counters/b ''
	assert_output --partial 200
	run curl -s -o /dev/null -w '%{http_code}' --max-time 60 "$u/counters/b"
	assert_output 404
	run post POST /incr '{"key":'
	assert_output --partial 400
	run post POST /incr '{"key":"k","by":9223372036854775807}'
	assert_output --partial 400
	run post POST /incr "{\"key\":\"$(head -c 600 /dev/zero | tr '\0' x)\"}"
	assert_output --partial 400
	run post POST /incr '{"key":"k","by":1.5}'
	assert_output --partial 400
	exec 5<>"/dev/tcp/127.0.0.1/$SERVER_PORT"
	printf 'POST /incr HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n{"key"' >&5
	vg_stop
	exec 5>&-
}

@test "valgrind: dsys-counter serve on file: counts, restarts and exits 0 with no leak" {
	local dir
	dir=$(dsys_tmp store)
	# --io uv: the file: store syncs its log on a thread of its own, and
	# valgrind 3.19 holds its lock (one thread runs at a time) through the
	# loop's blocking io_uring_enter, so with the ring each request waited
	# for a timer to end that wait (0.7 s a request, 4.5 minutes a run);
	# see tests/trace_valgrind.bats.  make check runs the ring under ASan.
	vg_start counter "${counter_cmd[@]}" --io uv --store "file:$dir"
	drive 300 "http://127.0.0.1:$SERVER_PORT/incr" "${incr_args[@]}"
	vg_stop
	# a second run replays the log it left
	vg_start counter2 "${counter_cmd[@]}" --io uv --store "file:$dir"
	run curl -s --max-time 60 "http://127.0.0.1:$SERVER_PORT/counters/k"
	assert_output '{"key":"k","value":300}'
	drive 100 "http://127.0.0.1:$SERVER_PORT/incr" "${incr_args[@]}"
	vg_stop
}

@test "valgrind: dsys-serve serves h2c, gRPC health and hostile HTTP/2 frames with no leak and exits 0" {
	local raw="$BATS_TEST_DIRNAME/h2_raw.py" c
	vg_start h2 "${serve_cmd[@]}" --body-timeout 1s
	run curl -s --max-time 30 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
	run bash -c "nghttp -n -s -m 50 http://127.0.0.1:$SERVER_PORT/hello | grep -c ' 200 '"
	assert_output 50
	# a POST body, and a stream left open when the connection ends
	run curl -s --max-time 30 --http2-prior-knowledge -d 'x=1' "http://127.0.0.1:$SERVER_PORT/hello"
	for c in rst-stream window-overflow big-header too-many-streams rapid-reset incomplete-request no-settings-first big-body-left-open \
		window-zero-stream continuation-flood frame-too-big bad-hpack split window-change; do
		run timeout 60 "$DSYS_PY" "$raw" "$SERVER_PORT" "$c"
		assert_success
	done
	run "$DSYS_PY" -c '
import sys, grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
f = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b, response_deserializer=lambda b: b)
print(f(b"", timeout=30).hex())
w = ch.unary_stream("/UserService/ListUsers", request_serializer=lambda b: b, response_deserializer=lambda b: b)
print(len(list(w(bytes.fromhex("0801109003"), timeout=30))))
it = w(bytes.fromhex("080110904e"), timeout=30)
next(it)
it.cancel()' "$SERVER_PORT"
	assert_line --index 0 0801
	assert_line --index 1 400
	vg_stop
}

@test "valgrind: h2c requests reset while dsys-serve --delay holds them are read later without a memory error" {
	vg_start h2delay "${serve_cmd[@]}" --delay 300ms
	run timeout 60 "$DSYS_PY" "$BATS_TEST_DIRNAME/h2_raw.py" "$SERVER_PORT" rst-delayed
	assert_success
	assert_equal "$(jq -c .ended <<<"$output")" "$(jq -nc '[range(3; 101; 4)]')"
	sleep 1   # the reset ones are routed too, then dropped
	vg_stop
}

# vg_run NAME CMD [ARG]...: run CMD to its end under memcheck (log
# $BATS_TEST_TMPDIR/NAME.vg); sets VG_STATUS to its exit status and fails
# when valgrind found an error or a definite or indirect loss.
vg_run() {
	local name=$1
	shift
	VG_LOG="$BATS_TEST_TMPDIR/$name.vg"
	VG_STATUS=0
	valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=99 --track-fds=no --log-file="$VG_LOG" "$@" \
		>"$BATS_TEST_TMPDIR/$name.out" 2>"$BATS_TEST_TMPDIR/$name.err" 3>&- || VG_STATUS=$?
	if [ "$VG_STATUS" -eq 99 ] ||
		! grep -q 'ERROR SUMMARY: 0 errors' "$VG_LOG" ||
		! grep -qE 'All heap blocks were freed|definitely lost: 0 bytes' "$VG_LOG" ||
		grep -qE 'indirectly lost: [1-9]' "$VG_LOG"; then
		echo "exit status $VG_STATUS (99: valgrind found errors); valgrind said:" >&2
		cat "$VG_LOG" "$BATS_TEST_TMPDIR/$name.err" >&2
		return 1
	fi
}

@test "valgrind: a dsys-raft node serves etcd's JSON API, bad input and a restart from its WAL with no leak" {
	local dir pp u b64
	dir=$(dsys_tmp raft)
	pp=$(free_port)
	node=(dsys-raft node --name n1 --data-dir "$dir" --listen-client 127.0.0.1:0
		--listen-peer "127.0.0.1:$pp" --initial-cluster "n1=http://127.0.0.1:$pp"
		--heartbeat-interval 50ms --election-timeout 500ms)
	vg_start raft "${node[@]}"
	u="http://127.0.0.1:$SERVER_PORT"
	post() { curl -s --max-time 60 "$u$1" -d "$2"; }
	# the first put waits for the node to elect itself
	for _ in $(seq 100); do
		run post /v3/kv/put '{"key":"YQ==","value":"MQ=="}'
		[[ "$output" == *'"revision"'* ]] && break
		sleep 0.2
	done
	assert_output --partial '"revision":"2"'
	run post /v3/lease/grant '{"TTL":"60"}'
	assert_output --partial '"ID"'
	lease=$(jq -r .ID <<<"$output")
	post /v3/kv/put "{\"key\":\"Yg==\",\"value\":\"Mg==\",\"lease\":\"$lease\"}" >/dev/null
	run post /v3/kv/txn '{"compare":[{"key":"YQ==","target":"VALUE","value":"MQ=="}],"success":[{"request_put":{"key":"YQ==","value":"Mw=="}}]}'
	assert_output --partial '"succeeded":true'
	run post /v3/kv/range '{"key":"YQ==","range_end":"Yw=="}'
	assert_output --partial '"count":"2"'
	post /v3/lease/keepalive "{\"ID\":\"$lease\"}" >/dev/null
	post /v3/kv/deleterange '{"key":"YQ=="}' >/dev/null
	run post /v3/kv/put 'xx'
	assert_output --partial '"code":3'
	post /v3/kv/range '{"key":"YQ==","revision":"99"}' >/dev/null
	# a watch stream whose client leaves
	curl -s --max-time 3 "$u/v3/watch" -d '{"create_request":{"key":"Yg==","start_revision":"1"}}' >/dev/null || :
	curl -s --max-time 60 "$u/health" "$u/metrics" >/dev/null
	vg_stop
	# a second run replays the WAL the first one left
	vg_start raft2 "${node[@]}"
	u="http://127.0.0.1:$SERVER_PORT"
	for _ in $(seq 100); do
		run post /v3/kv/range '{"key":"Yg=="}'
		[[ "$output" == *'"kvs"'* ]] && break
		sleep 0.2
	done
	assert_output --partial '"value":"Mg=="'
	vg_stop
}

@test "valgrind: a dsys-raft node serves etcd's gRPC Watch streams (several watches, cancel, progress, fragments, clients gone) and Maintenance with no leak" {
	local dir pp
	dir=$(dsys_tmp raftw)
	pp=$(free_port)
	vg_start raftw dsys-raft node --name n1 --data-dir "$dir" --listen-client 127.0.0.1:0 \
		--listen-peer "127.0.0.1:$pp" --initial-cluster "n1=http://127.0.0.1:$pp" \
		--heartbeat-interval 50ms --election-timeout 500ms
	local ep=127.0.0.1:$SERVER_PORT
	for _ in $(seq 150); do
		ETCDCTL_API=3 etcdctl --endpoints "$ep" --command-timeout 2s put /x 1 >/dev/null 2>&1 && break
		sleep 0.2
	done
	run -0 timeout 120 "$DSYS_PY" "$BATS_TEST_DIRNAME/etcd_watch_stream.py" "$ep" /v
	assert_output --partial "watch_id=7 canceled"
	# a watch whose client goes away with the stream open
	timeout 3 env ETCDCTL_API=3 etcdctl --endpoints "$ep" watch --prefix /v/ >/dev/null 2>&1 || :
	ETCDCTL_API=3 etcdctl --endpoints "$ep" endpoint hashkv >/dev/null
	ETCDCTL_API=3 etcdctl --endpoints "$ep" alarm list >/dev/null
	ETCDCTL_API=3 etcdctl --endpoints "$ep" user get nobody >/dev/null 2>&1 || :
	vg_stop
}

@test "valgrind: dsys-trace collect takes OTLP protobuf, OTLP JSON and bad bodies with no leak and exits 0" {
	vg_start collect dsys-trace collect --listen 127.0.0.1:0 --threads 1
	export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SERVER_PORT" OTEL_SERVICE_NAME=vg
	unset DSYS_TRACE_FILE TRACEPARENT
	OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf dsys-trace exec --name pb -- true
	OTEL_EXPORTER_OTLP_PROTOCOL=http/json dsys-trace exec --name js -- true
	echo 'a log line' | OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf dsys-trace log --service vg
	run curl -s -o /dev/null -w '%{http_code}' --max-time 60 -H 'Content-Type: application/x-protobuf' \
		--data-binary $'\x0a\xff\xff\xff\xff\x0f' "http://127.0.0.1:$SERVER_PORT/v1/traces"
	assert_output 400
	run curl -s -o /dev/null -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' \
		-d '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}' "http://127.0.0.1:$SERVER_PORT/v1/traces"
	assert_output 400
	for _ in $(seq 100); do
		[ "$(grep -c '"name":"\(pb\|js\)"' "$SERVER_OUT")" -ge 2 ] && break
		sleep 0.1
	done
	vg_stop
	run grep -c '"name":"\(pb\|js\)"' "$SERVER_OUT"
	assert_output 2
}

@test "valgrind: dsys-register add on file: and etcd:// keeps, removes and exits with its command's status, with no leak" {
	load etcd_helpers
	local dir
	dir=$(dsys_tmp reg)
	vg_run add dsys-register add web --addr 127.0.0.1:8080 --store "file:$dir" --ttl 1s -- sh -c 'sleep 1; exit 7'
	[ "$VG_STATUS" -eq 7 ]
	vg_run add2 dsys-register add web --addr 127.0.0.1:8080 --store "file:$dir" -- /no/such/command
	[ "$VG_STATUS" -eq 127 ]
	ETCD_PID=
	etcd_start
	vg_run add3 dsys-register add web --addr 127.0.0.1:8080 --store "$ETCD_URL" --ttl 2s -- sh -c 'sleep 1; exit 5'
	local st=$VG_STATUS
	etcd_stop
	[ "$st" -eq 5 ]
}

@test "valgrind: dsys-lock run on file: and etcd:// holds, releases and exits with its command's status, with no leak" {
	load etcd_helpers
	local dir
	dir=$(dsys_tmp lock)
	vg_run run dsys-lock run job --store "file:$dir" -- sh -c 'sleep 0.5; exit 6'
	[ "$VG_STATUS" -eq 6 ]
	ETCD_PID=
	etcd_start
	vg_run run2 dsys-lock run job --store "$ETCD_URL" --ttl 5s -- sh -c 'sleep 1; exit 4'
	local st=$VG_STATUS
	vg_run st dsys-lock status job --store "$ETCD_URL"
	etcd_stop
	[ "$st" -eq 4 ]
	[ "$VG_STATUS" -eq 0 ]
}

@test "valgrind: dsys-counter serve answers its gRPC API, a bad message and a streamed List with no leak" {
	vg_start cgrpc "${counter_cmd[@]}" --store mem: --drain-timeout 2s
	# raw bytes, so no stubs: IncrRequest{key:"g",by:5}, KeyRequest{key:"g"},
	# SetRequest{key:"h",value:-1}, ListRequest{}, and a broken message
	run "$DSYS_PY" -c '
import sys, grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
def u(m):
    return ch.unary_unary("/dsys.counter.v1.Counter/" + m, request_serializer=lambda b: b, response_deserializer=lambda b: b)
print(u("Incr")(bytes.fromhex("0a01671005"), timeout=60).hex())
print(u("Set")(bytes.fromhex("0a01681001"), timeout=60).hex())
print(u("Get")(bytes.fromhex("0a0167"), timeout=60).hex())
try:
    u("Get")(bytes.fromhex("0aff"), timeout=60)
except grpc.RpcError as e:
    print(e.code().name)
print(len(list(ch.unary_stream("/dsys.counter.v1.Counter/List", request_serializer=lambda b: b, response_deserializer=lambda b: b)(b"", timeout=60))))
print(u("Delete")(bytes.fromhex("0a0167"), timeout=60).hex())' "$SERVER_PORT"
	assert_output "$(printf '%s\n' 0a01671005 0a01681001 0a01671005 INVALID_ARGUMENT 2 0a01671005)"
	vg_stop
}
