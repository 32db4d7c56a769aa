#!/usr/bin/env bats
# Tracing in the dsys programs beyond dsys-serve and dsys-counter: the
# Raft node's server spans, dsys-lock's span per subcommand (its TRACEPARENT
# handed to run's CMD), and log lines that name the span they were written in.

load helpers
load etcd_helpers
bats_require_minimum_version 1.5.0

setup() {
	dsys_setup
	unset TRACEPARENT TRACESTATE OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES OTEL_TRACES_SAMPLER \
		OTEL_TRACES_SAMPLER_ARG OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
		OTEL_EXPORTER_OTLP_PROTOCOL DSYS_TRACE_FILE DSYS_TRACE_SAMPLE DSYS_STORE REDIS_URL \
		DSYS_LOG_LEVEL DSYS_LOG_FORMAT
	export OTEL_BSP_SCHEDULE_DELAY=50
	SPANS=$BATS_TEST_TMPDIR/spans.jsonl
	LOCKS="file:$BATS_TEST_TMPDIR/locks"
}
teardown() {
	dsys_teardown
}

# spans [FILE]: every span of an OTLP JSON lines file, one object a line,
# with its service.name added
spans() {
	jq -c '.resourceSpans[] |
		(.resource.attributes | map(select(.key == "service.name"))[0].value.stringValue) as $svc |
		.scopeSpans[].spans[] | . + {service: $svc}' "${1:-$SPANS}"
}
span() { spans "${2:-$SPANS}" | jq -c --arg n "$1" 'select(.name == $n)'; }
attr() { jq -c --arg k "$2" '.attributes | map(select(.key == $k))[0].value' <<<"$1"; }

TP_TRACE=0af7651916cd43dd8448eb211c80319c
TP_SPAN=b7ad6b7169203331
TP="00-$TP_TRACE-$TP_SPAN-01"

@test "trace programs: the raft node continues a curl's trace with one server span per request, with its baggage, and its log lines name that span" {
	ports=($(etcd_free_ports 1))
	export DSYS_TRACE_FILE=$SPANS DSYS_LOG_LEVEL=debug DSYS_LOG_FORMAT=json
	start_server raft dsys-raft node --name n1 --data-dir "$BATS_TEST_TMPDIR/n1" \
		--listen-client 127.0.0.1:0 --initial-cluster "n1=http://127.0.0.1:${ports[0]}" \
		--heartbeat-interval 20ms --election-timeout 200ms --trace-sample 0
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$SERVER_PORT/health" >/dev/null && break
		sleep 0.05
	done
	run -0 curl -sf -H "traceparent: $TP" -H 'baggage: deploy=42;ttl=1' "http://127.0.0.1:$SERVER_PORT/v3/kv/put" \
		-d '{"key":"YQ==","value":"MQ=="}'
	# no traceparent and --trace-sample 0: no span
	run -0 curl -sf "http://127.0.0.1:$SERVER_PORT/v3/kv/range" -d '{"key":"YQ=="}'
	stop_server "$SERVER_PID"
	run -0 spans
	[ "${#lines[@]}" -eq 1 ] || { echo "$output"; false; }
	s=${lines[0]}
	[ "$(jq -r .name <<<"$s")" = "POST /v3/kv/put" ]
	[ "$(jq -r .traceId <<<"$s")" = "$TP_TRACE" ]
	[ "$(jq -r .parentSpanId <<<"$s")" = "$TP_SPAN" ]
	[ "$(jq -r .kind <<<"$s")" = 2 ]
	[ "$(jq -r .service <<<"$s")" = dsys-raft ]
	[ "$(attr "$s" http.response.status_code)" = '{"intValue":"200"}' ]
	[ "$(attr "$s" deploy)" = '{"stringValue":"42"}' ]
	sid=$(jq -r .spanId <<<"$s")
	# the request's debug line, written while its handler ran, names its span
	run -0 jq -c 'select(.msg | startswith("new req"))' "$SERVER_ERR"
	[ "${#lines[@]}" -eq 2 ] || { echo "$output"; false; }
	[ "$(jq -r .trace_id <<<"${lines[0]}")" = "$TP_TRACE" ]
	[ "$(jq -r .span_id <<<"${lines[0]}")" = "$sid" ]
	# and the untraced request's line names none
	[ "$(jq -r '.trace_id // "none"' <<<"${lines[1]}")" = none ]
}

@test "trace programs: the raft node refuses --trace-sample with nowhere to send spans, and a ratio out of range" {
	run --separate-stderr dsys-raft node --name n1 --data-dir "$BATS_TEST_TMPDIR/n1" \
		--listen-client 127.0.0.1:0 --initial-cluster n1=http://127.0.0.1:1 --trace-sample 1.5
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"ratio from 0 to 1"* ]]
	ports=($(etcd_free_ports 1))
	run --separate-stderr dsys-raft node --name n1 --data-dir "$BATS_TEST_TMPDIR/n1" \
		--listen-client 127.0.0.1:0 --initial-cluster "n1=http://127.0.0.1:${ports[0]}" --trace-sample 1
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"spans would go nowhere"* ]]
}

@test "trace programs: dsys-lock run is a span under dsys-trace exec, and CMD's TRACEPARENT is that span; CMD's status passes through" {
	export DSYS_TRACE_FILE=$SPANS
	run --separate-stderr dsys-trace exec --name outer -- \
		dsys-lock run job --store "$LOCKS" -- sh -c 'echo "$TRACEPARENT"; exit 3'
	[ "$status" -eq 3 ]
	child_tp=$output
	outer=$(span outer)
	lock=$(span "dsys-lock run")
	[ -n "$outer" ]
	[ -n "$lock" ]
	[ "$(jq -r .traceId <<<"$lock")" = "$(jq -r .traceId <<<"$outer")" ]
	[ "$(jq -r .parentSpanId <<<"$lock")" = "$(jq -r .spanId <<<"$outer")" ]
	[ "$child_tp" = "00-$(jq -r .traceId <<<"$lock")-$(jq -r .spanId <<<"$lock")-01" ]
	[ "$(jq -r .service <<<"$lock")" = dsys-lock ]
	[ "$(attr "$lock" lock.name)" = '{"stringValue":"job"}' ]
	[ "$(attr "$lock" lock.store)" = '{"stringValue":"file"}' ]
	[ "$(attr "$lock" process.exit.code)" = '{"intValue":"3"}' ]
	[ "$(jq -r .status.code <<<"$lock")" = 2 ]
	# the lock span lies within the exec span
	[ "$(jq -r .startTimeUnixNano <<<"$lock")" -ge "$(jq -r .startTimeUnixNano <<<"$outer")" ]
	[ "$(jq -r .endTimeUnixNano <<<"$lock")" -le "$(jq -r .endTimeUnixNano <<<"$outer")" ]
}

@test "trace programs: dsys-lock acquire and release are a span each over OTLP/HTTP to a collector, and a held lock's span is an error" {
	start_server collect dsys-trace collect --listen 127.0.0.1:0 --threads 1
	C_OUT=$SERVER_OUT
	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SERVER_PORT OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
	export TRACEPARENT=$TP
	run -0 dsys-lock acquire db --store "$LOCKS"
	grant=$output
	run -1 dsys-lock acquire db --nowait --store "$LOCKS"
	run -0 dsys-lock release --store "$LOCKS" <<<"$grant"
	tail -n +2 "$C_OUT" >"$BATS_TEST_TMPDIR/got.jsonl"
	run -0 spans "$BATS_TEST_TMPDIR/got.jsonl"
	[ "${#lines[@]}" -eq 3 ] || { echo "$output"; false; }
	run -0 jq -r '[.name, .traceId, .parentSpanId, (.status.code // 0)] | join(" ")' <<<"$output"
	[ "${lines[0]}" = "dsys-lock acquire $TP_TRACE $TP_SPAN 0" ]
	[ "${lines[1]}" = "dsys-lock acquire $TP_TRACE $TP_SPAN 2" ]
	[ "${lines[2]}" = "dsys-lock release $TP_TRACE $TP_SPAN 0" ]
}

@test "trace programs: with no exporter set dsys-lock records nothing and CMD inherits TRACEPARENT unchanged" {
	export TRACEPARENT=$TP
	run -0 dsys-lock run job --store "$LOCKS" -- sh -c 'echo "$TRACEPARENT"'
	[ "$output" = "$TP" ]
	[ ! -e "$SPANS" ]
}

@test "trace programs: an unsampled parent makes dsys-lock record nothing, and CMD sees the unsampled flag" {
	export DSYS_TRACE_FILE=$SPANS TRACEPARENT="00-$TP_TRACE-$TP_SPAN-00"
	run -0 dsys-lock run job --store "$LOCKS" -- sh -c 'echo "$TRACEPARENT"'
	[[ "$output" == "00-$TP_TRACE-"*"-00" ]]
	[ "$output" != "$TRACEPARENT" ]
	[ ! -s "$SPANS" ]
}

@test "trace programs: a server started under a trace logs its lines in that trace's span" {
	export TRACEPARENT=$TP DSYS_LOG_FORMAT=json
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1
	stop_server "$SERVER_PID"
	run -0 jq -c 'select(.msg == "drained")' "$SERVER_ERR"
	[ "${#lines[@]}" -eq 1 ]
	[ "$(jq -r .trace_id <<<"$output")" = "$TP_TRACE" ]
	[ "$(jq -r .span_id <<<"$output")" = "$TP_SPAN" ]
	# an invalid TRACEPARENT names nothing
	export TRACEPARENT="00-${TP_TRACE^^}-$TP_SPAN-01"
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1
	stop_server "$SERVER_PID"
	run -0 jq -c 'select(.msg == "drained")' "$SERVER_ERR"
	[ "$(jq -r '.trace_id // "none"' <<<"$output")" = none ]
}

@test "trace programs: -s is --store wherever it is taken; dsys-trace's --service and --status have no -s" {
	run -2 dsys-trace log -s web </dev/null
	run -2 dsys-trace end -s ok
	# the long forms still work
	export DSYS_TRACE_FILE=$SPANS DSYS_TRACE_SPOOL=$BATS_TEST_TMPDIR/open
	run -0 dsys-trace log --service web <<<"hello"
	tp=$(dsys-trace start step | jq -r .traceparent)
	run -0 dsys-trace end --status ok "$tp"
	[ "$(span step | jq -r .status.code)" = 1 ]
	for cmd in "dsys-counter" "dsys-lock acquire" "dsys-register add" "dsys-trace log" "dsys-trace end" \
		"dsys-trace exec" "dsys-trace collect" "dsys-serve" "dsys-bench"; do
		run -0 $cmd --help
		while read -r line; do
			[[ "$line" == "-s, --store "* ]] || { echo "$cmd: $line"; false; }
		done < <(grep -E '^ *-s, ' <<<"$output" | sed 's/^ *//')
	done
}

@test "trace programs: BAGGAGE rides with the context on dsys-bench --trace and dsys-counter's requests; an invalid one is not sent" {
	RECV_LOG=$BATS_TEST_TMPDIR/received.jsonl
	"$DSYS_PY" "$BATS_TEST_DIRNAME/otlp_receiver.py" "$BATS_TEST_TMPDIR/recv.port" "$RECV_LOG" 3>&- &
	DSYS_SERVER_PIDS+=("$!")
	for _ in $(seq 200); do [ -s "$BATS_TEST_TMPDIR/recv.port" ] && break; sleep 0.05; done
	port=$(cat "$BATS_TEST_TMPDIR/recv.port")
	export TRACEPARENT=$TP BAGGAGE='user=alice, tier=gold;p=1'
	run -0 dsys-bench --trace --requests 1 -c 1 -t 1 -m POST -b x --json "http://127.0.0.1:$port/b"
	run dsys-counter incr k --server "http://127.0.0.1:$port"
	BAGGAGE='user=a b' dsys-bench --trace --requests 1 -c 1 -t 1 -m POST -b x --json "http://127.0.0.1:$port/bad" >/dev/null
	run -0 jq -r '[.path, .headers.traceparent, (.headers.baggage // "none")] | join(" ")' "$RECV_LOG"
	[ "${#lines[@]}" -eq 3 ] || { echo "$output"; false; }
	[ "${lines[0]}" = "/b $TP user=alice, tier=gold;p=1" ]
	[ "${lines[1]}" = "/incr $TP user=alice, tier=gold;p=1" ]
	[ "${lines[2]}" = "/bad $TP none" ]
}

@test "trace programs: dsys-register add is a span whose CMD is its child, and a list that CMD runs is the add span's child" {
	export DSYS_TRACE_FILE=$SPANS TRACEPARENT=$TP
	reg="file:$BATS_TEST_TMPDIR/reg"
	run --separate-stderr dsys-register add web --addr 127.0.0.1:9 --store "$reg" -- \
		sh -c 'echo "$TRACEPARENT"; dsys-register list web --store "$1" >/dev/null; exit 4' _ "$reg"
	[ "$status" -eq 4 ]
	add=$(span "dsys-register add")
	list=$(span "dsys-register list")
	[ "$(jq -r .parentSpanId <<<"$add")" = "$TP_SPAN" ]
	# stdout: add's event lines and CMD's TRACEPARENT
	[ "$(grep '^00-' <<<"$output")" = "00-$TP_TRACE-$(jq -r .spanId <<<"$add")-01" ]
	[ "$(jq -r .parentSpanId <<<"$list")" = "$(jq -r .spanId <<<"$add")" ]
	[ "$(jq -r .traceId <<<"$list")" = "$TP_TRACE" ]
	[ "$(attr "$add" register.service)" = '{"stringValue":"web"}' ]
	[ "$(attr "$add" process.exit.code)" = '{"intValue":"4"}' ]
	[ "$(jq -r .status.code <<<"$add")" = 2 ]
	[ "$(attr "$list" process.exit.code)" = '{"intValue":"0"}' ]
}

# until FILE has at least N lines matching PATTERN (grep), 10 s at most
wait_lines() {
	local i
	for ((i = 0; i < 500; i++)); do
		[ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
		sleep 0.02
	done
	echo "fewer than $3 lines '$2' in $1:" >&2
	cat "$1" >&2
	return 1
}

@test "trace programs: dsys-register watch is a span per delivery and render one per render, each a child of TRACEPARENT, with --check-cmd under the render" {
	reg="file:$BATS_TEST_TMPDIR/reg"
	w=$BATS_TEST_TMPDIR/watch.out
	r=$BATS_TEST_TMPDIR/render.out
	tpl=$BATS_TEST_TMPDIR/up.tpl
	seen=$BATS_TEST_TMPDIR/check.tp
	echo '{{range}}server {{addr}};{{end}}' >"$tpl"
	DSYS_TRACE_FILE=$SPANS TRACEPARENT=$TP dsys-register watch web --store "$reg" >"$w" 3>&- &
	DSYS_SERVER_PIDS+=("$!")
	DSYS_TRACE_FILE=$SPANS TRACEPARENT=$TP dsys-register render web --store "$reg" --template "$tpl" \
		--out "$BATS_TEST_TMPDIR/up.conf" --wait 20ms:200ms \
		--check-cmd "printf '%s\n' \"\$TRACEPARENT\" >>'$seen'" >"$r" 2>"$r.err" 3>&- &
	DSYS_SERVER_PIDS+=("$!")
	wait_lines "$w" '"event":"synced"' 1
	wait_lines "$r.err" 'fewer than --min 1' 1
	# the adds are not traced: only watch's and render's spans are in the file
	dsys-register add web --addr 127.0.0.1:8080 --id a --store "$reg" >/dev/null 3>&- &
	DSYS_SERVER_PIDS+=("$!")
	wait_lines "$w" '"event":"up"' 1
	wait_lines "$r" '"instances":1' 1
	dsys-register add web --addr 127.0.0.1:8081 --id b --store "$reg" >/dev/null 3>&- &
	DSYS_SERVER_PIDS+=("$!")
	wait_lines "$w" '"event":"up"' 2
	wait_lines "$r" '"instances":2' 1
	# a span is written as it ends, just after its lines
	wait_lines "$SPANS" '"dsys-register render"' 2
	wait_lines "$SPANS" '"dsys-register watch"' 3
	run -0 jq -s -c 'sort_by(.startTimeUnixNano) | map(select(.name == "dsys-register watch") |
		[.traceId, .parentSpanId, (.attributes | from_entries | .["register.events"], .["register.instances"])])' \
		< <(spans | jq -c '.attributes |= map({key, value: (.value | to_entries[0].value)}) | .')
	assert_output "[[\"$TP_TRACE\",\"$TP_SPAN\",\"0\",\"0\"],[\"$TP_TRACE\",\"$TP_SPAN\",\"1\",\"1\"],[\"$TP_TRACE\",\"$TP_SPAN\",\"1\",\"2\"]]"
	run -0 jq -s -c 'sort_by(.startTimeUnixNano) | map(select(.name == "dsys-register render") |
		[.traceId, .parentSpanId, .spanId, (.attributes | from_entries | .["register.instances"], .["process.exit.code"])])' \
		< <(spans | jq -c '.attributes |= map({key, value: (.value | to_entries[0].value)}) | .')
	renders=$output
	[ "$(jq -c 'map(del(.[2]))' <<<"$renders")" = "[[\"$TP_TRACE\",\"$TP_SPAN\",\"1\",\"0\"],[\"$TP_TRACE\",\"$TP_SPAN\",\"2\",\"0\"]]" ]
	# --check-cmd saw each render's own span as its TRACEPARENT
	run -0 cat "$seen"
	assert_output "$(jq -r --arg t "$TP_TRACE" '.[] | "00-\($t)-\(.[2])-01"' <<<"$renders")"
}
