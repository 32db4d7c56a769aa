#!/bin/bash
# traced-deploy.sh -- a deploy script traced end to end with dsys-trace.
#
# Every step runs under `dsys-trace exec`, inside one span around the
# whole deploy (`dsys-trace start` / `end`), so the steps, and the dsys
# programs they call, are one trace.  The spans and the steps' log lines
# (`dsys-trace log`) go over OTLP/HTTP to a local `dsys-trace collect`,
# the same way they would go to an OpenTelemetry Collector or Jaeger;
# at the end `dsys-trace show` draws the deploy as a waterfall.
#
# The steps: build (a stand-in), migrate (counters set through a running
# dsys-counter service), smoke (a short dsys-bench run against it, which
# must see no errors), release (a counter of deploys), and an event on the
# deploy span.  The service records the requests of migrate and release
# (the dsys-counter CLI passes TRACEPARENT on) as their children.  A
# failing step fails the
# deploy, and the trace shows where.
#
# stdout: the waterfall; stderr: what went on.
set -eu
[ -n "${DSYS_BIN:-}" ] && PATH="$DSYS_BIN:$PATH"
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# wait_ready FILE: the port of the ready line a server printed to FILE
wait_ready() {
	for _ in $(seq 200); do
		if [ -s "$1" ]; then head -1 "$1" | jq -r .listen | sed 's/.*://'; return; fi
		sleep 0.05
	done
	echo "traced-deploy: no ready line in $1" >&2
	return 1
}

# the collector: every span and record of the deploy ends up in spans.jsonl
dsys-trace collect --listen 127.0.0.1:0 --threads 1 >"$tmp/spans.jsonl" 2>"$tmp/collect.log" &
pids+=($!)
collect_port=$(wait_ready "$tmp/spans.jsonl")
export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$collect_port
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_BSP_SCHEDULE_DELAY=100
export OTEL_SERVICE_NAME=deploy DSYS_TRACE_SPOOL=$tmp/open
unset DSYS_TRACE_FILE TRACEPARENT

# the service being deployed, tracing the requests a traced caller sends
# (--trace-sample 0: only those), so its spans join the deploy's trace
OTEL_SERVICE_NAME=counter dsys-counter serve --listen 127.0.0.1:0 --threads 1 --trace-sample 0 >"$tmp/counter.out" 2>"$tmp/counter.log" &
pids+=($!)
counter_url=http://127.0.0.1:$(wait_ready "$tmp/counter.out")

# one span around the whole deploy
TRACEPARENT=$(dsys-trace start deploy --attr "deploy.target=$counter_url" | jq -r .traceparent)
export TRACEPARENT
trace_id=$(cut -d- -f2 <<<"$TRACEPARENT")

status=ok
step() { # NAME CMD...: one step, its output shipped as log records of its span
	local name=$1
	shift
	dsys-trace exec --name "$name" -- bash -c '"$@" 2>&1 | dsys-trace log --service deploy >&2; exit "${PIPESTATUS[0]}"' _ "$@"
}

step build sleep 0.05 &&
	step migrate dsys-counter set schema_version 7 --server "$counter_url" &&
	step smoke dsys-bench --requests 200 --connections 2 --threads 1 --fail-if 'errors>0' --json \
		"$counter_url/health" &&
	step release dsys-counter incr deploys --server "$counter_url" &&
	dsys-trace event released --attr version:int=7 ||
	status=error
dsys-trace end --status "$status"

# the collector has everything once it has the deploy span itself and
# the service's span of the last request: the service ships its spans in
# its own batches, up to OTEL_BSP_SCHEDULE_DELAY after the request, so
# they may arrive after `dsys-trace end` has shipped the deploy span
for _ in $(seq 200); do
	grep -q '"name":"deploy"' "$tmp/spans.jsonl" &&
		grep -q '"name":"POST /incr"' "$tmp/spans.jsonl" && break
	sleep 0.05
done
dsys-trace show --file "$tmp/spans.jsonl" "$trace_id"
[ "$status" = ok ]
