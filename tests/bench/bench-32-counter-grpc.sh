#!/usr/bin/env bash
# make bench, section "counter-grpc": dsys-counter serve's gRPC Incr
# (dsys.counter.v1.Counter/Incr, h2c) beside its JSON POST /incr, on the
# mem: store, one thread, pinned to CPU 0 with the load on CPU 1.  The bar
# of issue 19: a gRPC unary call at least 0.7x the JSON /incr rate.
#
# Servers (one dsys-counter process each, so each has its own CPU sample):
#   grpc      h2load -c10 -m10 (100 calls in flight), each call a framed
#             IncrRequest{key:"k0"} with content-type application/grpc
#   json      wrk -c100 POST /incr {"key":"k0","by":1}: section counter's
#             "hot" case, the JSON rate the bar names
#   json-h2   h2load -c10 -m10 POST /incr with the same JSON body over h2c:
#             what gRPC's framing and protobuf cost beside JSON on HTTP/2
# Case hot: every increment on one key.  The ratios are grpc's to each.
# Before measuring, each server must answer a call with value 2 (grpc: an
# h2load run of two calls, then the JSON API reads the key).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_init counter-grpc || exit 1
bench_need wrk h2load curl || exit 1
if ! command -v dsys-counter >/dev/null 2>&1; then
	bench_skip "dsys-counter: not built yet"
	bench_finish
	exit
fi
counter=$(command -v dsys-counter)

servers=()
for s in grpc json json-h2; do
	bench_start "$s" 0 "$counter" serve --store mem: --listen 127.0.0.1:0 --threads 1 &&
		servers+=("$s")
done

d=$(bench_dir bodies)
# IncrRequest{key:"k0"} (field 1, length 2) behind gRPC's 5-byte prefix
printf '\0\0\0\0\4\n\2k0' >"$d/incr.grpc"
printf '{"key":"k0","by":1}' >"$d/incr.json"
GRPC_URL_PATH=/dsys.counter.v1.Counter/Incr

for s in "${servers[@]}"; do
	base="http://127.0.0.1:${BENCH_PORT[$s]}"
	if [ "$s" = grpc ]; then
		taskset -c "$BENCH_LOAD_CPU" h2load -t1 -n2 -c1 -d "$d/incr.grpc" \
			-H 'content-type: application/grpc' -H 'te: trailers' "$base$GRPC_URL_PATH" >/dev/null 2>&1
	else
		curl -s --max-time 5 -o /dev/null -d @"$d/incr.json" "$base/incr"
		curl -s --max-time 5 -o /dev/null -d @"$d/incr.json" "$base/incr"
	fi
	got=$(curl -s --max-time 5 "$base/counters/k0")
	if [ "$got" != '{"key":"k0","value":2}' ]; then
		bench_fail "$s: after two increments /counters/k0 is '$got'; left out"
		bench_stop "$s"
		servers=("${servers[@]/$s/}")
	fi
done
read -r -a servers <<<"${servers[*]}"
[ ${#servers[@]} -gt 0 ] || { bench_finish; exit; }

# h2load prints "finished in 5.00s, 123456.78 req/s, ..." and
# "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout".
# A gRPC error is still HTTP 200, so after the run the key must have grown
# by every call h2load counts done.
k0_value() {   # NAME: the value of k0 on it
	curl -s --max-time 5 "http://127.0.0.1:${BENCH_PORT[$1]}/counters/k0" |
		sed -n 's/.*"value":\([0-9]*\).*/\1/p'
}

h2load_incr() {   # CASE NAME ROUND
	local name=$2 url hdr=() body line rps done_ failed before after
	if [ "$name" = grpc ]; then
		url="http://127.0.0.1:${BENCH_PORT[$name]}$GRPC_URL_PATH"
		body=$d/incr.grpc
		hdr=(-H 'content-type: application/grpc' -H 'te: trailers')
	else
		url="http://127.0.0.1:${BENCH_PORT[$name]}/incr"
		body=$d/incr.json
		hdr=(-H 'content-type: application/json')
	fi
	bench_load h2load -t1 -c10 -m10 -d "$body" "${hdr[@]}" -D "$BENCH_WARMUP" "$url" || {
		bench_fail "$1 $name: warm-up failed: $(head -3 "$BENCH_OUT.err")"; return 1; }
	before=$(k0_value "$name")
	bench_measure "$name" h2load -t1 -c10 -m10 -d "$body" "${hdr[@]}" -D "$BENCH_DURATION" "$url"
	after=$(k0_value "$name")
	line=$(awk '/^finished in/ { gsub(/,/, ""); rps = $4 }
		/^requests:/ { done_ = $8; failed = $12 + $14 + $16 }
		END { printf "%s %d %d\n", (rps == "" ? 0 : rps), done_, failed }' "$BENCH_OUT")
	read -r rps done_ failed <<<"$line"
	if [ "$done_" -le 0 ]; then
		bench_fail "$1 $name: h2load finished no request: $(head -3 "$BENCH_OUT.err")"
		return 1
	fi
	# h2load -D stops with calls in flight, which the server may still
	# apply: at least done_, at most 100 more.
	if [ $((after - before)) -lt "$done_" ] || [ $((after - before)) -gt $((done_ + 100)) ]; then
		bench_fail "$1 $name: h2load counted $done_ answers, the key grew by $((after - before))"
	fi
	local cpu_us
	cpu_us=$(awk -v c="$BENCH_SERVER_CPU_S" -v n="$done_" 'BEGIN { printf "%.2f", c * 1e6 / n }')
	bench_record "$1" "$name" "$3" rps="$rps" requests="$done_" errors="$failed" \
		cpu_us_per_req="$cpu_us" rss_kib="$BENCH_RSS_KIB"
	bench_log "$(printf '%-6s round %s %-8s %9.0f req/s  cpu %6s us/req%s' "$1" "$3" "$name" \
		"$rps" "$cpu_us" "$([ "$failed" -gt 0 ] && echo "  ERRORS $failed")")"
}

load() {   # CASE NAME ROUND
	case $2 in
	json) bench_wrk "$1" "$2" "$3" /incr -c100 -s "$here/counter_incr.lua" -- 1 ;;
	*) h2load_incr "$@" ;;
	esac
}

BENCH_COLUMNS="rps cpu_us_per_req rss_kib"
BENCH_RATIOS="rps cpu_us_per_req"
bench_rounds hot "${servers[*]}" load
bench_stop_all
echo
bench_report grpc

# The bar: grpc's rate over json's, the median of the per-round ratios.
echo
awk -F'\t' '$1 == "hot" && $4 == "rps" { v[$2, $3] = $5; r[$3] = 1 }
	END {
		n = 0
		for (k in r) if (v["json", k] > 0 && v["grpc", k] != "") a[++n] = v["grpc", k] / v["json", k]
		if (n == 0) exit
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		printf "bar: grpc Incr / JSON /incr rate = %.2f (issue 19 asks >= 0.7): %s\n", m, (m >= 0.7 ? "met" : "NOT met")
	}' "$BENCH_SAMPLES"
bench_finish
