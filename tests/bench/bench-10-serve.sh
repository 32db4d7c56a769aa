#!/usr/bin/env bash
# make bench, section "serve": dsys-serve's /hello beside nginx (one worker,
# return 200), h2o (one thread, a 16-byte file) and the floor (a do-nothing
# epoll responder, tests/bench/floor.c), all answering the same body as
# text/plain on loopback, each pinned to CPU 0 with wrk pinned to CPU 1.
# dsys-serve runs twice: on its default socket backend (io_uring where the
# kernel allows it) and as dsys-serve-uv on libuv's epoll streams (--io uv).
#
# Cases (each BENCH_ROUNDS rounds, order reversed every other round):
#   c100      wrk -c100, one request in flight per connection
#   c1000     wrk -c1000
#   pipe16    wrk -c100 with 16 requests per write (pipeline.lua)
#   idle1000  RSS with 1000 keep-alive connections open and idle
# The table holds the median of the rounds; the ratios are dsys-serve's to
# each other server (the floor's to the others when dsys-serve is not built).
# BENCH_CASES="c100 pipe16" runs a subset; see lib.sh for the rest.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_init serve || exit 1
bench_need wrk python3 || exit 1

servers=()

# dsys-serve: the program under test; absent until it is written.
if command -v dsys-serve >/dev/null 2>&1; then
	bench_start dsys-serve 0 "$(command -v dsys-serve)" --listen 127.0.0.1:0 --threads 1 &&
		servers+=(dsys-serve)
	# the same on libuv's epoll streams, the fallback where io_uring is off
	bench_start dsys-serve-uv 0 "$(command -v dsys-serve)" --listen 127.0.0.1:0 --threads 1 \
		--io uv && servers+=(dsys-serve-uv)
else
	bench_skip "dsys-serve: not built yet (no dsys-serve on PATH, expected $DSYS_BUILD/bin/dsys-serve)"
fi

# nginx: one worker, run as the current user, everything in its scratch dir.
if [ -x /usr/sbin/nginx ]; then
	d=$(bench_dir nginx)
	port=$(bench_port)
	user=
	[ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
	bench_render "$here/nginx.conf.in" "$d/nginx.conf" DIR="$d" PORT="$port" USER="$user"
	bench_start nginx "$port" /usr/sbin/nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" \
		-g 'daemon off;' && servers+=(nginx)
else
	bench_skip "nginx: /usr/sbin/nginx not installed (Debian nginx-light)"
fi

# h2o: one thread, /hello served from a file holding exactly the body.  As
# root h2o wants an explicit user.
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

# The floor.
if [ -x "$DSYS_BUILD/bench/floor" ]; then
	bench_start floor 0 "$DSYS_BUILD/bench/floor" --listen 127.0.0.1:0 && servers+=(floor)
else
	bench_skip "floor: $DSYS_BUILD/bench/floor not built"
fi

[ ${#servers[@]} -gt 0 ] || { bench_skip "no server started"; exit 0; }

# Every server must answer /hello with the same body before it is measured.
for s in "${servers[@]}"; do
	body=$(curl -s --max-time 5 "http://127.0.0.1:${BENCH_PORT[$s]}/hello")
	if [ "$body" != "Hello from dsys!" ]; then
		bench_fail "$s: /hello answered '$body', not 'Hello from dsys!'; left out"
		bench_stop "$s"
		servers=("${servers[@]/$s/}")
	fi
done
read -r -a servers <<<"${servers[*]}"

bench_rounds c100 "${servers[*]}" bench_wrk /hello -c100
bench_rounds c1000 "${servers[*]}" bench_wrk /hello -c1000
bench_rounds pipe16 "${servers[*]}" bench_wrk /hello -c100 -s "$here/pipeline.lua" -- 16
if bench_want idle1000; then
	for s in "${servers[@]}"; do
		bench_idle_rss idle1000 "$s" 1000 /hello
	done
fi

base=dsys-serve
if [ -z "${BENCH_PID[dsys-serve]:-}" ]; then
	base=floor
	bench_log "dsys-serve not measured: ratios below are the floor's, for reference"
fi
bench_stop_all
echo
bench_report "$base"
bench_finish
