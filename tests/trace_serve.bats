#!/usr/bin/env bats
# Tracing inside the servers: dsys-serve and dsys-counter serve with
# --trace-sample continue the trace a client sends (HTTP/1.1 and HTTP/2)
# and export a server span per request to a real `dsys-trace collect`;
# the counter's Redis call is a child of it.

load helpers
load redis_helpers
bats_require_minimum_version 1.5.0

setup() {
	dsys_setup
	unset TRACEPARENT TRACESTATE OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES OTEL_TRACES_SAMPLER \
		OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_EXPORTER_OTLP_LOGS_ENDPOINT \
		OTEL_EXPORTER_OTLP_PROTOCOL OTEL_EXPORTER_OTLP_TIMEOUT DSYS_TRACE_FILE DSYS_TRACE_FORWARD \
		OTEL_BSP_SCHEDULE_DELAY OTEL_BSP_MAX_EXPORT_BATCH_SIZE OTEL_BSP_MAX_QUEUE_SIZE DSYS_TRACE_SAMPLE
	export DSYS_TRACE_SPOOL=$BATS_TEST_TMPDIR/open
	# the server's batches leave at once, so a test waits milliseconds
	export OTEL_BSP_SCHEDULE_DELAY=50
}
teardown() {
	dsys_teardown
	[ -z "${REDIS_PID:-}" ] || redis_stop
}

# A collector, and the environment that points exporters at it.
collector() {
	start_server collect dsys-trace collect --listen 127.0.0.1:0 --threads 1
	C_OUT=$SERVER_OUT
	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SERVER_PORT
}

# spans: every span the collector wrote, one JSON object a line, with
# the service name added
spans() {
	tail -n +2 "$C_OUT" | jq -c '.resourceSpans[] |
		(.resource.attributes | map(select(.key == "service.name"))[0].value.stringValue) as $svc |
		.scopeSpans[].spans[] | . + {service: $svc}'
}

# wait_spans N: until the collector holds at least N spans (10 s at most)
wait_spans() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ "$(spans | wc -l)" -ge "$1" ] && return 0
		sleep 0.05
	done
	echo "expected $1 spans, got: $(spans)" >&2
	return 1
}

# span NAME: the one span of that name
span() {
	spans | jq -c --arg n "$1" 'select(.name == $n)'
}

attr() { # attr SPAN_JSON KEY: its value, as a JSON value
	jq -c --arg k "$2" '.attributes | map(select(.key == $k))[0].value' <<<"$1"
}

TP_SAMPLED=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01

@test "dsys-serve --trace-sample: the server span of a request sent by 'dsys-trace exec -- curl' is the curl span's child" {
	collector
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1 --trace-sample 1
	port=$SERVER_PORT
	run dsys-trace exec --name client -- sh -c \
		'curl -sS -H "traceparent: $TRACEPARENT" "http://127.0.0.1:'"$port"'/hello?who=me"'
	assert_success
	wait_spans 2
	client=$(span client)
	server=$(span "GET /hello")
	[ -n "$client" ]
	[ -n "$server" ]
	[ "$(jq -r .traceId <<<"$server")" = "$(jq -r .traceId <<<"$client")" ]
	[ "$(jq -r .parentSpanId <<<"$server")" = "$(jq -r .spanId <<<"$client")" ]
	[ "$(jq -r .spanId <<<"$server")" != "$(jq -r .spanId <<<"$client")" ]
	[ "$(jq -r .kind <<<"$server")" = 2 ]
	[ "$(jq -r .service <<<"$server")" = dsys-serve ]
	[ "$(attr "$server" http.request.method)" = '{"stringValue":"GET"}' ]
	[ "$(attr "$server" url.path)" = '{"stringValue":"/hello"}' ]
	[ "$(attr "$server" url.query)" = '{"stringValue":"who=me"}' ]
	[ "$(attr "$server" http.route)" = '{"stringValue":"/hello"}' ]
	[ "$(attr "$server" http.response.status_code)" = '{"intValue":"200"}' ]
	[ "$(attr "$server" network.protocol.version)" = '{"stringValue":"1.1"}' ]
	# the server span lies inside the client's
	jq -e --argjson c "$client" '(.startTimeUnixNano | tonumber) >= ($c.startTimeUnixNano | tonumber) and
		(.endTimeUnixNano | tonumber) <= ($c.endTimeUnixNano | tonumber)' <<<"$server"
}

@test "dsys-serve --trace-sample: HTTP/2 requests continue the trace too, and tracestate is carried (OTLP/JSON)" {
	collector
	OTEL_EXPORTER_OTLP_PROTOCOL=http/json start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1 \
		--trace-sample 1
	run curl -sS --http2-prior-knowledge -H "traceparent: $TP_SAMPLED" -H 'tracestate: a=1, b=2' \
		http://127.0.0.1:$SERVER_PORT/hello
	assert_success
	wait_spans 1
	server=$(span "GET /hello")
	[ "$(jq -r .traceId <<<"$server")" = 0af7651916cd43dd8448eb211c80319c ]
	[ "$(jq -r .parentSpanId <<<"$server")" = b7ad6b7169203331 ]
	[ "$(jq -r .traceState <<<"$server")" = a=1,b=2 ]
	[ "$(attr "$server" network.protocol.version)" = '{"stringValue":"2"}' ]
}

@test "dsys-serve --trace-sample: an unsampled traceparent makes no span, a sampled one after it does" {
	collector
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1 --trace-sample 1
	curl -sS -o /dev/null -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00' \
		http://127.0.0.1:$SERVER_PORT/hello
	curl -sS -o /dev/null -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-02' \
		http://127.0.0.1:$SERVER_PORT/hello
	curl -sS -o /dev/null -H "traceparent: $TP_SAMPLED" http://127.0.0.1:$SERVER_PORT/nothing-here
	wait_spans 1
	sleep 0.3   # room for a wrongly made span to arrive
	[ "$(spans | wc -l)" -eq 1 ]
	server=$(spans)
	[ "$(jq -r .name <<<"$server")" = GET ]
	[ "$(attr "$server" url.path)" = '{"stringValue":"/nothing-here"}' ]
	[ "$(attr "$server" http.response.status_code)" = '{"intValue":"404"}' ]
	run metric "$SERVER_PORT" trace_spans_total
	assert_output 1
	run metric "$SERVER_PORT" trace_spans_dropped_total
	assert_output 0
}

@test "dsys-serve --trace-sample: a bad traceparent starts a fresh trace and its tracestate is dropped" {
	collector
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1 --trace-sample 1
	# upper-case hex is invalid in W3C Trace Context
	curl -sS -o /dev/null -H 'traceparent: 00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01' \
		-H 'tracestate: a=1' http://127.0.0.1:$SERVER_PORT/hello
	wait_spans 1
	server=$(spans)
	run jq -r '.traceId, (.parentSpanId // "none"), (.traceState // "none")' <<<"$server"
	[ "${lines[0]}" != 0af7651916cd43dd8448eb211c80319c ]
	[[ ${lines[0]} =~ ^[0-9a-f]{32}$ ]]
	[ "${lines[1]}" = none ]
	[ "${lines[2]}" = none ]
}

@test "dsys-serve --trace-sample 0 records only what a sampled caller asks for; 1 records every new trace" {
	collector
	start_server serve0 dsys-serve --listen 127.0.0.1:0 --threads 1 --trace-sample 0
	for i in 1 2 3; do curl -sS -o /dev/null http://127.0.0.1:$SERVER_PORT/hello; done
	curl -sS -o /dev/null -H "traceparent: $TP_SAMPLED" http://127.0.0.1:$SERVER_PORT/hello
	wait_spans 1
	sleep 0.3
	[ "$(spans | wc -l)" -eq 1 ]
	[ "$(spans | jq -r .parentSpanId)" = b7ad6b7169203331 ]
	start_server serve1 dsys-serve --listen 127.0.0.1:0 --threads 1 --trace-sample 1
	for i in 1 2 3; do curl -sS -o /dev/null http://127.0.0.1:$SERVER_PORT/hello; done
	wait_spans 4
	# three roots, three traces
	[ "$(spans | jq -r 'select(.parentSpanId == null) | .traceId' | sort -u | wc -l)" -eq 3 ]
}

@test "dsys-serve --trace-sample with DSYS_TRACE_FILE appends OTLP JSON lines; without a destination it refuses to start" {
	export DSYS_TRACE_FILE=$BATS_TEST_TMPDIR/spans.jsonl
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1 --trace-sample 1
	curl -sS -o /dev/null -H "traceparent: $TP_SAMPLED" http://127.0.0.1:$SERVER_PORT/hello
	stop_server "$SERVER_PID"
	[ "$(wc -l <"$DSYS_TRACE_FILE")" -eq 1 ]
	jq -e '.resourceSpans[0].scopeSpans[0].spans[0] | .parentSpanId == "b7ad6b7169203331" and .kind == 2' \
		"$DSYS_TRACE_FILE"
	unset DSYS_TRACE_FILE
	run -2 dsys-serve --listen 127.0.0.1:0 --trace-sample 1
	assert_output --partial 'OTEL_EXPORTER_OTLP_ENDPOINT'
	run -2 dsys-serve --listen 127.0.0.1:0 --trace-sample 1.5
	assert_output --partial 'expected a ratio from 0 to 1'
	run -2 dsys-serve --listen 127.0.0.1:0 --trace-sample abc
}

@test "dsys-counter serve --trace-sample: the Redis call is a CLIENT child of the server span" {
	redis_start
	collector
	start_server counter dsys-counter serve --listen 127.0.0.1:0 --threads 1 --store "$REDIS_URL" \
		--trace-sample 1
	run dsys-trace exec --name deploy -- sh -c \
		'curl -sS -d "{\"key\":\"hits\"}" -H "traceparent: $TRACEPARENT" http://127.0.0.1:'"$SERVER_PORT"'/incr'
	assert_success
	assert_output --partial '"value":1'
	wait_spans 3
	client=$(span deploy)
	server=$(spans | jq -c 'select(.kind == 2)')
	redis=$(span INCRBY)
	[ -n "$server" ]
	[ -n "$redis" ]
	[ "$(jq -r .service <<<"$server")" = dsys-counter ]
	[ "$(jq -r .name <<<"$server")" = "POST /incr" ]
	[ "$(jq -r .parentSpanId <<<"$server")" = "$(jq -r .spanId <<<"$client")" ]
	[ "$(jq -r .parentSpanId <<<"$redis")" = "$(jq -r .spanId <<<"$server")" ]
	[ "$(jq -r .traceId <<<"$redis")" = "$(jq -r .traceId <<<"$client")" ]
	[ "$(jq -r .kind <<<"$redis")" = 3 ]
	[ "$(attr "$redis" db.system.name)" = '{"stringValue":"redis"}' ]
	jq -e --argjson s "$server" '(.startTimeUnixNano | tonumber) >= ($s.startTimeUnixNano | tonumber) and
		(.endTimeUnixNano | tonumber) <= ($s.endTimeUnixNano | tonumber)' <<<"$redis"
}

@test "dsys-bench --trace under dsys-trace exec: every request's server span is a child of the exec span" {
	collector
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1 --trace-sample 0
	run dsys-trace exec --name load -- dsys-bench --trace -n 5 -c 1 -t 1 --json \
		http://127.0.0.1:$SERVER_PORT/hello
	assert_success
	wait_spans 6
	load=$(span load)
	[ "$(spans | jq -c 'select(.kind == 2)' | wc -l)" -eq 5 ]
	[ "$(spans | jq -r --argjson l "$load" 'select(.kind == 2) |
		select(.traceId == $l.traceId and .parentSpanId == $l.spanId) | .spanId' | sort -u | wc -l)" -eq 5 ]
	# without --trace the server (sampling no new trace) records nothing more
	run dsys-bench -n 5 -c 1 -t 1 --json http://127.0.0.1:$SERVER_PORT/hello
	assert_success
	sleep 0.3
	[ "$(spans | wc -l)" -eq 6 ]
}

@test "dsys-serve --trace-sample: the span it encodes in protobuf reads back as the JSON it writes to DSYS_TRACE_FILE" {
	collector
	start_server pb dsys-serve --listen 127.0.0.1:0 --threads 1 --trace-sample 1
	pb_port=$SERVER_PORT
	DSYS_TRACE_FILE=$BATS_TEST_TMPDIR/f.jsonl start_server file dsys-serve --listen 127.0.0.1:0 --threads 1 \
		--trace-sample 1
	for port in "$pb_port" "$SERVER_PORT"; do
		curl -sS -o /dev/null -H "traceparent: $TP_SAMPLED" -H 'tracestate: k=v' \
			"http://127.0.0.1:$port/nope?q=1"
	done
	wait_spans 1
	for i in $(seq 100); do [ -s "$BATS_TEST_TMPDIR/f.jsonl" ] && break; sleep 0.05; done
	norm='del(.resourceSpans[].scopeSpans[].spans[] | .spanId, .startTimeUnixNano, .endTimeUnixNano)'
	from_pb=$(tail -n +2 "$C_OUT" | head -1 | jq -cS "$norm")
	from_file=$(jq -cS "$norm" "$BATS_TEST_TMPDIR/f.jsonl")
	[ -n "$from_pb" ]
	[ "$from_pb" = "$from_file" ] || { echo "pb:   $from_pb"; echo "file: $from_file"; false; }
}

@test "dsys-counter serve --trace-sample: the log line about a failed Redis call names the request's trace and span" {
	redis_start
	collector
	start_server counter dsys-counter serve --listen 127.0.0.1:0 --threads 1 --store "$REDIS_URL" \
		--trace-sample 1 --backend-timeout 500ms
	redis_stop
	REDIS_PID=
	run curl -sS -o /dev/null -w '%{http_code}' -d '{"key":"hits"}' -H "traceparent: $TP_SAMPLED" \
		http://127.0.0.1:$SERVER_PORT/incr
	assert_output 503
	wait_spans 2
	server=$(spans | jq -c 'select(.kind == 2)')
	redis=$(span INCRBY)
	[ "$(jq -r .status.code <<<"$redis")" = 2 ]
	line=$(grep '"msg":"backend ' "$SERVER_ERR" | head -1)
	[ -n "$line" ] || { cat "$SERVER_ERR"; false; }
	[ "$(jq -r .trace_id <<<"$line")" = 0af7651916cd43dd8448eb211c80319c ]
	[ "$(jq -r .span_id <<<"$line")" = "$(jq -r .spanId <<<"$server")" ]
	# lines about no request carry no ids
	run jq -r 'select(.msg | startswith("listening")) | .trace_id' "$SERVER_ERR"
	assert_output null
}

@test "dsys-serve --trace-sample: each member of the request's baggage is an attribute of its span, over HTTP/1.1 and HTTP/2; an invalid header is not" {
	collector
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1 --trace-sample 1
	# two headers; a property is left out, %XX decoded, and a member may not
	# overwrite what the server records (url.scheme)
	run -0 curl -sS -H "traceparent: $TP_SAMPLED" -H 'baggage: user=alice, tier=gold;p=1, city=Z%C3%BCrich' \
		-H 'baggage: url.scheme=evil,ctl=a%0Ab' "http://127.0.0.1:$SERVER_PORT/hello?v=1"
	run -0 curl -sS --http2-prior-knowledge -H 'baggage: user=bob' "http://127.0.0.1:$SERVER_PORT/hello?v=2"
	run -0 curl -sS -H 'baggage: user=a b' "http://127.0.0.1:$SERVER_PORT/hello?v=3"
	wait_spans 3
	one=$(spans | jq -c 'select(.attributes[] | .key == "url.query" and .value.stringValue == "v=1")')
	two=$(spans | jq -c 'select(.attributes[] | .key == "url.query" and .value.stringValue == "v=2")')
	three=$(spans | jq -c 'select(.attributes[] | .key == "url.query" and .value.stringValue == "v=3")')
	[ "$(attr "$one" user)" = '{"stringValue":"alice"}' ]
	[ "$(attr "$one" tier)" = '{"stringValue":"gold"}' ]
	[ "$(attr "$one" city)" = '{"stringValue":"Zürich"}' ]
	[ "$(attr "$one" url.scheme)" = '{"stringValue":"http"}' ]
	# a decoded control character would not be printable: kept as sent
	[ "$(attr "$one" ctl)" = '{"stringValue":"a%0Ab"}' ]
	[ "$(jq -r .parentSpanId <<<"$one")" = b7ad6b7169203331 ]
	[ "$(attr "$two" user)" = '{"stringValue":"bob"}' ]
	[ "$(attr "$two" network.protocol.version)" = '{"stringValue":"2"}' ]
	[ "$(attr "$three" user)" = null ]
	[ -n "$three" ]
}

@test "dsys-counter serve --trace-sample: the request's baggage is on its server span and on the Redis call's span" {
	redis_start
	collector
	start_server counter dsys-counter serve --listen 127.0.0.1:0 --threads 1 --store "$REDIS_URL" \
		--trace-sample 1
	run -0 curl -sS -d '{"key":"hits"}' -H "traceparent: $TP_SAMPLED" -H 'baggage: tenant=acme' \
		"http://127.0.0.1:$SERVER_PORT/incr"
	wait_spans 2
	server=$(spans | jq -c 'select(.kind == 2)')
	redis=$(span INCRBY)
	[ "$(attr "$server" tenant)" = '{"stringValue":"acme"}' ]
	[ "$(attr "$redis" tenant)" = '{"stringValue":"acme"}' ]
	[ "$(jq -r .parentSpanId <<<"$redis")" = "$(jq -r .spanId <<<"$server")" ]
}
