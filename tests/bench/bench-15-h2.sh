#!/usr/bin/env bash
# make bench, section "h2": dsys-serve's /hello over HTTP/2 (h2c with prior
# knowledge) beside h2o (one thread, a 16-byte file, which also speaks h2c
# with prior knowledge on a cleartext port), both pinned to CPU 0 with
# h2load (Debian nghttp2-client) pinned to CPU 1.  dsys-serve also runs as
# dsys-serve-uv on libuv's epoll streams (--io uv).
#
# Cases (each BENCH_ROUNDS rounds, order reversed every other round):
#   c10m10    h2load -c10 -m10: 10 connections, 10 streams in flight on each
#   c100m1    h2load -c100 -m1: one stream at a time per connection
#   h1pipe10  h2load --h1 -c10 -m10: the same load over HTTP/1.1 pipelining,
#             for the "HTTP/2 keeps up with HTTP/1.1 per core" comparison
# The table holds the median of the rounds; the ratios are dsys-serve's to
# each other server.  BENCH_CASES="c10m10" runs a subset; see lib.sh.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_init h2 || exit 1
bench_need h2load curl || exit 1

servers=()
if command -v dsys-serve >/dev/null 2>&1; then
	bench_start dsys-serve 0 "$(command -v dsys-serve)" --listen 127.0.0.1:0 --threads 1 &&
		servers+=(dsys-serve)
	bench_start dsys-serve-uv 0 "$(command -v dsys-serve)" --listen 127.0.0.1:0 --threads 1 \
		--io uv && servers+=(dsys-serve-uv)
else
	bench_skip "dsys-serve: not built yet (no dsys-serve on PATH)"
fi
if command -v h2o >/dev/null 2>&1; then
	d=$(bench_dir h2o)
	port=$(bench_port)
	printf 'Hello from dsys!' >"$d/hello.txt"
	user=
	[ "$(id -u)" = 0 ] && user="user: $(id -un)"
	bench_render "$here/h2o.conf.in" "$d/h2o.conf" DIR="$d" PORT="$port" USER="$user"
	bench_start h2o "$port" "$(command -v h2o)" -c "$d/h2o.conf" && servers+=(h2o)
else
	bench_skip "h2o: not installed (Debian h2o)"
fi
[ ${#servers[@]} -gt 0 ] || { bench_skip "no server started"; exit 0; }

# Every server must answer /hello over h2c with the same body.
for s in "${servers[@]}"; do
	body=$(curl -s --max-time 5 --http2-prior-knowledge "http://127.0.0.1:${BENCH_PORT[$s]}/hello")
	if [ "$body" != "Hello from dsys!" ]; then
		bench_fail "$s: /hello over h2c answered '$body'; left out"
		bench_stop "$s"
		servers=("${servers[@]/$s/}")
	fi
done
read -r -a servers <<<"${servers[*]}"

# h2load prints "finished in 5.00s, 123456.78 req/s, ..." and
# "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout".
bench_h2load() {
	local case=$1 name=$2 round=$3 path=$4 url line rps done_ failed
	shift 4
	url="http://127.0.0.1:${BENCH_PORT[$name]}$path"
	bench_load h2load -t1 "$@" -D "$BENCH_WARMUP" "$url" || {
		bench_fail "$case $name: warm-up failed: $(head -3 "$BENCH_OUT.err")"; return 1; }
	bench_measure "$name" h2load -t1 "$@" -D "$BENCH_DURATION" "$url"
	line=$(awk '/^finished in/ { gsub(/,/, ""); rps = $4 }
		/^requests:/ { done_ = $8; failed = $12 + $14 + $16 }
		END { printf "%s %d %d\n", (rps == "" ? 0 : rps), done_, failed }' "$BENCH_OUT")
	read -r rps done_ failed <<<"$line"
	if [ "$done_" -le 0 ]; then
		bench_fail "$case $name: h2load finished no request: $(head -3 "$BENCH_OUT.err")"
		return 1
	fi
	local cpu_us lcpu_us
	read -r cpu_us lcpu_us < <(awk -v c="$BENCH_SERVER_CPU_S" -v l="$BENCH_LOAD_CPU_S" -v n="$done_" \
		'BEGIN { printf "%.2f %.2f\n", c * 1e6 / n, l * 1e6 / n }')
	bench_record "$case" "$name" "$round" rps="$rps" requests="$done_" errors="$failed" \
		cpu_us_per_req="$cpu_us" load_cpu_us_per_req="$lcpu_us" rss_kib="$BENCH_RSS_KIB"
	bench_log "$(printf '%-8s round %s %-14s %9.0f req/s  cpu %6s us/req  rss %6s KiB%s' \
		"$case" "$round" "$name" "$rps" "$cpu_us" "$BENCH_RSS_KIB" \
		"$([ "$failed" -gt 0 ] && echo "  ERRORS $failed")")"
}

BENCH_COLUMNS="rps cpu_us_per_req rss_kib"
BENCH_RATIOS="rps cpu_us_per_req"
bench_rounds c10m10 "${servers[*]}" bench_h2load /hello -c10 -m10
bench_rounds c100m1 "${servers[*]}" bench_h2load /hello -c100 -m1
bench_rounds h1pipe10 "${servers[*]}" bench_h2load /hello --h1 -c10 -m10

bench_stop_all
echo
bench_report dsys-serve
bench_finish
