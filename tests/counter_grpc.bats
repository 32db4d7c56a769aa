#!/usr/bin/env bats
# dsys-counter serve's gRPC API (dsys.counter.v1.Counter, from
# lib/counter/counter.proto) called by a third-party client: Python's
# grpcio (python3-grpcio), with stubs that protoc generates from the same
# .proto the server was built from.  The JSON API on the same port sees
# the same counters.

bats_require_minimum_version 1.5.0
load helpers
load counter_helpers
load redis_helpers

setup_file() {
	command -v protoc >/dev/null || fail "protoc is not installed (make deps installs protobuf-compiler)"
	export CGRPC_STUBS="$BATS_FILE_TMPDIR/stubs"
	mkdir -p "$CGRPC_STUBS"
	protoc --proto_path="$BATS_TEST_DIRNAME/../lib/counter" --python_out="$CGRPC_STUBS" \
		"$BATS_TEST_DIRNAME/../lib/counter/counter.proto"
}

setup() {
	dsys_setup
	export DSYS_LOG_LEVEL=warn
	REDIS_PID=
}

teardown() {
	dsys_teardown
	redis_stop
}

# cgrpc PORT OP... : each OP is one call, its words joined by ':'
#   incr:KEY[:BY]  get:KEY  set:KEY:VALUE  del:KEY  list:PREFIX
#   raw:METHOD:HEX  (a unary call with raw request bytes)
# and prints one line per call: "KEY VALUE" for a value ("list" prints
# one such line per message, then "end"), or "CODE details" for a status.
# CGRPC_TIMEOUT (seconds, default 10) is each call's deadline.
cgrpc() {
	PYTHONPATH=$CGRPC_STUBS "$DSYS_PY" - "$@" <<'PY'
import os, sys, grpc
import counter_pb2 as pb
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
timeout = float(os.environ.get("CGRPC_TIMEOUT", "10"))
P = "/dsys.counter.v1.Counter/"
def unary(m, raw=False):
    return ch.unary_unary(P + m, request_serializer=(lambda b: b) if raw else (lambda r: r.SerializeToString()),
                          response_deserializer=pb.CounterValue.FromString)
for op in sys.argv[2:]:
    w = op.split(":")
    try:
        if w[0] == "incr":
            r = pb.IncrRequest(key=w[1])
            if len(w) > 2:
                r.by = int(w[2])
            v = unary("Incr")(r, timeout=timeout)
        elif w[0] == "get":
            v = unary("Get")(pb.KeyRequest(key=w[1]), timeout=timeout)
        elif w[0] == "set":
            v = unary("Set")(pb.SetRequest(key=w[1], value=int(w[2])), timeout=timeout)
        elif w[0] == "del":
            v = unary("Delete")(pb.KeyRequest(key=w[1]), timeout=timeout)
        elif w[0] == "raw":
            v = unary(w[1], raw=True)(bytes.fromhex(w[2]), timeout=timeout)
        elif w[0] == "list":
            s = ch.unary_stream(P + "List", request_serializer=lambda r: r.SerializeToString(),
                                response_deserializer=pb.CounterValue.FromString)
            for v in s(pb.ListRequest(prefix=w[1]), timeout=timeout):
                print(v.key, v.value, flush=True)
            print("end", flush=True)
            continue
        print(v.key, v.value, flush=True)
    except grpc.RpcError as e:
        print(e.code().name, e.details(), flush=True)
PY
}

@test "counter grpc: Incr, Get, Set and Delete through grpcio, and the JSON API on the same port sees them" {
	serve --store mem:
	run cgrpc "$SERVER_PORT" incr:a incr:a:5 incr:a:0 incr:a:-7 get:a set:b:-3 get:b del:b get:b
	assert_success
	assert_output "$(printf '%s\n' 'a 1' 'a 6' 'a 6' 'a -1' 'a -1' 'b -3' 'b -3' 'b -3' 'NOT_FOUND not found')"
	run curl -s "$URL/counters/a"
	assert_output '{"key":"a","value":-1}'
	run post /incr '{"key":"a","by":3}'
	assert_output '200 {"key":"a","value":2}'
	run cgrpc "$SERVER_PORT" get:a
	assert_output 'a 2'
	# and HTTP/1.1 on that port is unchanged
	run curl -s --http1.1 -o /dev/null -w '%{http_version} %{http_code}' "$URL/counters/a"
	assert_output '1.1 200'
}

@test "counter grpc: List streams one message per key with the prefix, in key order, and an empty list ends OK" {
	serve --store mem:
	run cgrpc "$SERVER_PORT" set:k2:2 set:k10:10 set:k1:1 set:other:9 list:k list:nothing list:
	assert_success
	assert_output "$(printf '%s\n' 'k2 2' 'k10 10' 'k1 1' 'other 9' 'k1 1' 'k10 10' 'k2 2' end end \
		'k1 1' 'k10 10' 'k2 2' 'other 9' end)"
}

@test "counter grpc: a long List arrives whole, through flow-control windows" {
	serve --store mem:
	for part in 0 1 2; do   # three requests: --max-batch is 1000 items
		"$DSYS_PY" -c 'import json, sys; p = int(sys.argv[1]); print(json.dumps([{"key": "long-%05d-%s" % (i, "x" * 200), "by": i} for i in range(p * 1000, p * 1000 + 1000)]))' "$part" >"$BATS_TEST_TMPDIR/body.json"
		run curl -s -o /dev/null -w '%{http_code}' --data-binary "@$BATS_TEST_TMPDIR/body.json" "$URL/incr"
		assert_output 200
	done
	run cgrpc "$SERVER_PORT" list:long-
	assert_success
	[ "${#lines[@]}" -eq 3001 ]
	assert_line --index 0 "long-00000-$(printf 'x%.0s' $(seq 200)) 0"
	assert_line --index 2999 "long-02999-$(printf 'x%.0s' $(seq 200)) 2999"
	assert_line --index 3000 end
}

@test "counter grpc: bad keys and bad messages are INVALID_ARGUMENT, an overflow OUT_OF_RANGE, nothing changes" {
	serve --store mem:
	long=$(printf 'k%.0s' $(seq 513))
	run cgrpc "$SERVER_PORT" set:big:9223372036854775807 incr:big "incr:" "incr:$long" \
		raw:Incr:0aff raw:Incr:ffffffff raw:Get:0a0378007a get:big
	assert_success
	assert_output "$(printf '%s\n' 'big 9223372036854775807' \
		'OUT_OF_RANGE increment would overflow int64' \
		'INVALID_ARGUMENT key is empty' \
		'INVALID_ARGUMENT key is longer than 512 bytes' \
		'INVALID_ARGUMENT malformed IncrRequest (or a NUL byte in a string)' \
		'INVALID_ARGUMENT malformed IncrRequest (or a NUL byte in a string)' \
		'INVALID_ARGUMENT malformed KeyRequest (or a NUL byte in a string)' \
		'big 9223372036854775807')"
	# a key with a NUL (0a0378007a: "x\0z") was not taken as "x"
	run cgrpc "$SERVER_PORT" get:x
	assert_output 'NOT_FOUND not found'
	run cgrpc "$SERVER_PORT" list:
	assert_output "$(printf '%s\n' 'big 9223372036854775807' end)"
}

@test "counter grpc: an unknown method of the service is UNIMPLEMENTED, and a JSON POST to a gRPC path a 415" {
	serve --store mem:
	run cgrpc "$SERVER_PORT" raw:Frobnicate:0a0161 incr:a
	assert_output "$(printf '%s\n' 'UNIMPLEMENTED {"error":"not found"}' 'a 1')"
	run curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
		-d '{"key":"a"}' "$URL/dsys.counter.v1.Counter/Incr"
	assert_output 415
}

@test "counter grpc: 8 concurrent grpcio clients making 2000 increments of one key get exactly 1..2000" {
	serve --store mem:
	PYTHONPATH=$CGRPC_STUBS "$DSYS_PY" - "$SERVER_PORT" >"$BATS_TEST_TMPDIR/vals" <<'PY'
import sys, threading, grpc
import counter_pb2 as pb
port = sys.argv[1]
out, lock = [], threading.Lock()
def worker():
    ch = grpc.insecure_channel("127.0.0.1:" + port)
    incr = ch.unary_unary("/dsys.counter.v1.Counter/Incr", request_serializer=lambda r: r.SerializeToString(),
                          response_deserializer=pb.CounterValue.FromString)
    futs = [incr.future(pb.IncrRequest(key="perm"), timeout=30) for _ in range(250)]
    vals = [f.result().value for f in futs]
    with lock:
        out.extend(vals)
ts = [threading.Thread(target=worker) for _ in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print("\n".join(map(str, out)))
PY
	run permutation "$BATS_TEST_TMPDIR/vals" 2000
	assert_success
	run curl -s "$URL/counters/perm"
	assert_output '{"key":"perm","value":2000}'
}

@test "counter grpc: file: keeps what gRPC calls set across a restart" {
	dir=$(dsys_tmp store)
	serve --store "file:$dir"
	run cgrpc "$SERVER_PORT" set:kept:41 incr:kept
	assert_output "$(printf '%s\n' 'kept 41' 'kept 42')"
	stop_server "$SERVER_PID"
	DSYS_SERVER_PIDS=()
	serve --store "file:$dir"
	run cgrpc "$SERVER_PORT" get:kept
	assert_output 'kept 42'
}

@test "counter grpc: an unreachable redis:// store is UNAVAILABLE, and Health/Check still answers SERVING" {
	port=$(free_port)
	serve --store "redis://127.0.0.1:$port" --backend-timeout 500ms
	run cgrpc "$SERVER_PORT" incr:a get:a list:
	assert_success
	[ "${#lines[@]}" -eq 3 ]
	for l in "${lines[@]}"; do
		[[ $l == "UNAVAILABLE backend "* ]] || fail "not UNAVAILABLE: $l"
	done
	run "$DSYS_PY" - "$SERVER_PORT" <<'PY'
import sys, grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b, response_deserializer=lambda b: b)
print(check(b"", timeout=10).hex())
PY
	assert_output 0801
}

@test "counter grpc: a call to a redis:// store that stops answering ends at its grpc-timeout with DEADLINE_EXCEEDED" {
	redis_start
	serve --store "$REDIS_URL" --backend-timeout 10s
	run cgrpc "$SERVER_PORT" incr:t
	assert_output 't 1'
	kill -STOP "$REDIS_PID"
	SECONDS=0
	CGRPC_TIMEOUT=0.5 run cgrpc "$SERVER_PORT" incr:t
	took=$SECONDS
	kill -CONT "$REDIS_PID"
	assert_output --partial DEADLINE_EXCEEDED
	[ "$took" -lt 5 ]
	# the late answer was dropped, the service goes on
	run cgrpc "$SERVER_PORT" get:t
	assert_output 't 2'
}

@test "counter grpc: a List cancelled after its first message leaves the server serving" {
	serve --store mem:
	run post /incr "$("$DSYS_PY" -c 'import json; print(json.dumps([{"key": "c%04d" % i} for i in range(1000)]))')"
	[[ $output == 200* ]]
	run env PYTHONPATH="$CGRPC_STUBS" "$DSYS_PY" - "$SERVER_PORT" <<'PY'
import sys, grpc
import counter_pb2 as pb
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
s = ch.unary_stream("/dsys.counter.v1.Counter/List", request_serializer=lambda r: r.SerializeToString(),
                    response_deserializer=pb.CounterValue.FromString)
for _ in range(20):
    call = s(pb.ListRequest(prefix="c"), timeout=10)
    first = next(call)
    call.cancel()
print(first.key, call.code().name)
PY
	assert_output 'c0000 CANCELLED'
	run cgrpc "$SERVER_PORT" incr:c0000 get:c0999
	assert_output "$(printf '%s\n' 'c0000 2' 'c0999 1')"
}

@test "counter grpc: /metrics counts the calls by method and grpc-status" {
	serve --store mem:
	run cgrpc "$SERVER_PORT" incr:m incr:m get:nope list:
	assert_success
	run curl -s "$URL/metrics"
	assert_line 'grpc_server_handled_total{grpc_service="dsys.counter.v1.Counter",grpc_method="Incr",grpc_code="OK"} 2'
	assert_line 'grpc_server_handled_total{grpc_service="dsys.counter.v1.Counter",grpc_method="Get",grpc_code="NotFound"} 1'
	assert_line 'grpc_server_handled_total{grpc_service="dsys.counter.v1.Counter",grpc_method="List",grpc_code="OK"} 1'
}

@test "counter grpc: a traced call continues its traceparent metadata, and its baggage metadata is on the span" {
	spans=$BATS_TEST_TMPDIR/spans.jsonl
	DSYS_TRACE_FILE=$spans serve --store mem: --trace-sample 0
	run -0 env PYTHONPATH="$CGRPC_STUBS" "$DSYS_PY" - "$SERVER_PORT" <<'PY'
import sys, grpc
import counter_pb2 as pb
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
incr = ch.unary_unary("/dsys.counter.v1.Counter/Incr", request_serializer=lambda r: r.SerializeToString(),
                      response_deserializer=pb.CounterValue.FromString)
md = (("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), ("baggage", "tenant=acme;p"))
v = incr(pb.IncrRequest(key="a"), metadata=md, timeout=10)
print(v.key, v.value)
PY
	assert_output 'a 1'
	for _ in $(seq 100); do [ -s "$spans" ] && break; sleep 0.05; done
	run -0 jq -c '.resourceSpans[].scopeSpans[].spans[] | [.traceId, .parentSpanId,
		(.attributes | map(select(.key == "tenant"))[0].value.stringValue)]' "$spans"
	assert_output '["0af7651916cd43dd8448eb211c80319c","b7ad6b7169203331","acme"]'
}
