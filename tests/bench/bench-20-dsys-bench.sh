#!/usr/bin/env bash
# make bench, section "dsys-bench": the load generator beside wrk (Debian),
# both driving the same server with the same connections and one thread,
# alternating runs; the server pinned to CPU 0, the load to CPU 1.
#
# Cases (each BENCH_ROUNDS rounds, order reversed every other round):
#   nginx-c100    nginx-light (one worker, return 200), 100 connections,
#                 one request in flight on each
#   serve-pipe16  dsys-serve (one loop), 100 connections, 16 requests in
#                 flight on each (wrk through tests/bench/pipeline.lua)
# Rows are the load generators; the columns are requests/s each drove, its
# latency percentiles, the CPU the load generator spent per request (its own
# rusage) and the CPU the server spent per request.  The ratio lines are
# dsys-bench's to wrk's: the bar is rps >= 1 and load cpu/req <= 0.6.
# BENCH_CASES="nginx-c100" runs a subset; see lib.sh for the rest.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
BENCH_ROW_LABEL=load
BENCH_COLUMNS="rps p50_us p99_us load_cpu_us_per_req cpu_us_per_req"
BENCH_RATIOS="rps p99_us load_cpu_us_per_req"
bench_init dsys-bench || exit 1
bench_need wrk jq || exit 1
if ! command -v dsys-bench >/dev/null 2>&1; then
	bench_skip "dsys-bench: not built (expected $DSYS_BUILD/bin/dsys-bench)"
	exit 0
fi

# nginx: one worker, as in the serve section.
if [ -x /usr/sbin/nginx ]; then
	d=$(bench_dir nginx)
	port=$(bench_port)
	user=
	[ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
	bench_render "$here/nginx.conf.in" "$d/nginx.conf" DIR="$d" PORT="$port" USER="$user"
	bench_start nginx "$port" /usr/sbin/nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" \
		-g 'daemon off;' || true
else
	bench_skip "nginx: /usr/sbin/nginx not installed (Debian nginx-light)"
fi
if command -v dsys-serve >/dev/null 2>&1; then
	bench_start dsys-serve 0 "$(command -v dsys-serve)" --listen 127.0.0.1:0 --threads 1 || true
else
	bench_skip "dsys-serve: not built, the pipelined case is left out"
fi

# One measured run of LOAD (wrk or dsys-bench) against SERVER, after a
# warm-up run; ARGS are wrk's, translated for dsys-bench:
#   load_run CASE LOAD ROUND SERVER CONNECTIONS DEPTH
load_run() {
	local case=$1 load=$2 round=$3 server=$4 conns=$5 depth=$6
	local url="http://127.0.0.1:${BENCH_PORT[$server]}/hello" cmd=() rps p50 p99 req err
	if [ "$load" = wrk ]; then
		cmd=(wrk -t1 -c"$conns")
		local tail=()
		[ "$depth" -gt 1 ] && tail=(-s "$here/pipeline.lua")
		bench_load "${cmd[@]}" -d "$BENCH_WARMUP" "$url" "${tail[@]}" ${tail:+-- "$depth"} || {
			bench_fail "$case wrk: warm-up failed: $(head -3 "$BENCH_OUT.err")"; return 1; }
		bench_measure "$server" "${cmd[@]}" -d "$BENCH_DURATION" --latency "$url" "${tail[@]}" ${tail:+-- "$depth"}
		if ! bench_wrk_parse "$BENCH_OUT"; then
			bench_fail "$case wrk: no answers counted: $(head -3 "$BENCH_OUT.err")"
			return 1
		fi
		rps=$WRK_RPS p50=$WRK_P50_US p99=$WRK_P99_US req=$WRK_REQUESTS err=$WRK_ERRORS
	else
		cmd=(dsys-bench -t1 -c"$conns" --pipeline "$depth")
		bench_load "${cmd[@]}" -d "$BENCH_WARMUP" "$url" || {
			bench_fail "$case dsys-bench: warm-up failed: $(head -3 "$BENCH_OUT.err")"; return 1; }
		bench_measure "$server" "${cmd[@]}" -d "$BENCH_DURATION" "$url"
		read -r rps p50 p99 req err < <(jq -r '[.rps, .latency_us.p50, .latency_us.p99, .requests,
			(.errors.connect + .errors.read + .errors.write + .errors.timeout +
			 ([.errors.status[]] | add // 0))] | @tsv' "$BENCH_OUT")
		if [ -z "$req" ] || [ "$req" -eq 0 ]; then
			bench_fail "$case dsys-bench: no answers counted: $(head -3 "$BENCH_OUT.err")"
			return 1
		fi
	fi
	local cpu_us lcpu_us
	cpu_us=$(awk -v c="$BENCH_SERVER_CPU_S" -v n="$req" 'BEGIN { printf "%.2f", c * 1e6 / n }')
	lcpu_us=$(awk -v c="$BENCH_LOAD_CPU_S" -v n="$req" 'BEGIN { printf "%.2f", c * 1e6 / n }')
	local pct=()
	[ "${p50%.*}" -gt 0 ] && pct+=(p50_us="$p50")
	[ "${p99%.*}" -gt 0 ] && pct+=(p99_us="$p99")
	bench_record "$case" "$load" "$round" rps="$rps" "${pct[@]}" requests="$req" errors="$err" \
		cpu_us_per_req="$cpu_us" load_cpu_us_per_req="$lcpu_us"
	bench_log "$(printf '%-13s round %s %-10s %9.0f req/s  load cpu %6s us/req  server cpu %6s us/req%s' \
		"$case" "$round" "$load" "$rps" "$lcpu_us" "$cpu_us" "$([ "$err" -gt 0 ] && echo "  ERRORS $err")")"
}

[ -n "${BENCH_PID[nginx]:-}" ] && bench_rounds nginx-c100 "wrk dsys-bench" load_run nginx 100 1
[ -n "${BENCH_PID[dsys-serve]:-}" ] && bench_rounds serve-pipe16 "wrk dsys-bench" load_run dsys-serve 100 16

bench_stop_all
echo
bench_report dsys-bench
bench_finish
