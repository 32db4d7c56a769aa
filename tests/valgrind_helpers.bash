# Helpers of tests/valgrind.bats and tests/valgrind_alloc.bats: the
# programs under memcheck.  See tests/valgrind.bats for what they prove.

load helpers
bats_require_minimum_version 1.5.0


# Requests of the short and the long run; the difference is EXTRA.
N1=200
EXTRA=2000

# vg_setup: a test's set-up under valgrind; it skips in a sanitizer build.
vg_setup() {
	dsys_setup
	export DSYS_LOG_LEVEL=warn
	# valgrind's start-up is slow on a loaded machine
	export DSYS_READY_TIMEOUT=90
	if [ -n "${DSYS_SAN:-}" ]; then
		skip "valgrind cannot run a sanitizer build ($DSYS_SAN)"
	fi
	command -v valgrind >/dev/null || fail "valgrind is not installed (make deps installs it)"
}
setup() { vg_setup; }
teardown() {
	# an etcd a failed test left (the store tests start one)
	[ -z "${ETCD_PID:-}" ] || { kill -KILL "$ETCD_PID"; wait "$ETCD_PID"; } 2>/dev/null || :
	dsys_teardown
}

# vg_start NAME CMD [ARG]...: start CMD under memcheck as server NAME; its
# valgrind log is $BATS_TEST_TMPDIR/NAME.vg (set as VG_LOG), and the call
# tree of every allocation made (freed or not) NAME.kcg, for xtree_growth.
vg_start() {
	local name=$1
	shift
	VG_LOG="$BATS_TEST_TMPDIR/$name.vg"
	start_server "$name" valgrind --leak-check=full \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
		--track-fds=no --log-file="$VG_LOG" \
		--xtree-memory=full --xtree-memory-file="$BATS_TEST_TMPDIR/$name.kcg" "$@"
}

# xtree_growth KCG1 KCG2: the functions whose allocations (blocks, counting
# those of their callees) grew most from the first run to the second: where
# a per-request allocation comes from.
xtree_growth() {
	local i=1 f
	for f in "$1" "$2"; do
		callgrind_annotate --inclusive=yes --auto=no --sort=totBk --show=totBk --threshold=100 "$f" |
			awk -v run=$i '$2 ~ /^\(/ && $NF ~ /:/ && $NF !~ /UnknownFn/ { gsub(",", "", $1); print run, $NF, $1 }'
		i=2
	done | awk '$1 == 1 { a[$2] = $3 } $1 == 2 { b[$2] = $3 }
		END { for (k in b) if (b[k] - a[k] > 0) print b[k] - a[k], k }' | sort -rn | head -15
}

# vg_stop [PID LOG]: SIGTERM the server (by default the one started last,
# with its log VG_LOG), and require exit status 0, a clean error summary and
# no definite or indirect loss in its log; on failure the log is printed.
# Sets VG_ALLOCS to the run's heap alloc count.
vg_stop() {
	local pid=${1:-$SERVER_PID} log=${2:-$VG_LOG} st=0 p keep=()
	stop_server "$pid" || st=$?
	for p in "${DSYS_SERVER_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	DSYS_SERVER_PIDS=("${keep[@]}")
	if [ "$st" -ne 0 ] ||
		! grep -q 'ERROR SUMMARY: 0 errors' "$log" ||
		! grep -qE 'All heap blocks were freed|definitely lost: 0 bytes' "$log" ||
		grep -qE 'indirectly lost: [1-9]' "$log"; then
		echo "exit status $st (99: valgrind found errors); valgrind said:" >&2
		cat "$log" >&2
		echo "stderr of the server:" >&2
		cat "$SERVER_ERR" >&2
		return 1
	fi
	VG_ALLOCS=$(sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' "$log" | tr -d ,)
	[ -n "$VG_ALLOCS" ] || { echo "no heap summary in $log" >&2; cat "$log" >&2; return 1; }
}

# drive N URL [dsys-bench ARG]...: exactly N requests over 4 keep-alive
# connections from one thread; every answer must be a 200 and no connection
# may have been replaced (a new connection may allocate, a request may not).
drive() {
	local n=$1 url=$2 out
	shift 2
	out=$(DSYS_BENCH_IO=uv dsys-bench --requests "$n" -c 4 -t 1 --timeout 60s "$@" "$url") || {
		echo "dsys-bench failed: $out" >&2
		return 1
	}
	jq -e --argjson n "$n" '.status["200"] == $n and .connects == 4' <<<"$out" >/dev/null || {
		echo "dsys-bench: want $n answers 200 over 4 connects, got: $out" >&2
		return 1
	}
}

# heap_growth_ok A1 A2: the allocs of the long run (A2) exceed those of the
# short run (A1) by less than EXTRA/50, i.e. 2% of the extra requests (40
# for 2000).  A malloc per request would add at least EXTRA, one per
# 16-deep pipelined burst at least EXTRA/16 = 125; what may legitimately
# differ between two runs is time-driven (timers, a Date refresh, a libuv
# or libc table that grows once), a handful over the few seconds the runs'
# durations differ by.  Measured here: no difference at all.
heap_growth_ok() {
	local a1=$1 a2=$2 bound=$((EXTRA / 50))
	echo "# heap allocs: $a1 for $N1 requests, $a2 for $((N1 + EXTRA)); growth $((a2 - a1)), bound $bound" >&3
	if [ $((a2 - a1)) -ge "$bound" ]; then
		echo "heap allocs grew by $((a2 - a1)) for $EXTRA more requests (bound $bound): a per-request allocation" >&2
		echo "blocks allocated more in the long run, by function (callees included):" >&2
		xtree_growth "$BATS_TEST_TMPDIR/run$N1.kcg" "$BATS_TEST_TMPDIR/run$((N1 + EXTRA)).kcg" >&2
		return 1
	fi
}

# allocs_for N CMD [ARG]... -- URL [dsys-bench ARG]...: run CMD under
# memcheck, drive N requests at URL (PORT in it is replaced by the port),
# stop it cleanly and print its heap alloc count.
allocs_for() {
	local n=$1 cmd=() url
	shift
	while [ "$1" != -- ]; do cmd+=("$1"); shift; done
	shift
	url=$1
	shift
	# in a command substitution: teardown cannot see this server, so a
	# failure stops it here
	vg_start "run$n" "${cmd[@]}" >&2 || { kill_server "$SERVER_PID"; return 1; }
	drive "$n" "${url/PORT/$SERVER_PORT}" "$@" || { kill_server "$SERVER_PID"; return 1; }
	vg_stop || return 1
	echo "$VG_ALLOCS"
}

serve_cmd=(dsys-serve --listen 127.0.0.1:0 --threads 1)
counter_cmd=(dsys-counter serve --listen 127.0.0.1:0 --threads 1)
incr_args=(-m POST -H 'Content-Type: application/json' -b '{"key":"k","by":1}')
