# register_helpers.bash -- what register.bats and register_etcd.bats share.
#
#   BG                  PIDs of background adds and watches; reg_kill_bg
#                       (from teardown) kills each with SIGKILL and reaps it
#   wait_for FILE PATTERN [SECONDS]
#                       until a line of FILE matches (grep), default 10 s;
#                       else print FILE on stderr and return 1
#   wait_count SERVICE N [SECONDS]
#                       until `dsys-register list SERVICE` prints N lines

reg_kill_bg() {
	local p
	for p in "${BG[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null || :
	done
	BG=()
}

wait_for() {
	local i
	for ((i = 0; i < ${3:-10} * 50; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.02
	done
	echo "no '$2' in $1:" >&2
	cat "$1" >&2
	return 1
}

wait_count() {
	local i n
	for ((i = 0; i < ${3:-10} * 50; i++)); do
		n=$(dsys-register list "$1" | grep -c .) || :
		[ "$n" -eq "$2" ] && return 0
		sleep 0.02
	done
	echo "list $1 has $n lines, not $2" >&2
	return 1
}
