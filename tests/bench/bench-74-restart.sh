#!/usr/bin/env bash
# make bench, section "restart": what a zero-downtime restart costs the
# clients.  dsys-serve (--reuse-port, --threads 1, pinned to CPU 0) answers
# dsys-bench --rate RESTART_RATE (default 5000/s, 50 connections, pinned to
# CPU 1) for BENCH_DURATION; in the "restart" row a new dsys-serve takes
# over the listeners a third of the way in and the old one is sent SIGTERM
# (as examples/zero-downtime-restart.sh does), in the "steady" row nothing
# happens.  Both rows run in every round, order reversed every other round.
#
# Columns: p99 and max latency (us, corrected for coordinated omission, as
# dsys-bench measures with --rate), errors, and requests lost (dsys-bench's
# count against the servers' own).  The bars (issue 22): a restart adds no
# failed request and at most 10 ms to the max latency.
#
# RESTART_RT=1 (root only) runs both servers and dsys-bench at one
# real-time priority (chrt -f 50), so that the neighbours of a shared
# machine do not decide the max: a max of tens of ms is their noise, not
# the restart's.  It is the worst case for the restart, too: the old server
# cannot preempt the new one's start-up, so the bump is the longest stretch
# of that start-up that runs without waiting (exec, the dynamic loader).
# Each restart row logs its timeline (ms from the new server's start).
# the table's columns, before lib.sh sets its defaults
BENCH_COLUMNS=${BENCH_COLUMNS:-p50_us p99_us max_us errors lost}
BENCH_RATIOS=${BENCH_RATIOS:-p99_us max_us}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_init restart || exit 1
bench_need dsys-serve dsys-bench jq curl || exit 1
RESTART_RATE=${RESTART_RATE:-5000/s}
rt=()
if [ "${RESTART_RT:-0}" = 1 ]; then
	chrt -f 50 true 2>/dev/null || { bench_fail "RESTART_RT=1: chrt -f 50 refused (root only)"; exit 1; }
	rt=(chrt -f 50)
fi

# wait_ready FILE: until FILE holds a ready line (10 s at most)
wait_ready() {
	local i
	for ((i = 0; i < 200; i++)); do
		grep -q '"event":"ready"' "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# log_ms FILE MSG: the time (ms since the epoch) of the first log line of
# FILE whose msg starts with MSG
log_ms() {
	jq -r --arg m "$2" 'select(.msg? // "" | startswith($m)) | .ts' "$1" 2>/dev/null | head -1 |
		{ read -r ts && [ -n "$ts" ] && date -d "$ts" +%s%3N; }
}

# restart_timeline DIR: a restart's steps in ms from the new server's
# start: its taking the sockets over, the ready line seen, the old one's
# SIGTERM and its drained line (the last connection it served closed)
restart_timeline() {
	local d=$1 t0 took ready term drained
	[ -f "$d/t_start" ] || return 0
	t0=$(cat "$d/t_start")
	took=$(log_ms "$d/new.err" "took over") || took=
	ready=$(cat "$d/t_ready" 2>/dev/null) || ready=
	term=$(log_ms "$d/old.err" "SIGTERM received") || term=
	drained=$(log_ms "$d/old.err" "drained") || drained=
	local rel=() v
	for v in "$took" "$ready" "$term" "$drained"; do
		if [ -n "$v" ]; then rel+=("$((v - t0))"); else rel+=("?"); fi
	done
	printf '  (ms: took over %s, ready %s, SIGTERM %s, drained %s)' "${rel[@]}"
}

# CASE NAME ROUND: one run; NAME is steady or restart
restart_run() {
	local case=$1 name=$2 round=$3 dir port old secs restarter=
	dir=$(bench_dir "$name-$round")
	port=$(bench_port)
	taskset -c "$BENCH_SERVER_CPU" "${rt[@]}" dsys-serve --listen "127.0.0.1:$port" --reuse-port --threads 1 \
		>"$dir/old.out" 2>"$dir/old.err" </dev/null 3>&- &
	old=$!
	wait_ready "$dir/old.out" || { bench_fail "$name: dsys-serve did not start"; kill "$old"; return 1; }
	secs=$(awk -v d="${BENCH_DURATION%s}" 'BEGIN { print d / 3 }')
	if [ "$name" = restart ]; then
		(
			# the release's own steps (this shell, its sleeps and greps)
			# run where the servers do, as a deploy does on the server's
			# host, not on the load's CPU, where they would delay the
			# client and show as the restart's latency
			taskset -cp "$BENCH_SERVER_CPU" "$BASHPID" >/dev/null
			sleep "$secs"
			date +%s%3N >"$dir/t_start"
			"${rt[@]}" dsys-serve --listen "127.0.0.1:$port" --reuse-port \
				--threads 1 >"$dir/new.out" 2>"$dir/new.err" </dev/null 3>&- &
			echo $! >"$dir/new.pid"
			wait_ready "$dir/new.out" && date +%s%3N >"$dir/t_ready" && kill -TERM "$old"
		) &
		restarter=$!
	fi
	bench_load "${rt[@]}" dsys-bench --json --rate "$RESTART_RATE" -c 50 -t 1 -d "$BENCH_DURATION" \
		"http://127.0.0.1:$port/hello"
	cp "$BENCH_OUT" "$dir/bench.json"
	[ -n "$restarter" ] && wait "$restarter"
	local served=0 pid
	for pid in $old $(cat "$dir/new.pid" 2>/dev/null); do
		kill -0 "$pid" 2>/dev/null || continue
		served=$((served + $(curl -s "http://127.0.0.1:$port/metrics" |
			awk '$1 ~ /^http_requests_total\{route="\/hello"/ { n += $2 } END { print n + 0 }')))
		break
	done
	kill -TERM "$old" $(cat "$dir/new.pid" 2>/dev/null) 2>/dev/null
	wait "$old" 2>/dev/null
	[ -f "$dir/new.pid" ] && while kill -0 "$(cat "$dir/new.pid")" 2>/dev/null; do sleep 0.05; done
	if [ "$name" = restart ]; then
		served=$((served + $(jq -r 'select(.event == "drained") | .requests' "$dir/old.out")))
	fi
	local line
	line=$(jq -r --argjson served "$served" '
		[.latency_us.p50, .latency_us.p99, .latency_us.max,
		 (.errors | .connect + .read + .write + .timeout + .interrupted +
		  ([.status // {} | to_entries[] | .value] | add // 0)),
		 (.requests - $served)] | @tsv' "$dir/bench.json")
	local p50 p99 max errors lost
	read -r p50 p99 max errors lost <<<"$line"
	bench_record "$case" "$name" "$round" p50_us="$p50" p99_us="$p99" max_us="$max" \
		errors="$errors" lost="$lost"
	bench_log "$(printf '%-8s round %s %-8s p99 %6s us  max %7s us  errors %s  lost %s%s' \
		"$case" "$round" "$name" "$p99" "$max" "$errors" "$lost" "$(restart_timeline "$dir")")"
	[ "$errors" = 0 ] || bench_fail "$name round $round: $errors failed requests"
	[ "$lost" = 0 ] || bench_fail "$name round $round: $lost requests lost"
}

bench_rounds rate "steady restart" restart_run
echo
bench_report steady
bench_finish
