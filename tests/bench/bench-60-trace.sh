#!/usr/bin/env bash
# make bench, section "trace": what `dsys-trace exec` adds to a command.
#
# Rows (each BENCH_ROUNDS rounds, order reversed every other round), each
# BENCH_TRACE_RUNS (200) runs of /bin/true one after another, pinned to
# CPU $BENCH_LOAD_CPU:
#   true        /bin/true alone
#   env         /usr/bin/env /bin/true: a bare wrapper that only execs, the
#               part of any wrapper's cost that is the kernel's and the
#               loader's (a second exec), not ours
#   exec        dsys-trace exec -- /bin/true, no exporter set
#   exec-file   the same, each span appended to DSYS_TRACE_FILE
# Columns: us_per_run, the mean wall time of one run; adds_ms, the
# difference to true of the same round (issue 18's bar: at most 2); and
# adds_over_env_ms, the difference to env of the same round: what is
# dsys-trace's own (the wrapper process, the span, the export).
#
# Then what `dsys-trace collect` ingests (one loop, on CPU $BENCH_SERVER_CPU,
# its lines written to a pipe that discards them): dsys-bench on the load
# CPU posts one request of BENCH_TRACE_BATCH (100) spans to /v1/traces
# over BENCH_TRACE_CONNS (4) connections for BENCH_DURATION, as
#   collect-pb    application/x-protobuf
#   collect-json  application/json
# Columns: spans_per_s (issue 18's bar: at least 200000 on one core) and
# server_cpu_pct, the collector's CPU over the run (near 100: it was the
# bottleneck; far below: neighbours starved it and the rate means little).
#
# Last, what tracing costs a server: dsys-serve --threads 1 on CPU
# $BENCH_SERVER_CPU answering wrk -c100 on /hello, as
#   serve-off     no tracing
#   serve-traced  --trace-sample 1: a span for every request, exported in
#                 protobuf (OTEL_BSP_* defaults) to a collector pinned to
#                 the load CPU beside wrk, its lines discarded
# Columns: rps and cpu_us_per_req (the export thread counts: it runs in
# the server's process, on its CPU), spans_pct, the share of the
# requests whose span reached the collector (below 100: the batch queue
# was full and dropped spans, as OpenTelemetry's batch processor does
# rather than slow the server); the ratio line compares rps (issue 18's
# bar: serve-traced at least 0.8x serve-off).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
BENCH_ROW_LABEL=run
BENCH_COLUMNS="us_per_run adds_ms adds_over_env_ms"
BENCH_RATIOS=""
bench_init trace || exit 1
if ! command -v dsys-trace >/dev/null 2>&1; then
	bench_skip "trace: dsys-trace not built"
	exit 0
fi
runs=${BENCH_TRACE_RUNS:-200}
spans=$(bench_dir trace)/spans.jsonl
declare -A true_us env_us

loop() { # CASE NAME ROUND
	local t0 t1 us
	local -a cmd=(/bin/true)
	case $2 in
	env) cmd=(/usr/bin/env /bin/true) ;;
	exec | exec-file) cmd=("$(command -v dsys-trace)" exec -- /bin/true) ;;
	esac
	t0=$(date +%s%N)
	if [ "$2" = exec-file ]; then
		DSYS_TRACE_FILE=$spans taskset -c "$BENCH_LOAD_CPU" bash -c \
			'for ((i = 0; i < $1; i++)); do "${@:2}"; done' _ "$runs" "${cmd[@]}"
	else
		env -u DSYS_TRACE_FILE -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
			taskset -c "$BENCH_LOAD_CPU" bash -c \
			'for ((i = 0; i < $1; i++)); do "${@:2}"; done' _ "$runs" "${cmd[@]}"
	fi || { bench_fail "$2: status $?"; return 1; }
	t1=$(date +%s%N)
	us=$(((t1 - t0) / 1000 / runs))
	case $2 in
	true) true_us[$3]=$us ;;
	env) env_us[$3]=$us ;;
	esac
	bench_record "$1" "$2" "$3" us_per_run="$us" \
		adds_ms="$(awk -v a="$us" -v b="${true_us[$3]:-$us}" 'BEGIN { printf "%.3f", (a - b) / 1000 }')" \
		adds_over_env_ms="$(awk -v a="$us" -v b="${env_us[$3]:-$us}" 'BEGIN { printf "%.3f", (a - b) / 1000 }')"
}

# true and env first in every round (in turns), so each exec row has its
# round's baselines
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	bench_want exec-true || break
	for name in $(bench_order "$r" true env); do
		loop exec-true "$name" "$r"
	done
	for name in $(bench_order "$r" exec exec-file); do
		loop exec-true "$name" "$r"
	done
done

# ---- collect ingest
batch=${BENCH_TRACE_BATCH:-100}
dir=$(bench_dir collect-body)
# one request of $batch spans in each encoding, made with our own .proto
if command -v protoc >/dev/null 2>&1 && /usr/bin/python3 -c 'import google.protobuf' 2>/dev/null; then
	protoc --proto_path="$here/../../lib" --python_out="$dir" obs/otlp_common.proto obs/otlp_trace.proto &&
		/usr/bin/python3 - "$dir" "$batch" <<'PY' || bench_fail "collect: cannot build the request bodies"
import json, os, sys
sys.path.insert(0, sys.argv[1])
from obs import otlp_trace_pb2 as t
n = int(sys.argv[2])
req = t.ExportTraceServiceRequest()
rs = req.resource_spans.add()
kv = rs.resource.attributes.add(key="service.name")
kv.value.string_value = "bench"
ss = rs.scope_spans.add()
ss.scope.name = "dsys"
spans = []
for i in range(n):
    tid, sid = os.urandom(16), os.urandom(8)
    s = ss.spans.add(name="GET /hello", trace_id=tid, span_id=sid, parent_span_id=bytes(7) + b"\x01",
                     kind=2, start_time_unix_nano=1700000000000000000 + i, end_time_unix_nano=1700000000000500000 + i,
                     flags=1)
    a = s.attributes.add(key="http.response.status_code")
    a.value.int_value = 200
    s.status.code = 1
    spans.append({"traceId": tid.hex(), "spanId": sid.hex(), "parentSpanId": "0000000000000001", "flags": 1,
                  "name": "GET /hello", "kind": 2, "startTimeUnixNano": str(1700000000000000000 + i),
                  "endTimeUnixNano": str(1700000000000500000 + i),
                  "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}}],
                  "status": {"code": 1}})
open(os.path.join(sys.argv[1], "body.pb"), "wb").write(req.SerializeToString())
body = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bench"}}]},
                           "scopeSpans": [{"scope": {"name": "dsys"}, "spans": spans}]}]}
open(os.path.join(sys.argv[1], "body.json"), "w").write(json.dumps(body, separators=(",", ":")))
PY
else
	bench_skip "collect: protoc or python3-protobuf missing"
fi

ingest() { # CASE NAME ROUND
	local ct=application/json body=$dir/body.json rps
	[ "$2" = collect-pb ] && ct=application/x-protobuf body=$dir/body.pb
	local url=http://127.0.0.1:${BENCH_PORT[collect]}/v1/traces
	local args=(dsys-bench -m POST -H "Content-Type: $ct" -b "@$body" -t 1 -c "${BENCH_TRACE_CONNS:-4}" --json)
	bench_load "${args[@]}" -d "$BENCH_WARMUP" "$url" || { bench_fail "$2 warm-up: status $BENCH_RC"; return 1; }
	bench_measure collect "${args[@]}" -d "$BENCH_DURATION" "$url" || { bench_fail "$2: status $BENCH_RC"; return 1; }
	rps=$(jq -r 'select(.event == "result") | select(.status["200"] == .requests) | .rps' "$BENCH_OUT" | head -1)
	[ -n "$rps" ] || { bench_fail "$2: not every request got 200: $(head -c 300 "$BENCH_OUT")"; return 1; }
	bench_log "$2: server cpu ${BENCH_SERVER_CPU_S}s over ${BENCH_WALL_S}s"
	bench_record "$1" "$2" "$3" spans_per_s="$(awk -v r="$rps" -v b="$batch" 'BEGIN { printf "%d", r * b }')" \
		server_cpu_pct="$(awk -v c="$BENCH_SERVER_CPU_S" -v w="$BENCH_WALL_S" 'BEGIN { printf "%d", (w > 0 ? 100 * c / w : 0) }')"
}

if [ -s "$dir/body.pb" ] && bench_want ingest; then
	# the lines go down a pipe to /dev/null: written, not stored
	if bench_start collect 0 bash -c 'dsys-trace collect --listen 127.0.0.1:0 --threads 1 --max-body-bytes 16M |
		{ IFS= read -r l; printf "%s\n" "$l"; exec cat >/dev/null; }'; then
		BENCH_COLUMNS="us_per_run adds_ms adds_over_env_ms spans_per_s server_cpu_pct"
		bench_rounds ingest "collect-pb collect-json" ingest
		bench_stop collect
	fi
fi
# ---- a traced server against an untraced one
received() { # the spans the collector took so far
	curl -s "http://127.0.0.1:${BENCH_PORT[sink]}/metrics" |
		awk '$1 == "otlp_received_items_total{signal=\"traces\"}" { print $2 }'
}
served() { # CASE NAME ROUND
	local before after
	local url=http://127.0.0.1:${BENCH_PORT[$2]}/hello
	# the warm-up here, so the spans counted are the measured run's
	bench_load wrk -t1 -c100 -d "$BENCH_WARMUP" "$url" || { bench_fail "$2 warm-up failed"; return 1; }
	sleep 0.5
	[ "$2" = serve-traced ] && before=$(received)
	bench_measure "$2" wrk -t1 -c100 -d "$BENCH_DURATION" "$url"
	bench_wrk_parse "$BENCH_OUT" || { bench_fail "$2: wrk counted no answers"; return 1; }
	bench_record "$1" "$2" "$3" rps="$WRK_RPS" cpu_us_per_req="$(awk -v c="$BENCH_SERVER_CPU_S" \
		-v n="$WRK_REQUESTS" 'BEGIN { printf "%.2f", (n > 0 ? c * 1e6 / n : 0) }')"
	bench_log "$(printf '%s round %s: %.0f req/s' "$2" "$3" "$WRK_RPS")"
	if [ "$2" = serve-traced ]; then
		sleep 0.5 # the last batch leaves within OTEL_BSP_SCHEDULE_DELAY
		after=$(received)
		# warm-up and measured run both sent spans: compare with all requests
		bench_record "$1" "$2" "$3" spans_pct="$(awk -v a="$after" -v b="$before" -v n="$WRK_REQUESTS" \
			'BEGIN { printf "%.0f", (n > 0 ? 100 * (a - b) / n : 0) }')"
	fi
}
if bench_want serve-traced && command -v wrk >/dev/null 2>&1; then
	if bench_start sink 0 bash -c 'dsys-trace collect --listen 127.0.0.1:0 --threads 1 |
		{ IFS= read -r l; printf "%s\n" "$l"; exec cat >/dev/null; }'; then
		# beside wrk, so the traced server's CPU holds only its own work
		for p in $(bench_tree "${BENCH_PID[sink]}"); do taskset -a -cp "$BENCH_LOAD_CPU" "$p" >/dev/null 2>&1; done
		OTEL_BSP_SCHEDULE_DELAY=200 bench_start serve-off 0 env -u DSYS_TRACE_FILE -u DSYS_TRACE_SAMPLE \
			dsys-serve --listen 127.0.0.1:0 --threads 1 &&
			bench_start serve-traced 0 env -u DSYS_TRACE_FILE OTEL_BSP_SCHEDULE_DELAY=200 \
				OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:${BENCH_PORT[sink]}" \
				dsys-serve --listen 127.0.0.1:0 --threads 1 --trace-sample 1 &&
			{
				BENCH_COLUMNS="us_per_run adds_ms adds_over_env_ms spans_per_s server_cpu_pct rps cpu_us_per_req spans_pct"
				BENCH_RATIOS="rps"
				bench_rounds serve-traced "serve-off serve-traced" served
			}
		bench_stop serve-off
		bench_stop serve-traced
		bench_stop sink
	fi
fi
bench_report serve-off
bench_finish
exit
