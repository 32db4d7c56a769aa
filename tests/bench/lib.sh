# tests/bench/lib.sh — the machinery every make bench section stands on.
#
# A section is a bash script tests/bench/bench-NN-name.sh that sources this
# file.  make bench runs the sections in order with build/bin on PATH and
# DSYS_BUILD set to the absolute build directory.  The model:
#
#   - a *server* is a name and a command line.  It runs pinned to CPU
#     $BENCH_SERVER_CPU (0) in its own scratch directory, and is stopped by
#     its PID, on every exit path, Ctrl-C included.
#   - a *load* is a command line.  It runs pinned to CPU $BENCH_LOAD_CPU (1)
#     while the server's whole process tree is sampled from /proc before and
#     after: utime+stime of the server PID and all its descendants (clock
#     ticks, turned into seconds), and its RSS afterwards.
#   - a *case* (c100, pipe16, ...) is measured in $BENCH_ROUNDS rounds; the
#     servers take turns within a round and the order reverses every other
#     round, so no server always runs first or last.  Each measured run is
#     preceded by a warm-up run of $BENCH_WARMUP against the same server.
#   - every measured run adds one sample per metric; the report shows the
#     median of the rounds for each (case, server, metric), one aligned table
#     for the section, the ratios of a base server to each other server (the
#     median of the per-round ratios: the two runs of a round are adjacent in
#     time, so a neighbour's load that drifts over the section cancels out of
#     each), and
#     writes the same as JSON lines to $DSYS_BUILD/bench/results.jsonl (the
#     section's earlier lines there are replaced, other sections' kept).
#
# A section, in full (bench-10-serve.sh is the worked example):
#
#   . "$(dirname "$0")/lib.sh"
#   bench_init counter || exit 1
#   bench_start mem 0 dsys-counter serve --store mem: --listen 127.0.0.1:0
#   port=$(bench_port)
#   bench_start redis "$port" redis-server --port "$port" --save ''
#   bench_rounds hello "mem" bench_wrk /hello -c100
#   bench_rounds incr "mem" bench_wrk /incr -c100 -s "$here/incr.lua"
#   bench_rounds native "redis" incr_native   # a load of its own, below
#   bench_report mem
#   bench_finish
#
# where a load other than wrk is a function that measures and records:
#
#   incr_native() {   # CASE NAME ROUND
#       bench_measure "$2" redis-benchmark -p "${BENCH_PORT[$2]}" -t incr -c100 -n 200000 -q
#       bench_record "$1" "$2" "$3" rps="$(awk '{ print $2 }' "$BENCH_OUT")" \
#           rss_kib="$BENCH_RSS_KIB"
#   }
#
# Environment (each has a default):
#   BENCH_ROUNDS=3  BENCH_DURATION=5s  BENCH_WARMUP=1s
#   BENCH_SERVER_CPU=0  BENCH_LOAD_CPU=1
#   BENCH_CASES="c100 pipe16"  run only these cases (default: all)
#   BENCH_KEEP=1    keep the scratch directory (server logs) for a look
#   BENCH_COLUMNS   metrics the table shows, in order (see bench_report)
#   BENCH_RATIOS    metrics the ratio lines compare
#   BENCH_ROW_LABEL what a row is: "server" (default), or e.g. "load" for a
#                   section comparing load generators; also its JSON key
#   BENCH_AUX_PIDS  (set by a section) PIDs of helpers it runs beside a
#                   load (a watcher): the exit paths stop them too
#
# Functions (arguments in CAPS; "NAME" is a server's name):
#   bench_init SECTION             scratch dir, traps, results file; call first
#   bench_log MSG...               a progress line on stderr ("bench: ...")
#   bench_skip MSG...              say why something is left out, on stderr
#   bench_fail MSG...              report an error and count it (BENCH_FAILURES)
#   bench_finish                   stop every server; 1 when anything failed
#                                  (a section ends with: bench_finish; exit)
#   bench_need CMD...              1 (with a message) when a command is missing
#   bench_port                     print a free loopback TCP port
#   bench_wait_port PORT [SECS]    wait until 127.0.0.1:PORT accepts (default 10 s)
#   bench_dir NAME                 print (and create) NAME's scratch directory
#   bench_render TEMPLATE OUT K=V...  copy TEMPLATE to OUT replacing each @K@ by V
#   bench_start NAME PORT CMD...   start CMD pinned, in bench_dir NAME; PORT 0
#                                  means "read the port from its dsys ready
#                                  line"; waits until it accepts.  Sets
#                                  BENCH_PID[NAME], BENCH_PORT[NAME] and adds
#                                  NAME to BENCH_SERVERS.
#   bench_stop NAME                SIGTERM its PID, wait, then SIGKILL the tree
#   bench_stop_all                 stop every server still running
#   bench_tree PID                 print PID and its descendants, one a line
#   bench_cpu_ticks PID            utime+stime of the tree, in clock ticks
#   bench_rss_kib PID              RSS of the tree, in KiB
#   bench_load CMD...              run CMD pinned to the load CPU, its stdout
#                                  in $BENCH_OUT; BENCH_RC its status
#   bench_measure NAME CMD...      bench_load CMD, sampling NAME's tree before
#                                  and after; sets BENCH_SERVER_CPU_S (the
#                                  tree's CPU over the run), BENCH_LOAD_CPU_S
#                                  (the load's own rusage), BENCH_WALL_S and
#                                  BENCH_RSS_KIB (the tree's, after the run)
#   bench_wrk_parse FILE           set WRK_RPS WRK_P50_US WRK_P99_US
#                                  WRK_REQUESTS WRK_ERRORS from wrk's output
#   bench_wrk CASE NAME ROUND PATH WRKARGS... [-- SCRIPTARGS...]
#                                  warm-up, then a measured wrk run (-t1 unless
#                                  WRKARGS say otherwise, --latency) against
#                                  NAME's PATH; records rps p50_us p99_us
#                                  requests errors cpu_us_per_req
#                                  load_cpu_us_per_req rss_kib and
#                                  server_cpu_pct (the tree's CPU over wall
#                                  time: near 100 when the server is the
#                                  bottleneck, far below when neighbours on
#                                  its CPU starve it and req/s means little)
#   bench_cgroup_limit NAME PERIOD_US QUOTA_US
#                                  move NAME's process into a cgroup v1 cpu
#                                  group of its own, limited to QUOTA_US of
#                                  CPU per PERIOD_US (a server the load can
#                                  always outrun); 1 with a message on stderr
#                                  when /sys/fs/cgroup/cpu is not there or not
#                                  writable (not root, a container): the
#                                  caller skips.  The group goes on exit.
#   bench_cgroup_stat NAME         the group's "PERIODS THROTTLED THROTTLED_S"
#                                  (cpu.stat: periods elapsed, periods that
#                                  ran out of quota, seconds spent throttled)
#   bench_idle_rss CASE NAME COUNT [PATH]
#                                  hold COUNT keep-alive connections open (each
#                                  after one request to PATH) and record the
#                                  tree's rss_kib
#   bench_record CASE NAME ROUND METRIC=VALUE...   add samples
#   bench_order ROUND NAME...      the names in this round's order
#   bench_want CASE                0 when CASE is selected by BENCH_CASES
#   bench_rounds CASE "NAMES" FUNC ARGS...
#                                  for each round and each name in the round's
#                                  order: FUNC CASE NAME ROUND ARGS...
#   bench_median [VALUE...]        median of the arguments (or stdin lines)
#   bench_report BASE              the table, the ratios BASE/each other
#                                  server, and the JSON lines
#
# Conventions: servers bind 127.0.0.1 only; all traffic stays on loopback.
# Functions return nonzero on failure and never exit the caller's shell,
# so sections decide what a failure means.

declare -gA BENCH_PID=() BENCH_PORT=() BENCH_CGROUP=()
declare -ga BENCH_SERVERS=()
BENCH_FAILURES=0
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_DURATION=${BENCH_DURATION:-5s}
BENCH_WARMUP=${BENCH_WARMUP:-1s}
BENCH_SERVER_CPU=${BENCH_SERVER_CPU:-0}
BENCH_LOAD_CPU=${BENCH_LOAD_CPU:-1}
BENCH_CASES=${BENCH_CASES:-}
BENCH_COLUMNS=${BENCH_COLUMNS:-rps p50_us p99_us cpu_us_per_req server_cpu_pct rss_kib}
BENCH_RATIOS=${BENCH_RATIOS:-rps p99_us cpu_us_per_req rss_kib}
BENCH_ROW_LABEL=${BENCH_ROW_LABEL:-server}
BENCH_TICK=$(getconf CLK_TCK)
BENCH_PAGE_KIB=$(($(getconf PAGESIZE) / 1024))
BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DSYS_BUILD=${DSYS_BUILD:-$(cd "$BENCH_LIB_DIR/../.." && pwd)/build}

bench_log() { printf 'bench: %s\n' "$*" >&2; }
bench_skip() { printf 'bench: skipped: %s\n' "$*" >&2; }
bench_fail() {
	BENCH_FAILURES=$((BENCH_FAILURES + 1))
	printf 'bench: error: %s\n' "$*" >&2
}

bench_finish() {
	bench_stop_all
	if [ "$BENCH_FAILURES" -gt 0 ]; then
		bench_log "section $BENCH_SECTION: $BENCH_FAILURES error(s), see above"
		return 1
	fi
	return 0
}

bench_need() {
	local c rc=0
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || { bench_skip "'$c' not found"; rc=1; }
	done
	return $rc
}

bench_init() {
	BENCH_SECTION=$1
	BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dsys-bench-$1.XXXXXX") || return 1
	BENCH_SAMPLES=$BENCH_TMP/samples.tsv
	BENCH_OUT=$BENCH_TMP/load.out
	: >"$BENCH_SAMPLES"
	mkdir -p "$DSYS_BUILD/bench" || return 1
	BENCH_RESULTS=$DSYS_BUILD/bench/results.jsonl
	trap 'bench_cleanup' EXIT
	trap 'bench_cleanup; trap - INT; kill -INT $$' INT
	trap 'bench_cleanup; trap - TERM; kill -TERM $$' TERM
	ulimit -n "$(ulimit -Hn)" 2>/dev/null
	bench_need taskset || return 1
	if ! taskset -c "$BENCH_LOAD_CPU" true 2>/dev/null; then
		bench_log "CPU $BENCH_LOAD_CPU is not there: the load shares CPU $BENCH_SERVER_CPU" \
			"with the servers, so requests/s and latency mean little"
		BENCH_LOAD_CPU=$BENCH_SERVER_CPU
	fi
	bench_log "section $1: $BENCH_ROUNDS rounds of $BENCH_DURATION (+$BENCH_WARMUP warm-up)," \
		"servers on CPU $BENCH_SERVER_CPU, load on CPU $BENCH_LOAD_CPU"
}

bench_cleanup() {
	local p
	for p in ${BENCH_LOAD_PID:-} ${BENCH_IDLE_PID:-} ${BENCH_AUX_PIDS:-}; do
		kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	bench_stop_all
	bench_cgroup_remove_all
	if [ -n "${BENCH_TMP:-}" ] && [ -d "$BENCH_TMP" ]; then
		if [ "${BENCH_KEEP:-0}" = 1 ]; then
			bench_log "scratch kept in $BENCH_TMP"
		else
			rm -rf "$BENCH_TMP"
		fi
	fi
}

# A port in 20000-32767 (below Linux's ephemeral range, so no outgoing
# connection takes it meanwhile) that no socket uses in /proc/net/tcp*.
bench_port() {
	local i port hex
	for ((i = 0; i < 200; i++)); do
		port=$((20000 + RANDOM % 12768))
		printf -v hex ':%04X ' "$port"
		if ! grep -q -- "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

bench_wait_port() {
	local port=$1 secs=${2:-10} i
	for ((i = 0; i <= secs * 20; i++)); do
		((i > 0)) && sleep 0.05
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
	done
	return 1
}

bench_dir() {
	mkdir -p "$BENCH_TMP/$1" && echo "$BENCH_TMP/$1"
}

bench_render() {
	local tpl=$1 out=$2 kv sed_args=()
	shift 2
	for kv in "$@"; do
		local v=${kv#*=}
		v=${v//\\/\\\\}; v=${v//&/\\&}; v=${v//|/\\|}
		sed_args+=(-e "s|@${kv%%=*}@|$v|g")
	done
	sed "${sed_args[@]}" "$tpl" >"$out"
}

# 0 while PID is alive and not a zombie (a child of ours that exited stays
# a zombie until waited for, and kill -0 still finds it).
bench_alive() {
	local st
	st=$(cut -d')' -f2 "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "${st:1:1}" != Z ]
}

bench_start() {
	local name=$1 port=$2 dir pid i got=
	shift 2
	dir=$(bench_dir "$name") || return 1
	(cd "$dir" && exec taskset -c "$BENCH_SERVER_CPU" "$@") \
		</dev/null >"$dir/stdout" 2>"$dir/stderr" 3>&- &
	pid=$!
	BENCH_PID[$name]=$pid
	BENCH_SERVERS+=("$name")
	if [ "$port" = 0 ]; then
		for ((i = 0; i < 200; i++)); do
			got=$(grep -m1 '"event":"ready"' "$dir/stdout" |
				sed -n 's/.*"listen":"[^"]*:\([0-9][0-9]*\)".*/\1/p')
			[ -n "$got" ] && break
			bench_alive "$pid" || break
			sleep 0.05
		done
		port=$got
	fi
	# Until it accepts, or dies (a bad config fails at once), or 10 s pass.
	for ((i = 0; i < 200; i++)); do
		if [ -z "$port" ] || ! bench_alive "$pid"; then break; fi
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.05
	done
	if [ -z "$port" ] || ! bench_alive "$pid" || ! bench_wait_port "$port" 0; then
		bench_fail "$name did not start ($*); its stderr:"
		tail -5 "$dir/stderr" >&2
		bench_stop "$name"
		return 1
	fi
	BENCH_PORT[$name]=$port
	bench_log "$name: pid $pid, 127.0.0.1:$port"
}

bench_stop() {
	local name=$1 pid=${BENCH_PID[$1]:-} tree i
	[ -n "$pid" ] || return 0
	tree=$(bench_tree "$pid")
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		bench_alive "$pid" || break
		sleep 0.05
	done
	# Whatever is left of the tree (a worker whose master died) goes too.
	for i in $tree; do
		bench_alive "$i" && kill -KILL "$i" 2>/dev/null
	done
	wait "$pid" 2>/dev/null
	unset "BENCH_PID[$name]"
	return 0
}

bench_stop_all() {
	local name
	for name in "${!BENCH_PID[@]}"; do
		bench_stop "$name"
	done
}

# One pass over /proc/*/stat (cat skips processes that vanish meanwhile):
# the tree of ROOT by parent links, then WHAT of it: "pids" (one a line),
# "ticks" (utime+stime), "rss" (pages) or "stat" (both: "TICKS PAGES").
# The command name may hold spaces and parentheses, so fields are counted
# after the last ") ": state, ppid, ... utime is the 12th, stime the 13th,
# rss the 22nd.  A process's utime and stime include all its threads.
bench__tree() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" -v what="$2" '
		{
			p = $1; sub(/^.*\) /, ""); split($0, f, " ")
			n++; pid[n] = p; ppid[n] = f[2]; ticks[n] = f[12] + f[13]; rss[n] = f[22]
		}
		END {
			in_tree[root] = 1; grew = 1
			while (grew) {
				grew = 0
				for (i = 1; i <= n; i++)
					if (!(pid[i] in in_tree) && (ppid[i] in in_tree)) { in_tree[pid[i]] = 1; grew = 1 }
			}
			st = 0; sr = 0; found = 0
			for (i = 1; i <= n; i++) {
				if (!(pid[i] in in_tree)) continue
				found = 1
				if (what == "pids") print pid[i]
				st += ticks[i]; sr += rss[i]
			}
			if (what == "ticks") printf "%d\n", st
			if (what == "rss") printf "%d\n", sr
			if (what == "stat") printf "%d %d\n", st, sr
			exit !found
		}'
}

bench_tree() { bench__tree "$1" pids; }
bench_cpu_ticks() { bench__tree "$1" ticks; }

bench_rss_kib() {
	local pages
	pages=$(bench__tree "$1" rss) || return 1
	echo $((pages * BENCH_PAGE_KIB))
}

# Run CMD pinned to the load CPU, stdout in $BENCH_OUT, stderr beside it.
# In the background and waited for, so a signal's trap runs at once.
bench_load() {
	taskset -c "$BENCH_LOAD_CPU" "$@" </dev/null >"$BENCH_OUT" 2>"$BENCH_OUT.err" &
	BENCH_LOAD_PID=$!
	wait "$BENCH_LOAD_PID"
	BENCH_RC=$?
	BENCH_LOAD_PID=
	return $BENCH_RC
}

# Two /proc passes per measured run, one before and one after, and the
# arithmetic in one awk: under load each fork costs, and the runs are short.
# The load's own CPU comes from the times builtin (children's user+system
# seconds), which must run in this shell, not in a $(...) subshell, to see
# the loads this shell waited for.
bench_measure() {
	local name=$1 pid=${BENCH_PID[$1]:-} before after w0 w1 line
	shift
	[ -n "$pid" ] || { bench_log "$name is not running"; return 1; }
	times >"$BENCH_TMP/times0"
	before=$(bench__tree "$pid" stat)
	w0=$EPOCHREALTIME
	bench_load "$@"
	w1=$EPOCHREALTIME
	after=$(bench__tree "$pid" stat)
	times >"$BENCH_TMP/times1"
	line=$(cat "$BENCH_TMP/times0" "$BENCH_TMP/times1" | awk -v before="$before" -v after="$after" \
		-v w0="$w0" -v w1="$w1" -v hz="$BENCH_TICK" -v page="$BENCH_PAGE_KIB" '
		function secs(f,    u, s) {
			split($1, u, /[ms]/); split($2, s, /[ms]/)
			return u[1] * 60 + u[2] + s[1] * 60 + s[2]
		}
		NR == 2 { c0 = secs() }
		NR == 4 { c1 = secs() }
		END {
			split(before, b, " "); split(after, a, " ")
			printf "%.3f %.3f %.3f %d\n", (a[1] - b[1]) / hz, c1 - c0, w1 - w0, a[2] * page
		}')
	# shellcheck disable=SC2034 # BENCH_WALL_S is for the sections
	read -r BENCH_SERVER_CPU_S BENCH_LOAD_CPU_S BENCH_WALL_S BENCH_RSS_KIB <<<"$line"
	return $BENCH_RC
}

# cgroup v1's cpu controller (cpu.cfs_period_us, cpu.cfs_quota_us,
# cpu.stat), the one this machine mounts; a cgroup v2-only host has
# cpu.max instead and is reported as not supported, not guessed at.
BENCH_CGROUP_ROOT=${BENCH_CGROUP_ROOT:-/sys/fs/cgroup/cpu}

bench_cgroup_limit() {
	local name=$1 period=$2 quota=$3 pid=${BENCH_PID[$1]:-} dir p
	[ -n "$pid" ] || { bench_skip "cgroup: $name is not running"; return 1; }
	if [ ! -w "$BENCH_CGROUP_ROOT/cgroup.procs" ] || [ ! -e "$BENCH_CGROUP_ROOT/cpu.cfs_quota_us" ]; then
		bench_skip "no writable cgroup v1 cpu controller at $BENCH_CGROUP_ROOT" \
			"(needs root and cgroup v1's cpu hierarchy mounted there)"
		return 1
	fi
	dir=$BENCH_CGROUP_ROOT/dsys-bench-$$-$name
	if ! mkdir "$dir" 2>/dev/null; then
		bench_skip "cannot create cgroup '$dir'"
		return 1
	fi
	BENCH_CGROUP[$name]=$dir
	# The period first: a quota above the old period may be refused.
	if ! { echo "$period" >"$dir/cpu.cfs_period_us" && echo "$quota" >"$dir/cpu.cfs_quota_us"; } 2>/dev/null; then
		bench_skip "cgroup '$dir' refused quota $quota us per $period us"
		return 1
	fi
	# Every process of the tree (cgroup.procs moves all of a process's threads).
	for p in $(bench_tree "$pid"); do
		echo "$p" >"$dir/cgroup.procs" 2>/dev/null || {
			bench_skip "cannot move pid $p into cgroup '$dir'"; return 1; }
	done
	bench_log "$name: in cgroup $dir, $quota us of CPU per $period us"
}

bench_cgroup_stat() {
	local dir=${BENCH_CGROUP[$1]:-}
	[ -n "$dir" ] && awk '$1 == "nr_periods" { p = $2 } $1 == "nr_throttled" { t = $2 }
		$1 == "throttled_time" { ns = $2 } END { printf "%d %d %.6f\n", p, t, ns / 1e9 }' "$dir/cpu.stat"
}

# After the servers are stopped: a group with a task left cannot go.
# Everything in one of our groups is the bench's own (a server's child
# that bench_stop's tree walk missed because its parent had exited), so
# what is still there is killed, and said; only a process that even
# SIGKILL leaves is moved back to the root so the group can go.
bench_cgroup_remove_all() {
	local name dir p i
	for name in "${!BENCH_CGROUP[@]}"; do
		dir=${BENCH_CGROUP[$name]}
		for ((i = 0; i < 20; i++)); do
			[ -d "$dir" ] || break
			rmdir "$dir" 2>/dev/null && break
			for p in $(cat "$dir/cgroup.procs" 2>/dev/null); do
				if ((i < 10)); then
					kill -KILL "$p" 2>/dev/null && bench_log "cgroup '$dir': pid $p was left in it; killed"
				else
					echo "$p" >"$BENCH_CGROUP_ROOT/cgroup.procs"
				fi
			done
			sleep 0.05
		done
		[ -d "$dir" ] && bench_log "cgroup '$dir' could not be removed"
		unset "BENCH_CGROUP[$name]"
	done
}

# wrk prints times as 123.45us, 1.23ms, 1.02s, 1.00m; in us here.
bench_wrk_parse() {
	local line
	line=$(awk '
		function us(v) {
			if (v ~ /us$/) return v + 0
			if (v ~ /ms$/) return v * 1000
			if (v ~ /m$/) return v * 60000000
			if (v ~ /h$/) return v * 3600000000
			if (v ~ /s$/) return v * 1000000
			return v + 0
		}
		/Latency Distribution/ { dist = 1; next }
		dist && $1 == "50%" { p50 = us($2) }
		dist && $1 == "99%" { p99 = us($2) }
		/ requests in / { req = $1 }
		/^Requests\/sec:/ { rps = $2 }
		/Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
		/Non-2xx or 3xx responses:/ { err += $NF }
		END { printf "%s %d %d %d %d\n", (rps == "" ? 0 : rps), p50, p99, req, err }
	' "$1") || return 1
	read -r WRK_RPS WRK_P50_US WRK_P99_US WRK_REQUESTS WRK_ERRORS <<<"$line"
	[ "$WRK_REQUESTS" -gt 0 ]
}

bench_record() {
	local case=$1 name=$2 round=$3 kv
	shift 3
	for kv in "$@"; do
		printf '%s\t%s\t%s\t%s\t%s\n' "$case" "$name" "$round" "${kv%%=*}" "${kv#*=}" >>"$BENCH_SAMPLES"
	done
}

bench_wrk() {
	local case=$1 name=$2 round=$3 path=$4 url opts=() script_args=() a seen_dd=0
	shift 4
	for a in "$@"; do
		if [ $seen_dd = 1 ]; then script_args+=("$a")
		elif [ "$a" = -- ]; then seen_dd=1
		else opts+=("$a"); fi
	done
	[ $seen_dd = 1 ] && script_args=(-- "${script_args[@]}")
	url="http://127.0.0.1:${BENCH_PORT[$name]}$path"
	bench_load wrk -t1 "${opts[@]}" -d "$BENCH_WARMUP" "$url" "${script_args[@]}" || {
		bench_fail "$case $name: warm-up failed: $(head -3 "$BENCH_OUT.err")"; return 1; }
	bench_measure "$name" wrk -t1 "${opts[@]}" -d "$BENCH_DURATION" --latency "$url" "${script_args[@]}"
	if ! bench_wrk_parse "$BENCH_OUT"; then
		bench_fail "$case $name: wrk counted no answers: $(head -3 "$BENCH_OUT.err")"
		return 1
	fi
	local cpu_us lcpu_us busy
	read -r cpu_us lcpu_us busy < <(awk -v c="$BENCH_SERVER_CPU_S" -v l="$BENCH_LOAD_CPU_S" \
		-v w="$BENCH_WALL_S" -v n="$WRK_REQUESTS" \
		'BEGIN { printf "%.2f %.2f %.0f\n", c * 1e6 / n, l * 1e6 / n, (w > 0 ? c * 100 / w : 0) }')
	# wrk 4.1 prints 0.00us for the upper percentiles when it pipelines
	# (it records one latency per burst): a 0 is "not known", left out.
	local pct=()
	[ "$WRK_P50_US" -gt 0 ] && pct+=(p50_us="$WRK_P50_US")
	[ "$WRK_P99_US" -gt 0 ] && pct+=(p99_us="$WRK_P99_US")
	bench_record "$case" "$name" "$round" rps="$WRK_RPS" "${pct[@]}" \
		requests="$WRK_REQUESTS" errors="$WRK_ERRORS" cpu_us_per_req="$cpu_us" \
		load_cpu_us_per_req="$lcpu_us" server_cpu_pct="$busy" rss_kib="$BENCH_RSS_KIB"
	bench_log "$(printf '%-8s round %s %-12s %9.0f req/s  p99 %6s us  cpu %6s us/req (busy %3s%%)  rss %6s KiB%s' \
		"$case" "$round" "$name" "$WRK_RPS" "$([ "$WRK_P99_US" -gt 0 ] && echo "$WRK_P99_US" || echo -)" \
		"$cpu_us" "$busy" "$BENCH_RSS_KIB" \
		"$([ "$WRK_ERRORS" -gt 0 ] && echo "  ERRORS $WRK_ERRORS")")"
}

# Opens COUNT connections to NAME, sends one request on each and reads its
# answer, then holds them idle while the server's RSS is read.
bench__idle_py='
import socket, sys
host, port, count, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (path, host, port)).encode()
socks = []
for i in range(count):
    s = socket.create_connection((host, port))
    s.sendall(req)
    socks.append(s)
for s in socks:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("closed before answering")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    while len(body) < length:
        body += s.recv(4096)
print("open %d" % len(socks), flush=True)
sys.stdin.read()
'

bench_idle_rss() {
	local case=$1 name=$2 count=$3 path=${4:-/hello} line rss pid
	coproc BENCH_IDLE { taskset -c "$BENCH_LOAD_CPU" python3 -c "$bench__idle_py" \
		127.0.0.1 "${BENCH_PORT[$name]}" "$count" "$path" 2>"$BENCH_TMP/idle.err"; }
	pid=$BENCH_IDLE_PID
	if ! read -r -t 60 line <&"${BENCH_IDLE[0]}" || [ "$line" != "open $count" ]; then
		bench_fail "$case $name: could not hold $count connections: $(tail -1 "$BENCH_TMP/idle.err")"
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
		return 1
	fi
	sleep 0.5
	rss=$(bench_rss_kib "${BENCH_PID[$name]}")
	kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
	bench_record "$case" "$name" 1 rss_kib="$rss"
	bench_log "$(printf '%-8s %-12s rss %s KiB with %s idle connections' "$case" "$name" "$rss" "$count")"
}

bench_order() {
	local round=$1 i
	shift
	local list=("$@")
	if ((round % 2)); then
		printf '%s\n' "${list[@]}"
	else
		for ((i = ${#list[@]} - 1; i >= 0; i--)); do echo "${list[i]}"; done
	fi
}

bench_want() {
	[ -z "$BENCH_CASES" ] && return 0
	case " $BENCH_CASES " in *" $1 "*) return 0 ;; esac
	return 1
}

bench_rounds() {
	local case=$1 names=$2 func=$3 round name
	shift 3
	bench_want "$case" || { bench_skip "case $case (not in BENCH_CASES)"; return 0; }
	for ((round = 1; round <= BENCH_ROUNDS; round++)); do
		# shellcheck disable=SC2086
		for name in $(bench_order "$round" $names); do
			"$func" "$case" "$name" "$round" "$@"
		done
	done
}

bench_median() {
	{ if [ $# -gt 0 ]; then printf '%s\n' "$@"; else cat; fi; } | sort -g |
		awk '{ v[NR] = $1 } END {
			if (NR == 0) exit 1
			if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The table, the ratios and the JSON lines, from the samples of this
# section.  Rows keep the order in which cases and servers first appeared.
bench_report() {
	local base=$1 at tmp
	at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	tmp=$BENCH_TMP/results.new
	if [ -f "$BENCH_RESULTS" ]; then
		grep -v "\"section\":\"$BENCH_SECTION\"" "$BENCH_RESULTS" >"$tmp"
	else
		: >"$tmp"
	fi
	awk -F'\t' -v base="$base" -v section="$BENCH_SECTION" -v at="$at" \
		-v columns="$BENCH_COLUMNS" -v ratios="$BENCH_RATIOS" \
		-v rounds="$BENCH_ROUNDS" -v duration="$BENCH_DURATION" -v json="$tmp" \
		-v rowlabel="$BENCH_ROW_LABEL" '
	function median(key,    n, a, i, j, t, parts) {
		n = split(vals[key], parts, " ")
		for (i = 1; i <= n; i++) a[i] = parts[i] + 0
		for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
		return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function num(v,    t) {
		t = sprintf("%.3f", v); sub(/0+$/, "", t); sub(/\.$/, "", t)
		return t
	}
	function count(key,    parts) { return split(vals[key], parts, " ") }
	function human(metric, v) {
		if (v == "") return "-"
		if (metric == "rps" || metric ~ /_rps$/) return sprintf("%.0f", v)
		if (metric ~ /_us_per_/) return sprintf("%.2fus", v)
		if (metric ~ /_us$/) return v >= 1000 ? sprintf("%.2fms", v / 1000) : sprintf("%dus", v)
		if (metric ~ /_kib$/) return sprintf("%.1fMiB", v / 1024)
		if (metric ~ /_pct$/) return sprintf("%.0f%%", v)
		return sprintf("%g", v)
	}
	function label(metric) {
		if (metric == "rps") return "req/s"
		if (metric == "per_core_rps") return "req/cpu-s"
		if (metric == "run_busy_pct") return "run busy"
		if (metric == "load_cpu_pct") return "load busy"
		if (metric == "cpu_us_per_req") return "cpu/req"
		if (metric == "load_cpu_us_per_req") return "load cpu/req"
		if (metric == "rss_kib") return "rss"
		if (metric == "server_cpu_pct") return "busy"
		sub(/_us$/, "", metric); sub(/_kib$/, "", metric)
		return metric
	}
	{
		c = $1; s = $2; m = $4
		if (!(c in seen_case)) { seen_case[c] = 1; cases[++ncases] = c }
		if (!((c, s) in seen_row)) { seen_row[c, s] = 1; nrow[c]++; rows[c, nrow[c]] = s }
		if (!(m in seen_metric)) { seen_metric[m] = 1; metrics[++nmetrics] = m }
		vals[c, s, m] = vals[c, s, m] " " $5
		byround[c, s, m, $3] = $5
		if (!((c, $3) in seen_round)) { seen_round[c, $3] = 1; round_of[c, ++nround[c]] = $3 }
		have[c, s, m] = 1
	}
	END {
		ncol = split(columns, col, " ")
		nrat = split(ratios, rat, " ")
		w[0] = 8; w[1] = length(rowlabel)
		for (ci = 1; ci <= ncases; ci++) {
			c = cases[ci]
			if (length(c) > w[0]) w[0] = length(c)
			for (ri = 1; ri <= nrow[c]; ri++) if (length(rows[c, ri]) > w[1]) w[1] = length(rows[c, ri])
		}
		for (k = 1; k <= ncol; k++) w[k + 1] = 12
		line = sprintf("%-" w[0] "s  %-" w[1] "s", "case", rowlabel)
		for (k = 1; k <= ncol; k++) line = line sprintf(" %" w[k + 1] "s", label(col[k]))
		print line
		for (ci = 1; ci <= ncases; ci++) {
			c = cases[ci]
			for (ri = 1; ri <= nrow[c]; ri++) {
				s = rows[c, ri]
				line = sprintf("%-" w[0] "s  %-" w[1] "s", c, s)
				for (k = 1; k <= ncol; k++) {
					m = col[k]
					v = ((c, s, m) in have) ? median(c SUBSEP s SUBSEP m) : ""
					line = line sprintf(" %" w[k + 1] "s", human(m, v))
				}
				print line
				if ((c, s, "errors") in have && median(c SUBSEP s SUBSEP "errors") > 0)
					errnote = errnote sprintf("\n  %s %s: median %s errors (socket errors or non-2xx answers) per run", c, s, num(median(c SUBSEP s SUBSEP "errors")))
				samples = 0
				for (k = 1; k <= nmetrics; k++)
					if ((c, s, metrics[k]) in have && count(c SUBSEP s SUBSEP metrics[k]) > samples)
						samples = count(c SUBSEP s SUBSEP metrics[k])
				js = sprintf("{\"section\":\"%s\",\"case\":\"%s\",\"%s\":\"%s\",\"samples\":%d,\"duration\":\"%s\"",
					section, c, rowlabel, s, samples, duration)
				for (k = 1; k <= nmetrics; k++) {
					m = metrics[k]
					if ((c, s, m) in have) js = js ",\"" m "\":" num(median(c SUBSEP s SUBSEP m))
				}
				print js ",\"at\":\"" at "\"}" >> json
			}
		}
		if (errnote != "") print "errors:" errnote
		if (base == "") exit
		printed = 0
		for (ci = 1; ci <= ncases; ci++) {
			c = cases[ci]
			for (ri = 1; ri <= nrow[c]; ri++) {
				s = rows[c, ri]
				if (s == base) continue
				line = ""; js = ""
				for (k = 1; k <= nrat; k++) {
					m = rat[k]
					if (!((c, base, m) in have) || !((c, s, m) in have)) continue
					# the median of the per-round ratios: both sides of a
					# round ran back to back, so a load from neighbours that
					# drifts over the run cancels out of each ratio
					vals[c, "ratio", m] = ""
					for (k2 = 1; k2 <= nround[c]; k2++) {
						rd = round_of[c, k2]
						if (((c, base, m, rd) in byround) && ((c, s, m, rd) in byround) && byround[c, s, m, rd] + 0 != 0)
							vals[c, "ratio", m] = vals[c, "ratio", m] " " (byround[c, base, m, rd] / byround[c, s, m, rd])
					}
					if (vals[c, "ratio", m] == "") continue
					r = median(c SUBSEP "ratio" SUBSEP m)
					line = line sprintf("  %s %.2fx", label(m), r)
					js = js ",\"" m "\":" num(r)
				}
				if (line == "") continue
				if (!printed) { print ""; print "ratios of " base " to each (median of the per-round ratios over " rounds " rounds; req/s above 1 is faster, the rest below 1 is cheaper):"; printed = 1 }
				printf "%-" w[0] "s  %-" (w[1] + 3) "s%s\n", c, "vs " s, line
				print "{\"section\":\"" section "\",\"case\":\"" c "\",\"ratio\":\"" base "/" s "\"" js ",\"at\":\"" at "\"}" >> json
			}
		}
	}' "$BENCH_SAMPLES" || return 1
	mv "$tmp" "$BENCH_RESULTS"
	bench_log "results in $BENCH_RESULTS"
}
