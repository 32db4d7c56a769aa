#!/usr/bin/env bash
# make bench, section "counter": POST /incr requests/s of dsys-counter with
# each backend, beside dsys-serve's GET /hello in the same run, beside
# redis-benchmark -t incr (unpipelined) at the same concurrency, and beside
# the original design's counter: one WATCH/GET/MULTI/INCRBY/EXEC
# transaction per request (tests/bench/counter_watch.py, a threaded python
# HTTP server, as the Flask sketch).  Every server -- redis-server
# included -- is pinned to CPU 0, every load to CPU 1.
#
# Cases (each BENCH_ROUNDS rounds, order reversed every other round):
#   hot     wrk -c100, every increment on one key (k0)
#   spread  wrk -c100, increments round robin over 1000 keys
#           (redis-benchmark: -r 1000, random keys)
# The servers:
#   hello         dsys-serve --threads 1, GET /hello (the HTTP ceiling)
#   mem file redis  dsys-counter serve --threads 1 --store mem: / file:DIR /
#                 redis://127.0.0.1:PORT
#   redis-server  redis-benchmark -t incr -c100 against it directly
#   watch         counter_watch.py on the same redis-server
# After the table: the bars of issue 4 as ratios of medians --
#   redis/hello >= 0.7, redis/redis-server >= 1, mem/hello >= 0.95,
#   mem/watch and redis/watch >= 20.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_init counter || exit 1
bench_need wrk redis-server redis-benchmark python3 || exit 1
if ! command -v dsys-counter >/dev/null 2>&1; then
	bench_skip "dsys-counter: not built yet"
	bench_finish
	exit
fi

servers=()
rport=$(bench_port)
bench_start redis-server "$rport" redis-server --port "$rport" --bind 127.0.0.1 --save '' \
	--appendonly no --daemonize no || { bench_finish; exit; }
servers+=(redis-server)

if command -v dsys-serve >/dev/null 2>&1; then
	bench_start hello 0 "$(command -v dsys-serve)" --listen 127.0.0.1:0 --threads 1 && servers+=(hello)
else
	bench_skip "dsys-serve: not built (no /hello to compare with)"
fi
counter=$(command -v dsys-counter)
export DSYS_LOG_LEVEL=warn
bench_start mem 0 "$counter" serve --store mem: --listen 127.0.0.1:0 --threads 1 && servers+=(mem)
fdir=$(bench_dir file)
bench_start file 0 "$counter" serve --store "file:$fdir/store" --listen 127.0.0.1:0 --threads 1 &&
	servers+=(file)
bench_start redis 0 "$counter" serve --store "redis://127.0.0.1:$rport" --listen 127.0.0.1:0 \
	--threads 1 && servers+=(redis)
wport=$(bench_port)
bench_start watch "$wport" python3 "$here/counter_watch.py" --port "$wport" --redis-port "$rport" &&
	servers+=(watch)

# Every counter server must count before it is measured.
for s in mem file redis watch; do
	[ -n "${BENCH_PORT[$s]:-}" ] || continue
	body=$(curl -s --max-time 5 -X POST -d "{\"key\":\"probe-$s\",\"by\":2}" "http://127.0.0.1:${BENCH_PORT[$s]}/incr")
	if [[ $body != *'"value": 2'* && $body != *'"value":2'* ]]; then
		bench_fail "$s: POST /incr answered '$body'; left out"
		bench_stop "$s"
		servers=("${servers[@]/$s/}")
	fi
done
read -r -a servers <<<"${servers[*]}"

redis_incr() {   # CASE NAME ROUND
	local r=()
	[ "$1" = spread ] && r=(-r 1000)
	bench_load redis-benchmark -p "$rport" -t incr -c 100 -n 20000 -q "${r[@]}" >/dev/null
	bench_measure "$2" redis-benchmark -p "$rport" -t incr -c 100 -n 200000 -q "${r[@]}"
	local line rps p50
	line=$(tr '\r' '\n' <"$BENCH_OUT" | grep 'requests per second' | tail -1)
	rps=$(awk '{ print $2 }' <<<"$line")
	p50=$(sed -n 's/.*p50=\([0-9.]*\) msec.*/\1/p' <<<"$line")
	[ -n "$rps" ] || { bench_fail "$1 $2: no rate from redis-benchmark: $line"; return 1; }
	bench_record "$1" "$2" "$3" rps="$rps" ${p50:+p50_us="$(awk -v m="$p50" 'BEGIN { print m * 1000 }')"}
}

load() {   # CASE NAME ROUND
	local keys=1
	[ "$1" = spread ] && keys=1000
	case $2 in
	hello) bench_wrk "$1" "$2" "$3" /hello -c100 ;;
	redis-server) redis_incr "$@" ;;
	*) bench_wrk "$1" "$2" "$3" /incr -c100 -s "$here/counter_incr.lua" -- "$keys" ;;
	esac
}

bench_rounds hot "${servers[*]}" load
bench_rounds spread "${servers[*]}" load
bench_stop_all
echo
bench_report redis

# The bars: ratios of the medians of rps.
echo
awk -F'\t' '
	$4 == "rps" { v[$1 SUBSEP $2] = v[$1 SUBSEP $2] " " $5; cases[$1] = 1 }
	function median(s,   a, n, i, j, t) {
		n = split(s, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n ? (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : 0
	}
	function bar(c, x, y, want,   mx, my, r) {
		if (!((c SUBSEP x) in v) || !((c SUBSEP y) in v)) return
		mx = median(v[c SUBSEP x]); my = median(v[c SUBSEP y])
		if (my <= 0) return
		r = mx / my
		if (want > 0) printf "counter bar %-7s %5s/%-12s %8.2fx  (want >= %s)  %s\n", c, x, y, r, want, (r >= want ? "ok" : "BELOW")
		else printf "counter bar %-7s %5s/%-12s %8.2fx  (for reference)\n", c, x, y, r
	}
	END {
		for (c in cases) {
			bar(c, "redis", "hello", 0.7); bar(c, "redis", "redis-server", 1)
			bar(c, "mem", "hello", 0.95); bar(c, "mem", "watch", 20); bar(c, "redis", "watch", 20)
			bar(c, "file", "hello", 0)
		}
	}' "$BENCH_SAMPLES"
bench_finish
