#!/usr/bin/env bats
# dsys-trace collect: an OTLP/HTTP receiver fed by dsys-trace exec and
# log over real HTTP, in both encodings, gzip'd or not; forwarding to a
# second collector that is stopped and started again; garbage.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	dsys_setup
	unset TRACEPARENT TRACESTATE OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES OTEL_TRACES_SAMPLER \
		OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_EXPORTER_OTLP_LOGS_ENDPOINT \
		OTEL_EXPORTER_OTLP_PROTOCOL OTEL_EXPORTER_OTLP_TIMEOUT DSYS_TRACE_FILE DSYS_TRACE_FORWARD \
		OTEL_BSP_SCHEDULE_DELAY OTEL_BSP_MAX_EXPORT_BATCH_SIZE OTEL_BSP_MAX_QUEUE_SIZE
	export DSYS_TRACE_SPOOL=$BATS_TEST_TMPDIR/open
}
teardown() { dsys_teardown; }

# collector NAME [OPTION]...: start a collector; C_PID, C_PORT, C_OUT
collector() {
	local name=$1
	shift
	start_server "$name" dsys-trace collect --listen 127.0.0.1:${C_LISTEN_PORT:-0} --threads 1 "$@"
	C_PID=$SERVER_PID C_PORT=$SERVER_PORT C_OUT=$SERVER_OUT
}

# lines FILE: the span names of the collector's output, sorted
span_names() {
	tail -n +2 "$1" | jq -r '.resourceSpans[]?.scopeSpans[].spans[].name' | sort
}

@test "collect: receives what exec exports, in protobuf and in JSON, one normalized line per span" {
	collector c
	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$C_PORT
	OTEL_SERVICE_NAME=web dsys-trace exec --name pb --attr n:int=5 -- true
	OTEL_EXPORTER_OTLP_PROTOCOL=http/json dsys-trace exec --name js -- true
	[ "$(span_names "$C_OUT" | tr '\n' ' ')" = "js pb " ]
	pb=$(grep '"name":"pb"' "$C_OUT")
	jq -e '.resourceSpans[0].resource.attributes[0] == {"key":"service.name","value":{"stringValue":"web"}}' <<<"$pb"
	jq -e '.resourceSpans[0].scopeSpans[0].scope.name == "dsys"' <<<"$pb"
	jq -e '.resourceSpans[0].scopeSpans[0].spans[0].attributes | map(select(.key == "n"))[0].value.intValue == "5"' <<<"$pb"
	# the line is what DSYS_TRACE_FILE would hold for the same span
	DSYS_TRACE_FILE=$BATS_TEST_TMPDIR/f.jsonl dsys-trace exec --name same -- true
	[ "$(grep '"name":"same"' "$C_OUT")" = "$(cat "$BATS_TEST_TMPDIR/f.jsonl")" ]
	run metric "$C_PORT" 'otlp_received_items_total{signal="traces"}'
	assert_output 3
}

@test "collect: receives log records, and gzip bodies in both encodings" {
	collector c
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$C_PORT run dsys-trace log <<<$'one\ntwo'
	assert_success
	[ "$(tail -n +2 "$C_OUT" | jq -r '.resourceLogs[].scopeLogs[].logRecords[].body.stringValue' | tr '\n' ' ')" = "one two " ]
	DSYS_TRACE_FILE=$BATS_TEST_TMPDIR/f.jsonl dsys-trace exec --name zipped -- true
	run curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' \
		--data-binary @<(gzip -c "$BATS_TEST_TMPDIR/f.jsonl") http://127.0.0.1:$C_PORT/v1/traces
	assert_output 200
	grep -q '"name":"zipped"' "$C_OUT"
	# protobuf, gzip'd: a request made by our own .proto for Python
	mkdir -p "$BATS_TEST_TMPDIR/pb"
	protoc --proto_path="$BATS_TEST_DIRNAME/../lib" --python_out="$BATS_TEST_TMPDIR/pb" \
		obs/otlp_common.proto obs/otlp_trace.proto
	"$DSYS_PY" - "$BATS_TEST_TMPDIR/pb" >"$BATS_TEST_TMPDIR/req.bin" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from obs import otlp_trace_pb2 as t
req = t.ExportTraceServiceRequest()
ss = req.resource_spans.add().scope_spans.add()
ss.scope.name = "py"
s = ss.spans.add(name="from-python", trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)),
                 start_time_unix_nano=10**18, end_time_unix_nano=10**18 + 5, kind=3)
s.status.code = 2
sys.stdout.buffer.write(req.SerializeToString())
PY
	run curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: gzip' \
		--data-binary @<(gzip -c "$BATS_TEST_TMPDIR/req.bin") http://127.0.0.1:$C_PORT/v1/traces
	assert_output 200
	line=$(grep '"name":"from-python"' "$C_OUT")
	jq -e '.resourceSpans[0].scopeSpans[0].scope.name == "py"' <<<"$line"
	jq -e '.resourceSpans[0].scopeSpans[0].spans[0] | .traceId == "0102030405060708090a0b0c0d0e0f10" and .kind == 3
		and .startTimeUnixNano == "1000000000000000000" and .endTimeUnixNano == "1000000000000000005" and .status.code == 2' <<<"$line"
}

@test "collect: garbage gets 400 (or 413, 415) and is counted, and the collector goes on serving" {
	collector c
	u=http://127.0.0.1:$C_PORT
	run curl -sS -w '%{http_code}' -H 'Content-Type: application/json' --data 'not json' $u/v1/traces
	assert_output --partial '"error":"the body is not valid JSON"'
	assert_output --partial 400
	run curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/x-protobuf' --data-binary $'\x0a\x05\x12' $u/v1/traces
	assert_output 400
	run curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' --data 'x' $u/v1/logs
	assert_output 400
	run curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: text/plain' --data 'x' $u/v1/logs
	assert_output 415
	# a gzip bomb: 200 MB of zeros in 200 kB is refused past the bound
	run bash -c "head -c 200000000 /dev/zero | gzip -1 | curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' --data-binary @- $u/v1/traces"
	assert_output 413
	head -c 20000 /dev/urandom >"$BATS_TEST_TMPDIR/rnd"
	for ct in application/json application/x-protobuf; do
		curl -sS -o /dev/null -H "Content-Type: $ct" --data-binary @"$BATS_TEST_TMPDIR/rnd" $u/v1/traces
	done
	run metric "$C_PORT" otlp_rejected_requests_total
	[ "$output" -ge 6 ]
	kill -0 "$C_PID"
	OTEL_EXPORTER_OTLP_ENDPOINT=$u dsys-trace exec --name after -- true
	[ "$(span_names "$C_OUT")" = after ]
	run curl -sS $u/health
	assert_output --partial ok
}

@test "collect: forwarding to a second collector that is stopped and started again loses no span" {
	port=$(free_port)
	C_LISTEN_PORT=$port collector b
	b_pid=$C_PID b_out=$C_OUT
	OTEL_BSP_SCHEDULE_DELAY=50 OTEL_EXPORTER_OTLP_TIMEOUT=500 collector a --forward http://127.0.0.1:$port --spool "$BATS_TEST_TMPDIR/spool" --quiet
	a_pid=$C_PID a_port=$C_PORT
	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$a_port
	for i in 1 2 3; do dsys-trace exec --name s$i -- true; done
	# b goes down; what a takes meanwhile waits in its spool
	stop_server "$b_pid"
	for i in 4 5 6; do dsys-trace exec --name s$i -- true; done
	# a dies too (SIGKILL: no drain), while b is down: what it answered
	# 200 was on disk, and the spool carries it over
	stop_server "$a_pid" KILL || true
	OTEL_BSP_SCHEDULE_DELAY=50 OTEL_EXPORTER_OTLP_TIMEOUT=500 collector a2 --forward http://127.0.0.1:$port --spool "$BATS_TEST_TMPDIR/spool" --quiet
	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$C_PORT
	for i in 7 8; do dsys-trace exec --name s$i -- true; done
	C_LISTEN_PORT=$port collector b2
	b2_out=$C_OUT
	for _ in $(seq 200); do
		[ "$(cat "$b_out" "$b2_out" | grep -c '"name":"s')" -ge 8 ] && break
		sleep 0.05
	done
	run bash -c "cat '$b_out' '$b2_out' | grep -v '\"event\"' | jq -r '.resourceSpans[].scopeSpans[].spans[].name' | sort -u | tr '\n' ' '"
	assert_output "s1 s2 s3 s4 s5 s6 s7 s8 "
}

@test "collect: bad options exit 2" {
	run -2 dsys-trace collect --spool "$BATS_TEST_TMPDIR/s"
	assert_output --partial "--spool needs --forward"
	run -2 dsys-trace collect --forward ftp://x
	run -2 dsys-trace collect extra
}

@test "collect: forwards spans and logs in JSON batches when the protocol says http/json" {
	collector b
	b_port=$C_PORT b_out=$C_OUT
	OTEL_EXPORTER_OTLP_PROTOCOL=http/json OTEL_BSP_SCHEDULE_DELAY=200 OTEL_BSP_MAX_EXPORT_BATCH_SIZE=3 \
		collector a --forward http://127.0.0.1:$b_port --quiet
	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$C_PORT
	for i in 1 2 3 4; do dsys-trace exec --name j$i -- true; done
	dsys-trace log <<<"a line"
	for _ in $(seq 100); do
		[ "$(grep -c '"name":"j' "$b_out")" -ge 4 ] && grep -q '"a line"' "$b_out" && break
		sleep 0.05
	done
	[ "$(span_names "$b_out" | tr '\n' ' ')" = "j1 j2 j3 j4 " ]
	grep -q '"stringValue":"a line"' "$b_out"
	run metric "$C_PORT" 'otlp_forwarded_items_total{signal="traces"}'
	assert_output 4
	# four spans in batches of at most three: b took at least two requests
	run metric "$b_port" 'http_requests_total{route="/v1/traces",code="200"}'
	[ "$output" -ge 2 ]
}
