# lock_helpers.bash -- what the dsys-lock bats files share beyond
# helpers.bash.  Load it after redis_helpers (redlock_start uses it).
#
#   redlock_start     three independent redis-servers; sets RL_PIDS and
#                     RL_PORTS (bash arrays, same order) and
#                     RL_URL=redlock://127.0.0.1:P1,...
#   rl_kill I         SIGKILL server I (0-based) and wait for it
#   rl_stop_all       SIGTERM to every server still running (teardown)
#   field JSON KEY    one top-level field of a JSON line
#   now_ms            the wall clock in milliseconds
#   wait_held NAME    until `dsys-lock status NAME` says held (up to ~4 s)
#   lock_setup        dsys_setup, quiet logs, no store or lock from the
#                     environment, no server and no background run (BG)
#   lock_teardown [STOP...]  ends the background runs (BG), a stopped one
#                     too, then dsys_teardown, then each STOP command
#                     (redis_stop, etcd_stop...) of the file's stores
#   contend_start STORE OUT TTL WAIT SECONDS
#                     20 `dsys-lock run c` on STORE in the background (PIDS),
#                     each appending "FENCE start NS" then, SECONDS later,
#                     "FENCE end NS" to OUT; their stderr goes to
#                     $BATS_TEST_TMPDIR/err
#   sections_ok OUT   all 20 sections in OUT ran, none overlapping
#                     another, fences strictly rising

redlock_start() {
	local i hosts=()
	for i in 0 1 2; do
		redis_start || return 1
		RL_PIDS+=("$REDIS_PID")
		RL_PORTS+=("$REDIS_PORT")
		hosts+=("127.0.0.1:$REDIS_PORT")
	done
	REDIS_PID=
	RL_URL="redlock://$(IFS=,; echo "${hosts[*]}")"
}

rl_kill() {
	kill -KILL "${RL_PIDS[$1]}"
	wait "${RL_PIDS[$1]}" 2>/dev/null || :
	RL_PIDS[$1]=
}

rl_stop_all() {
	local p
	for p in "${RL_PIDS[@]}"; do
		[[ -n $p ]] && { kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; }
	done
	RL_PIDS=()
	return 0
}

field() {
	"$DSYS_PY" -c 'import json,sys; v=json.loads(sys.argv[1])[sys.argv[2]]; print(v)' "$1" "$2"
}

now_ms() { date +%s%3N; }

# wait_held NAME: until status says held (up to ~4 s).
wait_held() {
	local i
	for ((i = 0; i < 200; i++)); do
		[[ $(dsys-lock status "$1") == *'"held":true'* ]] && return 0
		sleep 0.02
	done
	return 1
}

lock_setup() {
	dsys_setup
	export DSYS_LOG_LEVEL=warn
	unset DSYS_STORE REDIS_URL DSYS_LOCK_TTL DSYS_LOCK_OWNER
	BG=()
	REDIS_PID=
	CLUSTER_PIDS=()
	RL_PIDS=()
	RL_PORTS=()
	ETCD_PID=
	ETCD_CLUSTER_PIDS=()
}

lock_teardown() {
	local p stop
	for p in "${BG[@]}"; do
		kill -CONT "$p" 2>/dev/null || :
		kill -KILL "$p" 2>/dev/null || :
	done
	dsys_teardown
	for stop in "$@"; do
		"$stop"
	done
}

contend_start() {
	local i
	PIDS=()
	: >"$2"
	for ((i = 0; i < 20; i++)); do
		dsys-lock run c --store "$1" --ttl "$3" --wait "$4" -- sh -c \
			'echo "$DSYS_LOCK_FENCE start $(date +%s%N)" >>"$0"; sleep "$1"; echo "$DSYS_LOCK_FENCE end $(date +%s%N)" >>"$0"' \
			"$2" "$5" 2>>"$BATS_TEST_TMPDIR/err" 3>&- &
		PIDS+=($!)
	done
}

sections_ok() {
	"$DSYS_PY" - "$1" <<'EOF'
import sys
lines = [l.split() for l in open(sys.argv[1])]
assert len(lines) == 40, len(lines)
last_fence, last_end = 0, 0
for i in range(0, 40, 2):
    (f1, s, t1), (f2, e, t2) = lines[i], lines[i + 1]
    assert s == "start" and e == "end" and f1 == f2, ("overlap", lines[i], lines[i + 1])
    assert int(f1) > last_fence, ("fence did not grow", f1, last_fence)
    assert int(t1) >= last_end and int(t2) >= int(t1), ("time", lines[i])
    last_fence, last_end = int(f1), int(t2)
EOF
}
