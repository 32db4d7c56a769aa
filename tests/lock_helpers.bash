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
