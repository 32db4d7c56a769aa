#!/usr/bin/env bats
# Tracing under valgrind: what a loop thread keeps for its spans (the
# scratch span, the encoding buffers, the collector's decoding scratch) is
# freed when the thread ends, so a traced server and the collector drain
# with no leak.  Two loop threads each, since the first runs on the main
# thread, whose leftovers valgrind counts as still reachable rather than
# lost; those of a thread that has exited are lost.
#
# The servers use libuv's epoll (--io uv): valgrind 3.19 holds its lock
# (one thread runs at a time) through a blocking io_uring_enter, so with
# two threads a loop waiting in its ring stops the other from running
# until a timer ends the wait (the io_uring backend is run under ASan and
# UBSan by make check instead).
#
# As in valgrind.bats: memcheck with --leak-check=full, definite and
# indirect leaks as errors (--error-exitcode=99); exit 0, "0 errors" and
# nothing definitely or indirectly lost.

load valgrind_helpers
bats_require_minimum_version 1.5.0

setup() {
	unset TRACEPARENT TRACESTATE OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES OTEL_TRACES_SAMPLER \
		OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_EXPORTER_OTLP_PROTOCOL \
		DSYS_TRACE_FILE DSYS_TRACE_SAMPLE
	export OTEL_BSP_SCHEDULE_DELAY=50
	vg_setup
}

# traced_load PORT: requests over 8 connections, so both loop threads
# answer some, every one traced; all must be 200.
traced_load() {
	local out
	out=$(DSYS_BENCH_IO=uv dsys-bench --requests 400 -c 8 -t 1 --timeout 60s "http://127.0.0.1:$1/hello") ||
		{ echo "dsys-bench failed: $out" >&2; return 1; }
	jq -e '.status["200"] == 400' <<<"$out" >/dev/null || { echo "dsys-bench: $out" >&2; return 1; }
}

@test "trace valgrind: dsys-serve tracing every request on two threads, to a file, drains with no leak" {
	export DSYS_TRACE_FILE=$BATS_TEST_TMPDIR/spans.jsonl
	vg_start serve dsys-serve --listen 127.0.0.1:0 --threads 2 --io uv --trace-sample 1
	traced_load "$SERVER_PORT"
	vg_stop "$SERVER_PID" "$VG_LOG"
	[ "$(wc -l <"$DSYS_TRACE_FILE")" -eq 400 ]
}

@test "trace valgrind: dsys-serve exporting OTLP protobuf on two threads drains with no leak" {
	start_server collect dsys-trace collect --listen 127.0.0.1:0 --threads 1
	C_OUT=$SERVER_OUT
	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SERVER_PORT OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
	vg_start serve dsys-serve --listen 127.0.0.1:0 --threads 2 --io uv --trace-sample 1
	traced_load "$SERVER_PORT"
	vg_stop "$SERVER_PID" "$VG_LOG"
	# drained: every span was sent before it exited
	[ "$(grep -c '"spanId"' "$C_OUT")" -eq 400 ]
}

@test "trace valgrind: dsys-trace collect on two threads, fed protobuf and JSON, drains with no leak" {
	vg_start collect dsys-trace collect --listen 127.0.0.1:0 --threads 2 --io uv
	C_OUT=$SERVER_OUT
	export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SERVER_PORT OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
	vg_pid=$SERVER_PID vg_log=$VG_LOG
	# several exporters at once, so both loop threads decode
	local pids=() p
	for i in 1 2 3 4 5 6; do
		dsys-trace exec --name "pb$i" -- true &
		pids+=($!)
		OTEL_EXPORTER_OTLP_PROTOCOL=http/json dsys-trace exec --name "json$i" -- true &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	[ "$(grep -c '"spanId"' "$C_OUT")" -eq 12 ]
	vg_stop "$vg_pid" "$vg_log"
}
