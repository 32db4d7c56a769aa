#!/usr/bin/env bats
# dsys-bench --h2 and --grpc: HTTP/2 (h2c, prior knowledge) and unary gRPC
# load against dsys-serve (its /hello, grpc.health.v1 and the tutorial's
# UserService), against h2o as a third-party HTTP/2 server, and against a
# small python3 server that misbehaves on purpose (tests/h2_bad_server.py:
# RST_STREAM, GOAWAY, bad grpc-status, no grpc-status, not HTTP/2 at all),
# whose every failure must be counted, never crash the run.
# Runs are short (-n N or 1 s).

load helpers
bats_require_minimum_version 1.5.0

setup() { dsys_setup; }
teardown() { dsys_teardown; }

# jq-free JSON field reading: json_get JSON EXPR, EXPR a python expression on d.
json_get() {
	"$DSYS_PY" -c 'import json,sys; d=json.loads(sys.argv[1]); v=eval(sys.argv[2]); print(json.dumps(v) if isinstance(v,(dict,list)) else v)' "$1" "$2"
}

serve() {
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1 "$@"
}

bad_server() {
	start_server "bad-$1" "$DSYS_PY" "$BATS_TEST_DIRNAME/h2_bad_server.py" "$1"
}

# dsys-serve's count of answered requests other than /metrics
serve_count() {
	curl -s --max-time 5 "http://127.0.0.1:$1/metrics" |
		awk '/^http_requests_total[{ ]/ && !/route="\/metrics"/ { n += $NF } END { print n + 0 }'
}

@test "bench h2: --h2 -n 2000 over 4 connections of 8 streams is 2000 answers, dsys-serve's count too" {
	serve
	run -0 dsys-bench --h2 --streams 8 -c 4 -t 2 -n 2000 --json "http://127.0.0.1:$SERVER_PORT/hello"
	out=$output
	assert_equal "$(json_get "$out" 'd["protocol"]')" h2c
	assert_equal "$(json_get "$out" 'd["streams"]')" 8
	assert_equal "$(json_get "$out" 'd["requests"]')" 2000
	assert_equal "$(json_get "$out" 'd["sent"]')" 2000
	assert_equal "$(json_get "$out" 'd["status"]')" '{"200": 2000}'
	assert_equal "$(json_get "$out" 'sum(v for k, v in d["errors"].items() if k not in ("status",))')" 0
	assert_equal "$(json_get "$out" 'd["goaways"]')" 0
	# 16 body bytes per answer at least (the frames' own bytes come on top)
	run json_get "$out" 'd["bytes"] >= 2000 * 16'
	assert_output True
	assert_equal "$(serve_count "$SERVER_PORT")" 2000
}

@test "bench h2: the latency histogram and percentiles are reported as for HTTP/1.1" {
	serve
	run -0 dsys-bench --h2 --streams 4 -c 2 -t 1 -d 1s --json "http://127.0.0.1:$SERVER_PORT/hello"
	out=$output
	run json_get "$out" 'd["latency_us"]["p50"] <= d["latency_us"]["p99"] <= d["latency_us"]["max"]'
	assert_output True
	run json_get "$out" 'len(d["percentiles"]) > 5 and d["requests"] > 100'
	assert_output True
}

@test "bench h2: --rate with --h2 sends on the schedule and corrects for coordinated omission" {
	serve
	run -0 dsys-bench --h2 --streams 4 -c 2 -t 1 --rate 500 -d 2s --json "http://127.0.0.1:$SERVER_PORT/hello"
	out=$output
	run json_get "$out" '950 <= d["requests"] <= 1050'
	assert_output True
	# the uncorrected latency and the send lag are there, as for HTTP/1.1
	run json_get "$out" 'd["latency_uncorrected_us"]["max"] <= d["latency_us"]["max"] and "send_lag_us" in d'
	assert_output True
}

@test "bench h2: --grpc grpc.health.v1.Health/Check counts grpc-status 0 (SERVING) for every call" {
	serve
	run -0 dsys-bench --grpc grpc.health.v1.Health/Check --streams 4 -c 2 -t 1 -n 500 --json \
		"http://127.0.0.1:$SERVER_PORT"
	out=$output
	assert_equal "$(json_get "$out" 'd["protocol"]')" grpc
	assert_equal "$(json_get "$out" 'd["requests"]')" 500
	assert_equal "$(json_get "$out" 'd["grpc_status"]')" '{"0": 500}'
	assert_equal "$(json_get "$out" 'd["errors"]["grpc"]')" 0
}

@test "bench h2: --proto-message JSON for a known service name: an unknown one is NOT_FOUND (5), counted as errors" {
	serve
	run -0 dsys-bench --grpc grpc.health.v1.Health/Check --proto-message '{"service":"nope"}' \
		-c 1 -t 1 -n 50 --json "http://127.0.0.1:$SERVER_PORT"
	out=$output
	assert_equal "$(json_get "$out" 'd["grpc_status"]')" '{"5": 50}'
	assert_equal "$(json_get "$out" 'd["errors"]["grpc"]')" 50
	# and --fail-if sees them as errors
	run -1 dsys-bench --grpc grpc.health.v1.Health/Check --proto-message '{"service":"nope"}' \
		-c 1 -t 1 -n 10 --fail-if 'errors>0' --json "http://127.0.0.1:$SERVER_PORT"
}

@test "bench h2: a 300 kB gRPC message, beyond the server's flow-control window, arrives whole on io_uring and on libuv streams" {
	serve
	# HealthCheckRequest{service: 300000 x "s"}: field 1, length as a varint
	"$DSYS_PY" -c 'import sys
n = 300000; v = bytearray(); x = n
while x >= 0x80:
    v.append(x & 0x7f | 0x80); x >>= 7
v.append(x)
sys.stdout.buffer.write(b"\x0a" + bytes(v) + b"s" * n)' >"$BATS_TEST_TMPDIR/big.pb"
	for io in uring uv; do
		DSYS_BENCH_IO=$io run -0 dsys-bench --grpc grpc.health.v1.Health/Check \
			--proto-message "@$BATS_TEST_TMPDIR/big.pb" --streams 4 -c 2 -t 1 -n 40 --json \
			"http://127.0.0.1:$SERVER_PORT"
		out=$output
		assert_equal "$(json_get "$out" 'd["requests"]')" 40
		# NOT_FOUND: the server decoded the whole name and knows no such service
		assert_equal "$(json_get "$out" 'd["grpc_status"]')" '{"5": 40}'
		assert_equal "$(json_get "$out" 'd["errors"]["write"] + d["errors"]["read"] + d["errors"]["stream"]')" 0
	done
	run curl -s --max-time 5 "http://127.0.0.1:$SERVER_PORT/metrics"
	assert_line 'grpc_server_handled_total{grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="NotFound"} 80'
}

# traced OUT CMD...: CMD under strace, its sends and ring entries logged
# to OUT.  (LeakSanitizer cannot run under ptrace: in a sanitizer build
# the traced program checks everything but leaks.)
traced() {
	local out=$1
	shift
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -qq -o "$out" -e trace=write,writev,sendto,sendmsg,io_uring_enter "$@"
}

# calls FILE NAME: how many NAME system calls strace logged in FILE
calls() {
	grep -cE "^[0-9]+ +$2\(" "$1" || true
}

@test "bench h2: where HTTP/1.1 runs on io_uring, --h2 does too: its frames leave through the ring, not one write(2) per turn" {
	command -v strace >/dev/null || fail "strace is not installed (Debian strace)"
	serve
	traced "$BATS_TEST_TMPDIR/h1" dsys-bench -c 2 -t 1 -n 2000 --json "http://127.0.0.1:$SERVER_PORT/hello" >/dev/null
	[ "$(calls "$BATS_TEST_TMPDIR/h1" io_uring_enter)" -gt 0 ] || skip "io_uring is not available here: both run on libuv"
	run -0 traced "$BATS_TEST_TMPDIR/h2" \
		dsys-bench --h2 --streams 4 -c 2 -t 1 -n 2000 --json "http://127.0.0.1:$SERVER_PORT/hello"
	assert_equal "$(json_get "$output" 'd["requests"]')" 2000
	[ "$(calls "$BATS_TEST_TMPDIR/h2" io_uring_enter)" -gt 0 ]
	# 2000 requests in at most 8 in flight are 250 turns or more: on libuv
	# streams each is a write(2); here only the JSON line is written
	n=0
	for c in write writev sendto sendmsg; do
		n=$((n + $(calls "$BATS_TEST_TMPDIR/h2" $c)))
	done
	[ "$n" -lt 10 ]
	# and DSYS_BENCH_IO=uv still writes (the test can tell the paths apart)
	DSYS_BENCH_IO=uv traced "$BATS_TEST_TMPDIR/uv" \
		dsys-bench --h2 --streams 4 -c 2 -t 1 -n 2000 --json "http://127.0.0.1:$SERVER_PORT/hello" >/dev/null
	[ "$(calls "$BATS_TEST_TMPDIR/uv" write)" -ge 250 ]
}

@test "bench h2: UserService/GetUser takes its request as JSON or as protobuf bytes from @FILE, alike" {
	serve
	run -0 dsys-bench --grpc UserService/GetUser --proto-message '{"user_id":"1"}' \
		--streams 4 -c 2 -t 1 -n 200 --json "http://127.0.0.1:$SERVER_PORT"
	assert_equal "$(json_get "$output" 'd["grpc_status"]')" '{"0": 200}'
	json_bytes=$(json_get "$output" 'd["bytes"]')
	# field 1 (user_id), length-delimited, 1 byte: "1"
	printf '\x0a\x01\x31' >"$BATS_TEST_TMPDIR/req.bin"
	run -0 dsys-bench --grpc /UserService/GetUser --proto-message "@$BATS_TEST_TMPDIR/req.bin" \
		--streams 4 -c 2 -t 1 -n 200 --json "http://127.0.0.1:$SERVER_PORT"
	assert_equal "$(json_get "$output" 'd["grpc_status"]')" '{"0": 200}'
	# the same answers, so the same bytes on the wire (HPACK state is per
	# connection and the same for both runs)
	assert_equal "$(json_get "$output" 'd["bytes"]')" "$json_bytes"
	# a malformed message is the server's INVALID_ARGUMENT (3), counted
	printf '\xff\xff' >"$BATS_TEST_TMPDIR/bad.bin"
	run -0 dsys-bench --grpc UserService/GetUser --proto-message "@$BATS_TEST_TMPDIR/bad.bin" \
		-c 1 -t 1 -n 20 --json "http://127.0.0.1:$SERVER_PORT"
	assert_equal "$(json_get "$output" 'd["grpc_status"]')" '{"3": 20}'
}

@test "bench h2: an unknown gRPC method is UNIMPLEMENTED (12), counted, and the run exits 0" {
	serve
	run -0 dsys-bench --grpc no.such.Service/Method -c 1 -t 1 -n 30 --json "http://127.0.0.1:$SERVER_PORT"
	assert_equal "$(json_get "$output" 'd["grpc_status"]')" '{"12": 30}'
}

@test "bench h2: h2o, a third-party HTTP/2 server, is driven over h2c with every answer counted" {
	command -v h2o >/dev/null || skip "h2o not installed (Debian h2o)"
	d=$(dsys_tmp h2o)
	port=$(free_port)
	printf 'Hello from dsys!' >"$d/hello.txt"
	user=
	[ "$(id -u)" = 0 ] && user="user: $(id -un)"
	sed -e "s|@DIR@|$d|g" -e "s|@PORT@|$port|g" -e "s|@USER@|$user|" \
		"$BATS_TEST_DIRNAME/bench/h2o.conf.in" >"$d/h2o.conf"
	# and /big.txt, 2 MiB
	head -c $((2 << 20)) /dev/zero >"$d/big.txt"
	sed -i 's|^      /hello:|      /big.txt:\n        file.file: '"$d"'/big.txt\n      /hello:|' "$d/h2o.conf"
	h2o -c "$d/h2o.conf" >"$d/out" 2>&1 3>&- &
	DSYS_SERVER_PIDS+=($!)
	for _ in $(seq 100); do
		curl -s --http2-prior-knowledge "http://127.0.0.1:$port/hello" >/dev/null && break
		sleep 0.1
	done
	run -0 dsys-bench --h2 --streams 10 -c 4 -t 1 -n 3000 --json "http://127.0.0.1:$port/hello"
	out=$output
	assert_equal "$(json_get "$out" 'd["requests"]')" 3000
	assert_equal "$(json_get "$out" 'd["status"]')" '{"200": 3000}'
	# bodies of 2 MiB, 8 at a time on one connection: past the stream and
	# connection windows many times over, so our WINDOW_UPDATEs must flow
	run -0 dsys-bench --h2 --streams 8 -c 1 -t 1 -n 40 --json "http://127.0.0.1:$port/big.txt"
	assert_equal "$(json_get "$output" 'd["status"]')" '{"200": 40}'
	run json_get "$output" 'd["bytes"] >= 40 * (2 << 20)'
	assert_output True
	run -0 dsys-bench --h2 -c 1 -t 1 -n 20 --json "http://127.0.0.1:$port/missing"
	assert_equal "$(json_get "$output" 'd["status"]')" '{"404": 20}'
	assert_equal "$(json_get "$output" 'd["errors"]["status"]')" '{"404": 20}'
}

@test "bench h2: RST_STREAM from the server is one errors.stream per request, no answer, no crash" {
	bad_server rst
	run -0 dsys-bench --h2 --streams 4 -c 2 -t 1 -n 400 --json "http://127.0.0.1:$SERVER_PORT/x"
	out=$output
	assert_equal "$(json_get "$out" 'd["requests"]')" 0
	assert_equal "$(json_get "$out" 'd["errors"]["stream"]')" 400
	assert_equal "$(json_get "$out" 'd["sent"]')" 400
}

@test "bench h2: a GOAWAY lets its last stream finish, refuses the rest as errors.stream, and reconnects" {
	bad_server goaway
	run -0 dsys-bench --h2 --streams 4 -c 2 -t 1 -n 200 --json "http://127.0.0.1:$SERVER_PORT/x"
	out=$output
	ok=$(json_get "$out" 'd["requests"]')
	refused=$(json_get "$out" 'd["errors"]["stream"]')
	# every request ends once: answered, or refused
	assert_equal $((ok + refused)) 200
	run json_get "$out" 'd["goaways"] >= 2 and d["connects"] > 2 and d["requests"] >= 2'
	assert_output True
	assert_equal "$(json_get "$out" 'd["status"]')" "{\"200\": $ok}"
}

@test "bench h2: a bad grpc-status in trailers, in a trailers-only answer, or none at all is counted by kind" {
	bad_server grpcfail
	run -0 dsys-bench --grpc a.B/C --streams 4 -c 1 -t 1 -n 100 --json "http://127.0.0.1:$SERVER_PORT"
	assert_equal "$(json_get "$output" 'd["grpc_status"]')" '{"13": 100}'
	assert_equal "$(json_get "$output" 'd["errors"]["grpc"]')" 100
	bad_server trailersonly
	run -0 dsys-bench --grpc a.B/C --streams 4 -c 1 -t 1 -n 100 --json "http://127.0.0.1:$SERVER_PORT"
	assert_equal "$(json_get "$output" 'd["grpc_status"]')" '{"7": 100}'
	bad_server nostatus
	run -0 dsys-bench --grpc a.B/C --streams 4 -c 1 -t 1 -n 100 --json "http://127.0.0.1:$SERVER_PORT"
	assert_equal "$(json_get "$output" 'd["grpc_status"]')" '{"missing": 100}'
	assert_equal "$(json_get "$output" 'd["errors"]["grpc"]')" 100
}

@test "bench h2: a server that does not speak HTTP/2 is read errors and reconnects, not a crash" {
	bad_server garbage
	run -0 dsys-bench --h2 -c 2 -t 1 -d 500ms --json "http://127.0.0.1:$SERVER_PORT/x"
	out=$output
	assert_equal "$(json_get "$out" 'd["requests"]')" 0
	run json_get "$out" 'd["errors"]["read"] > 0 and d["errors"]["read"] == d["sent"] and d["connects"] > 2'
	assert_output True
}

@test "bench h2: a stream never answered is a timeout, and its connection is replaced" {
	bad_server hang
	run -0 dsys-bench --h2 --streams 4 -c 1 -t 1 -T 300ms -d 1s --json "http://127.0.0.1:$SERVER_PORT/x"
	out=$output
	assert_equal "$(json_get "$out" 'd["requests"]')" 0
	run json_get "$out" 'd["errors"]["timeout"] >= 4 and d["connects"] >= 2'
	assert_output True
}

@test "bench h2: HTTP/1.1 dsys-serve's port answers h2c on the same port, and --h2's JSON says h2c" {
	serve
	run -0 dsys-bench -c 1 -t 1 -n 10 --json "http://127.0.0.1:$SERVER_PORT/hello"
	run json_get "$output" '"protocol" not in d and d["pipeline"] == 1'
	assert_output True
	run -0 dsys-bench --h2 -c 1 -t 1 -n 10 --json "http://127.0.0.1:$SERVER_PORT/hello"
	run json_get "$output" 'd["protocol"] == "h2c" and "pipeline" not in d'
	assert_output True
}

@test "bench h2: bad combinations of the HTTP/2 options exit 2 with a message" {
	run -2 dsys-bench --streams 4 -n 1 http://127.0.0.1:1/
	assert_output --partial 'add --h2 or --grpc'
	run -2 dsys-bench --proto-message '{}' -n 1 http://127.0.0.1:1/
	assert_output --partial 'add --grpc'
	run -2 dsys-bench --grpc nomethod -n 1 http://127.0.0.1:1/
	assert_output --partial 'SERVICE/METHOD'
	run -2 dsys-bench --grpc a.B/C --body x -n 1 http://127.0.0.1:1/
	assert_output --partial 'drop --body'
	run -2 dsys-bench --grpc a.B/C --method GET -n 1 http://127.0.0.1:1/
	assert_output --partial 'POST'
	run -2 dsys-bench --grpc a.B/C --proto-message '{"x":1}' -n 1 http://127.0.0.1:1/
	assert_output --partial 'no known message'
	run -2 dsys-bench --grpc UserService/GetUser --proto-message '{"user_id":5}' -n 1 http://127.0.0.1:1/
	assert_output --partial "field 'user_id'"
	run -2 dsys-bench --grpc UserService/GetUser --proto-message '{"nope":"1"}' -n 1 http://127.0.0.1:1/
	assert_output --partial "no field 'nope'"
	run -2 dsys-bench --grpc UserService/GetUser --proto-message '{"user_id"' -n 1 http://127.0.0.1:1/
	assert_output --partial 'not a JSON object'
	run -2 dsys-bench --h2 -H 'Connection: close' -n 1 http://127.0.0.1:1/
	assert_output --partial 'HTTP/2'
	run -2 dsys-bench --grpc a.B/C --proto-message @/nonexistent/file -n 1 http://127.0.0.1:1/
	assert_output --partial 'cannot read'
}

@test "bench h2: no server at all exits 3, as for HTTP/1.1" {
	port=$(free_port)
	run -3 dsys-bench --h2 -c 2 -t 1 -d 1s --json "http://127.0.0.1:$port/"
}

# A third-party gRPC server: python3-grpcio (gRPC's C core under Python),
# with a generic handler so that no generated code is needed: test.Echo/Echo
# answers the request's bytes, test.Echo/Fail aborts with RESOURCE_EXHAUSTED.
write_grpc_server() {
	cat >"$BATS_TEST_TMPDIR/grpc_srv.py" <<'PY'
from concurrent import futures
import grpc

def echo(req, ctx):
    return req

def fail(req, ctx):
    ctx.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "no")

h = {"Echo": grpc.unary_unary_rpc_method_handler(echo),
     "Fail": grpc.unary_unary_rpc_method_handler(fail)}
srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", h),))
port = srv.add_insecure_port("127.0.0.1:0")
srv.start()
print('{"event":"ready","listen":"127.0.0.1:%d"}' % port, flush=True)
srv.wait_for_termination()
PY
}

@test "bench h2: a python3-grpcio server echoes 200 calls (OK), and its aborts are counted as RESOURCE_EXHAUSTED (8)" {
	"$DSYS_PY" -c 'import grpc' 2>/dev/null || skip "python3-grpcio not installed"
	write_grpc_server
	start_server grpc "$DSYS_PY" "$BATS_TEST_TMPDIR/grpc_srv.py"
	head -c 100 /dev/zero | tr '\0' 'x' >"$BATS_TEST_TMPDIR/msg.bin"
	run -0 dsys-bench --grpc test.Echo/Echo --proto-message "@$BATS_TEST_TMPDIR/msg.bin" \
		--streams 4 -c 2 -t 1 -n 200 --json "http://127.0.0.1:$SERVER_PORT"
	out=$output
	assert_equal "$(json_get "$out" 'd["grpc_status"]')" '{"0": 200}'
	assert_equal "$(json_get "$out" 'd["status"]')" '{"200": 200}'
	# each answer carries the 100 bytes back, with its 5-byte prefix
	run json_get "$out" 'd["bytes"] >= 200 * 105'
	assert_output True
	run -0 dsys-bench --grpc test.Echo/Fail -c 1 -t 1 -n 50 --json "http://127.0.0.1:$SERVER_PORT"
	assert_equal "$(json_get "$output" 'd["grpc_status"]')" '{"8": 50}'
	assert_equal "$(json_get "$output" 'd["errors"]["grpc"]')" 50
	run -0 dsys-bench --grpc test.Echo/Nope -c 1 -t 1 -n 20 --json "http://127.0.0.1:$SERVER_PORT"
	assert_equal "$(json_get "$output" 'd["grpc_status"]')" '{"12": 20}'
}
