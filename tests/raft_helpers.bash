# raft_helpers.bash -- start, kill and watch dsys-raft clusters on loopback,
# for the raft_*.bats files (which load helpers and
# etcd_helpers first).
#
#   raft_cluster N        ports and names for N members; nothing started
#   raft_start I          start member I (0-based), wait for its ready line;
#                         RAFT_ARGS (an array) adds options, RAFT_ULIMIT_F
#                         (KiB) runs it under `ulimit -f`; RAFT_FAULTFS=1
#                         runs it with build/tests/faultfs.so preloaded,
#                         its control file $RAFT_DIR/nI.fault (1-based)
#   raft_proxy            after raft_cluster: tests/raft_proxy.py between
#                         the members; link I-J (1-based, I sends to J)
#                         obeys the file $RAFT_PROXY_CTL/I-J
#   raft_start_all        every member, then wait for a leader
#   raft_kill I           kill -9 member I
#   raft_wait_leader      the index of the leader a running member names
#   field JSON PATH, b64 S, post PORT PATH BODY
#
# Under load (a .bats file's setup sets CLI and CHECK, build/bench's
# etcd_cli and lin_check, and LOAD_PID=; its teardown ends a load left):
#   load_start            tests/raft_load.py clients on every member
#   load_stop             end them and check their history
#   put_ok K V [URL]      a write that succeeds, retried across a leader change
#   caught_up I K V       member I serves K=V from its own state

# The .bats files' setup and teardown:
#   raft_setup [TOOL...]  dsys_setup, no member, no load, no etcd, no
#                         RAFT_ARGS; CLI, CHECK and FAULTFS name
#                         build/bench/etcd_cli, build/bench/lin_check and
#                         build/tests/faultfs.so, and each TOOL named
#                         (CLI, CHECK, FAULTFS) must be built
#   raft_teardown         ends the load left (load_start) and every member
#                         left, a frozen one too, and etcd_stop; the
#                         caller ends its own processes, then dsys_teardown
#   raft_setup_file N     N members started once for the whole file, in
#                         $BATS_FILE_TMPDIR, healthy to etcdctl; exports
#                         GRPC_EPS (their client endpoints) and GRPC_PORTS
#                         (their client ports, one word each)
#   raft_teardown_file    ends raft_setup_file's members

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
		if [[ -n ${RAFT_FAULTFS:-} ]]; then
			# the shim is not built with the sanitizer a node may be
			export LD_PRELOAD="${DSYS_BUILD:-$BATS_TEST_DIRNAME/../build}/tests/faultfs.so" \
				DSYS_FAULT_CTL="$RAFT_DIR/n$((i + 1)).fault" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
		fi
		exec dsys-raft node --name "n$((i + 1))" --data-dir "$RAFT_DIR/n$((i + 1))" \
			--listen-client "127.0.0.1:${RAFT_CPORTS[i]}" --listen-peer "127.0.0.1:${RAFT_PPORTS[i]}" \
			--initial-cluster "$RAFT_INITIAL" --heartbeat-interval 50ms --election-timeout 500ms \
			"${RAFT_ARGS[@]}"
	) >"$out" 2>>"$RAFT_DIR/n$((i + 1)).err" 3>&- &
	RAFT_PIDS[i]=$!
	wait_ready "$out" "${RAFT_PIDS[i]}" >/dev/null
}

raft_proxy() {
	local i ports args=()
	ports=($(etcd_free_ports "$RAFT_N")) || return 1
	RAFT_PROXY_CTL=$(dsys_tmp proxy)
	RAFT_INITIAL=
	for ((i = 0; i < RAFT_N; i++)); do
		args+=(--member "$((i + 1)):${ports[i]}:${RAFT_PPORTS[i]}")
		RAFT_INITIAL+="${RAFT_INITIAL:+,}n$((i + 1))=http://127.0.0.1:${ports[i]}"
	done
	start_server proxy "$DSYS_PY" "$BATS_TEST_DIRNAME/raft_proxy.py" --ctl "$RAFT_PROXY_CTL" "${args[@]}"
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

# Clients under faults (raft_faults, raft_member): CLI, CHECK and LOAD_PID
# are the test's (tests/bench/etcd_cli, tests/bench/lin_check).

# load_start [ENDPOINTS]: clients on every member (or on ENDPOINTS), recording into $RAFT_DIR/history.
load_start() {
	rm -f "$RAFT_DIR/stop"
	"$DSYS_PY" "$BATS_TEST_DIRNAME/raft_load.py" --endpoints "${1:-$RAFT_ENDPOINTS}" --history "$RAFT_DIR/history" \
		--stop "$RAFT_DIR/stop" --clients "${LOAD_CLIENTS:-4}" --keys 6 --max-seconds 90 --timeout 3 \
		>"$RAFT_DIR/load.out" 2>"$RAFT_DIR/load.err" &
	LOAD_PID=$!
}

# load_stop: end the clients (after their final reads) and check the
# history; fails on a violation, a search given up, or too few writes.
load_stop() {
	touch "$RAFT_DIR/stop"
	wait "$LOAD_PID" || { cat "$RAFT_DIR/load.err" >&2; LOAD_PID=; return 1; }
	LOAD_PID=
	local summary
	summary=$(cat "$RAFT_DIR/load.out")
	echo "# load: $summary" >&3
	[ "$(jq -r .final_reads <<<"$summary")" -eq 6 ] || { echo "final reads missing: $summary" >&2; return 1; }
	[ "$(jq -r .acked_writes <<<"$summary")" -ge "${MIN_ACKED:-20}" ] || { echo "too few writes: $summary" >&2; return 1; }
	run "$CHECK" "$RAFT_DIR/history"
	echo "# check: $output" >&3
	[ "$status" -eq 0 ] || { echo "history not linearizable: $output" >&2; return 1; }
}

# put_ok KEY VALUE [URL]: a write through any member (of URL, default all)
# succeeds (retried while a leader is elected).
put_ok() {
	local k
	for ((k = 0; k < 50; k++)); do
		"$CLI" -t 3000 "${3:-$RAFT_URL}" put "$1" "$2" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "put $1 never succeeded" >&2
	return 1
}

# big_txns N PREFIX [I]: N transactions of 24 puts of 16 KiB values (384 KiB
# each) to the keys PREFIX<txn>-<op>, through member I (default 0)
big_txns() {
	local t body="$RAFT_DIR/txn.json"
	for ((t = 0; t < $1; t++)); do
		"$DSYS_PY" - "$2$t-" >"$body" <<-'EOF'
			import base64, json, sys
			v = base64.b64encode(b"v" * 16384).decode()
			ops = [{"request_put": {"key": base64.b64encode((sys.argv[1] + str(i)).encode()).decode(),
			                        "value": v}} for i in range(24)]
			print(json.dumps({"success": ops}))
		EOF
		curl -sf -m 30 "http://127.0.0.1:${RAFT_CPORTS[${3:-0}]}/v3/kv/txn" --data-binary "@$body" >/dev/null ||
			{ echo "txn $t failed" >&2; return 1; }
	done
}

# caught_up I KEY VALUE: member I serves KEY=VALUE from its own state.
caught_up() {
	local got k
	for ((k = 0; k < 100; k++)); do
		got=$(post "${RAFT_CPORTS[$1]}" /v3/kv/range "{\"key\":\"$(b64 "$2")\",\"serializable\":true}" | jq -r '.kvs[0].value // empty' | base64 -d)
		[ "$got" = "$3" ] && return 0
		sleep 0.1
	done
	echo "member $1 has $2='$got', not '$3'" >&2
	return 1
}

raft_setup() {
	local build=${DSYS_BUILD:-$BATS_TEST_DIRNAME/../build} tool
	dsys_setup
	CLI=$build/bench/etcd_cli
	CHECK=$build/bench/lin_check
	FAULTFS=$build/tests/faultfs.so
	RAFT_PIDS=()
	RAFT_ARGS=()
	LOAD_PID=
	ETCD_PID=
	ETCD_CLUSTER_PIDS=()
	for tool in "$@"; do
		[ -e "${!tool}" ] || fail "${!tool} is missing: run make first"
	done
}

raft_teardown() {
	local pid
	if [[ -n ${LOAD_PID:-} ]]; then
		touch "$RAFT_DIR/stop"
		kill "$LOAD_PID" 2>/dev/null || :
		wait "$LOAD_PID" 2>/dev/null || :
	fi
	# a member a test froze (SIGSTOP) must run again to see the SIGTERM
	for pid in "${RAFT_PIDS[@]}"; do
		[[ -n $pid ]] || continue
		kill -CONT "$pid" 2>/dev/null || :
		kill_server "$pid"
	done
	etcd_stop
}

raft_setup_file() {
	local n=$1 ports i initial= eps=
	PATH="$DSYS_BIN:$PATH"
	ports=($(etcd_free_ports $((2 * n)))) || return 1
	for ((i = 0; i < n; i++)); do
		initial+="${initial:+,}n$((i + 1))=http://127.0.0.1:${ports[n + i]}"
		eps+="${eps:+,}127.0.0.1:${ports[i]}"
	done
	export GRPC_EPS=$eps GRPC_PORTS="${ports[*]:0:n}"
	: >"$BATS_FILE_TMPDIR/pids"
	for ((i = 0; i < n; i++)); do
		dsys-raft node --name "n$((i + 1))" --data-dir "$BATS_FILE_TMPDIR/n$((i + 1))" \
			--listen-client "127.0.0.1:${ports[i]}" --listen-peer "127.0.0.1:${ports[n + i]}" \
			--initial-cluster "$initial" --heartbeat-interval 50ms --election-timeout 500ms \
			>"$BATS_FILE_TMPDIR/n$((i + 1)).out" 2>"$BATS_FILE_TMPDIR/n$((i + 1)).err" 3>&- &
		echo $! >>"$BATS_FILE_TMPDIR/pids"
	done
	for ((i = 0; i < 200; i++)); do
		etcdctl --endpoints "$eps" --command-timeout 1s endpoint health >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "the cluster never became healthy" >&2
	return 1
}

raft_teardown_file() {
	local pid
	while read -r pid; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null || :
	done <"$BATS_FILE_TMPDIR/pids"
}
