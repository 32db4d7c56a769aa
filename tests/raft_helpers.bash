# raft_helpers.bash -- start, kill and watch dsys-raft clusters on loopback,
# for raft_node.bats and raft_faults.bats (which load helpers and
# etcd_helpers first).
#
#   raft_cluster N        ports and names for N members; nothing started
#   raft_start I          start member I (0-based), wait for its ready line;
#                         RAFT_ARGS (an array) adds options, RAFT_ULIMIT_F
#                         (KiB) runs it under `ulimit -f`
#   raft_start_all        every member, then wait for a leader
#   raft_kill I           kill -9 member I
#   raft_wait_leader      the index of the leader a running member names
#   field JSON PATH, b64 S, post PORT PATH BODY

# field JSON PATH: one field of a JSON line, as JSON
field() { "$DSYS_PY" -c 'import json,sys; v=json.loads(sys.argv[1]); print(json.dumps(eval("v"+sys.argv[2]), ensure_ascii=False))' "$1" "$2"; }
b64() { printf %s "$1" | base64 -w0; }

raft_cluster() {
	local n=$1 i ports
	ports=($(etcd_free_ports $((2 * n)))) || return 1
	RAFT_N=$n
	RAFT_CPORTS=()
	RAFT_PPORTS=()
	RAFT_INITIAL=
	for ((i = 0; i < n; i++)); do
		RAFT_CPORTS+=("${ports[i]}")
		RAFT_PPORTS[i]=${ports[n + i]}
		RAFT_INITIAL+="${RAFT_INITIAL:+,}n$((i + 1))=http://127.0.0.1:${ports[n + i]}"
	done
	RAFT_DIR=$(dsys_tmp raft)
	RAFT_URL="etcd://$(for p in "${RAFT_CPORTS[@]}"; do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//')"
	RAFT_ENDPOINTS=$(for p in "${RAFT_CPORTS[@]}"; do printf '127.0.0.1:%s,' "$p"; done | sed 's/,$//')
}

raft_start() {
	local i=$1 out="$RAFT_DIR/n$(($1 + 1)).out"
	: >"$out"
	(
		[[ -n ${RAFT_ULIMIT_F:-} ]] && ulimit -f "$RAFT_ULIMIT_F"
		exec dsys-raft node --name "n$((i + 1))" --data-dir "$RAFT_DIR/n$((i + 1))" \
			--listen-client "127.0.0.1:${RAFT_CPORTS[i]}" --listen-peer "127.0.0.1:${RAFT_PPORTS[i]}" \
			--initial-cluster "$RAFT_INITIAL" --heartbeat-interval 50ms --election-timeout 500ms \
			"${RAFT_ARGS[@]}"
	) >"$out" 2>>"$RAFT_DIR/n$((i + 1)).err" 3>&- &
	RAFT_PIDS[i]=$!
	wait_ready "$out" "${RAFT_PIDS[i]}" >/dev/null
}

raft_start_all() {
	local i
	for ((i = 0; i < RAFT_N; i++)); do raft_start "$i" || return 1; done
	raft_wait_leader
}

raft_kill() {
	kill -KILL "${RAFT_PIDS[$1]}" 2>/dev/null
	wait "${RAFT_PIDS[$1]}" 2>/dev/null || :
	RAFT_PIDS[$1]=
}

# raft_wait_leader: until a running member's /health names a leader that
# is running; prints the leader's index (0-based).
raft_wait_leader() {
	local i k lead
	for ((k = 0; k < 200; k++)); do
		for ((i = 0; i < RAFT_N; i++)); do
			[[ -n ${RAFT_PIDS[i]} ]] || continue
			lead=$(curl -s -m 1 "http://127.0.0.1:${RAFT_CPORTS[i]}/health" | jq -r 'select(.health=="true") | .leader' 2>/dev/null)
			if [[ -n $lead && $lead != 0 && -n ${RAFT_PIDS[lead - 1]} ]]; then
				echo $((lead - 1))
				return 0
			fi
		done
		sleep 0.05
	done
	echo "no leader elected" >&2
	return 1
}

post() { curl -s -m 10 "http://127.0.0.1:$1$2" -d "$3"; }
