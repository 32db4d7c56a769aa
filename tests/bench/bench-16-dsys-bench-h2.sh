#!/usr/bin/env bash
# make bench, section "dsys-bench-h2": dsys-bench --h2 (and --grpc) beside
# h2load (Debian nghttp2-client), both driving the same server over h2c
# with the same connections, streams and one thread, alternating runs; the
# server pinned to CPU 0, the load to CPU 1.
#
# Cases (each BENCH_ROUNDS rounds, order reversed every other round):
#   serve-c10m10  dsys-serve's /hello, 10 connections, 10 streams on each
#   serve-c100m1  the same, 100 connections, one stream at a time on each
#                 (a write and a read per request: the system calls show)
#   h2o-c10m10    h2o's /hello (a file), the same load: a server not ours
#   grpc-c10m10   dsys-serve's grpc.health.v1.Health/Check, the same load;
#                 h2load POSTs the same 5-byte-prefixed empty message with
#                 gRPC's headers (it does not read grpc-status: ghz, the
#                 gRPC anchor, is not packaged)
# Rows are the load generators; the columns are requests/s each drove, the
# CPU the load generator spent per request (its own rusage) and the CPU
# the server spent per request.  The ratio lines are dsys-bench's to
# h2load's: issue 19's bar is rps >= 1 at load cpu/req <= 1.
# BENCH_CASES="serve-c10m10" runs a subset; see lib.sh for the rest.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
BENCH_ROW_LABEL=load
BENCH_COLUMNS="rps load_cpu_us_per_req cpu_us_per_req"
BENCH_RATIOS="rps load_cpu_us_per_req"
bench_init dsys-bench-h2 || exit 1
bench_need h2load jq curl || exit 1
if ! command -v dsys-bench >/dev/null 2>&1; then
	bench_skip "dsys-bench: not built (expected $DSYS_BUILD/bin/dsys-bench)"
	exit 0
fi

if command -v dsys-serve >/dev/null 2>&1; then
	bench_start dsys-serve 0 "$(command -v dsys-serve)" --listen 127.0.0.1:0 --threads 1 || true
else
	bench_skip "dsys-serve: not built, its cases are left out"
fi
if command -v h2o >/dev/null 2>&1; then
	d=$(bench_dir h2o)
	port=$(bench_port)
	printf 'Hello from dsys!' >"$d/hello.txt"
	user=
	[ "$(id -u)" = 0 ] && user="user: $(id -un)"
	bench_render "$here/h2o.conf.in" "$d/h2o.conf" DIR="$d" PORT="$port" USER="$user"
	bench_start h2o "$port" "$(command -v h2o)" -c "$d/h2o.conf" || true
else
	bench_skip "h2o: not installed (Debian h2o), its case is left out"
fi
# the empty gRPC message: not compressed, length 0
printf '\0\0\0\0\0' >"$BENCH_TMP/grpc-empty.bin"

# One measured run of LOAD (h2load or dsys-bench) against SERVER, after a
# warm-up run:  load_run CASE LOAD ROUND SERVER PATH CONNECTIONS STREAMS [grpc]
load_run() {
	local case=$1 load=$2 round=$3 server=$4 path=$5 conns=$6 streams=$7 grpc=${8:-}
	local base="http://127.0.0.1:${BENCH_PORT[$server]}" cmd=() url rps req err
	if [ "$load" = h2load ]; then
		url=$base$path
		cmd=(h2load -t1 -c"$conns" -m"$streams")
		[ -n "$grpc" ] && cmd+=(-d "$BENCH_TMP/grpc-empty.bin" -H 'content-type: application/grpc'
			-H 'te: trailers')
		bench_load "${cmd[@]}" -D "$BENCH_WARMUP" "$url" || {
			bench_fail "$case h2load: warm-up failed: $(head -3 "$BENCH_OUT.err")"; return 1; }
		bench_measure "$server" "${cmd[@]}" -D "$BENCH_DURATION" "$url"
		read -r rps req err < <(awk '/^finished in/ { gsub(/,/, ""); rps = $4 }
			/^requests:/ { gsub(/,/, ""); done_ = $8; failed = $12 + $14 + $16 }
			/^status codes:/ { gsub(/,/, ""); bad = $7 + $9 }
			END { printf "%s %d %d\n", (rps == "" ? 0 : rps), done_, failed + bad }' "$BENCH_OUT")
	else
		if [ -n "$grpc" ]; then
			url=$base
			cmd=(dsys-bench -t1 -c"$conns" --streams "$streams" --grpc "${path#/}")
		else
			url=$base$path
			cmd=(dsys-bench -t1 -c"$conns" --streams "$streams" --h2)
		fi
		bench_load "${cmd[@]}" -d "$BENCH_WARMUP" "$url" || {
			bench_fail "$case dsys-bench: warm-up failed: $(head -3 "$BENCH_OUT.err")"; return 1; }
		bench_measure "$server" "${cmd[@]}" -d "$BENCH_DURATION" "$url"
		read -r rps req err < <(jq -r '[.rps, .requests,
			(.errors.connect + .errors.read + .errors.write + .errors.timeout + .errors.stream +
			 .errors.grpc + ([.errors.status[]] | add // 0))] | @tsv' "$BENCH_OUT")
	fi
	if [ -z "$req" ] || [ "$req" -eq 0 ]; then
		bench_fail "$case $load: no answers counted: $(head -3 "$BENCH_OUT.err")"
		return 1
	fi
	local cpu_us lcpu_us
	cpu_us=$(awk -v c="$BENCH_SERVER_CPU_S" -v n="$req" 'BEGIN { printf "%.2f", c * 1e6 / n }')
	lcpu_us=$(awk -v c="$BENCH_LOAD_CPU_S" -v n="$req" 'BEGIN { printf "%.2f", c * 1e6 / n }')
	bench_record "$case" "$load" "$round" rps="$rps" requests="$req" errors="$err" \
		cpu_us_per_req="$cpu_us" load_cpu_us_per_req="$lcpu_us"
	bench_log "$(printf '%-13s round %s %-10s %9.0f req/s  load cpu %6s us/req  server cpu %6s us/req%s' \
		"$case" "$round" "$load" "$rps" "$lcpu_us" "$cpu_us" "$([ "$err" -gt 0 ] && echo "  ERRORS $err")")"
}

if [ -n "${BENCH_PID[dsys-serve]:-}" ]; then
	bench_rounds serve-c10m10 "h2load dsys-bench" load_run dsys-serve /hello 10 10
	bench_rounds serve-c100m1 "h2load dsys-bench" load_run dsys-serve /hello 100 1
fi
[ -n "${BENCH_PID[h2o]:-}" ] && bench_rounds h2o-c10m10 "h2load dsys-bench" load_run h2o /hello 10 10
if [ -n "${BENCH_PID[dsys-serve]:-}" ]; then
	bench_rounds grpc-c10m10 "h2load dsys-bench" load_run dsys-serve \
		/grpc.health.v1.Health/Check 10 10 grpc
fi

bench_stop_all
echo
bench_report dsys-bench
bench_finish
