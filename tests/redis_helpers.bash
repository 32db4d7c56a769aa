# redis_helpers.bash -- real redis-server processes for bats tests.
#
# Source it from a .bats file (load redis_helpers) or from bash.  Every
# server runs in the foreground as our child (started with fd 3 closed, so
# bats does not wait for it), on 127.0.0.1, on a free port, in a fresh
# temporary folder, without persistence, and is stopped by its PID.
#
#   redis_start [ARGS...]
#       Start one redis-server (extra ARGS go to it, e.g. --requirepass x).
#       Sets REDIS_PORT, REDIS_PID, REDIS_DIR and REDIS_URL
#       (redis://127.0.0.1:PORT); returns when it answers PING.
#   redis_restart
#       Start redis-server again on the same REDIS_PORT and REDIS_DIR
#       (after redis_stop or redis_kill); updates REDIS_PID.
#   redis_stop
#       SIGTERM to REDIS_PID, wait for it to exit.  redis_kill: SIGKILL.
#   redis_cluster_start [N]
#       Start N (default 3) cluster-enabled redis-servers and join them
#       with redis-cli --cluster create (N masters, no replicas); returns
#       when CLUSTER INFO says cluster_state:ok on every node.  Sets
#       CLUSTER_PORTS and CLUSTER_PIDS (bash arrays, same order),
#       CLUSTER_DIR and CLUSTER_URL (redis-cluster://127.0.0.1:P1,...).
#   redis_cluster_stop
#       SIGTERM to every node, wait for them.
#   redis_cluster_owner SLOT
#       Print the port of the master that owns SLOT.
#   redis_cluster_move_slot SLOT FROM_PORT TO_PORT
#       Reshard one slot with its keys: CLUSTER SETSLOT IMPORTING on TO,
#       MIGRATING on FROM, MIGRATE every key (in batches), then
#       CLUSTER SETSLOT NODE TO on every node.  A client with the old map
#       gets MOVED for it afterwards.
#   redis_free_port
#       Print a free loopback port P whose cluster bus port P+10000 is free
#       too (drawn from 15000-21999, below the kernel's ephemeral range).
#
# Failures print a line on stderr and return 1; the log of a server is
# DIR/redis.log.

redis_free_port() {
	python3 - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(1000):
    p = random.randint(15000, 21999)
    if free(p) and free(p + 10000):
        print(p)
        break
else:
    raise SystemExit("no free port")
EOF
}

# _redis_spawn PORT DIR [ARGS...]: start one server as our child (not in a
# $(...) subshell, so that wait works on it); its PID goes to _REDIS_SPAWNED.
_redis_spawn() {
	local port=$1 dir=$2
	shift 2
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize no --dir "$dir" "$@" </dev/null >>"$dir/redis.log" 2>&1 3>&- &
	_REDIS_SPAWNED=$!
}

# _redis_wait_ping PORT PID [ARGS for redis-cli]: up to ~10 s.
_redis_wait_ping() {
	local port=$1 pid=$2 i
	shift 2
	for ((i = 0; i < 500; i++)); do
		if [[ $(redis-cli -p "$port" "$@" ping 2>/dev/null) == PONG ]]; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	echo "redis_helpers: redis-server on port $port did not answer PING" >&2
	return 1
}

redis_start() {
	REDIS_DIR=$(mktemp -d "${BATS_TEST_TMPDIR:-${TMPDIR:-/tmp}}/redis.XXXXXX") || return 1
	REDIS_PORT=$(redis_free_port) || return 1
	REDIS_ARGS=("$@")
	_redis_spawn "$REDIS_PORT" "$REDIS_DIR" "$@"
	REDIS_PID=$_REDIS_SPAWNED
	REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
	local auth=() i
	for ((i = 0; i < $#; i++)); do
		[[ ${REDIS_ARGS[i]} == --requirepass ]] && auth=(--no-auth-warning -a "${REDIS_ARGS[i + 1]}")
	done
	_redis_wait_ping "$REDIS_PORT" "$REDIS_PID" "${auth[@]}"
}

redis_restart() {
	_redis_spawn "$REDIS_PORT" "$REDIS_DIR" "${REDIS_ARGS[@]}"
	REDIS_PID=$_REDIS_SPAWNED
	local auth=() i
	for ((i = 0; i < ${#REDIS_ARGS[@]}; i++)); do
		[[ ${REDIS_ARGS[i]} == --requirepass ]] && auth=(--no-auth-warning -a "${REDIS_ARGS[i + 1]}")
	done
	_redis_wait_ping "$REDIS_PORT" "$REDIS_PID" "${auth[@]}"
}

redis_stop() {
	if [[ -n ${REDIS_PID:-} ]]; then
		kill "$REDIS_PID" 2>/dev/null
		wait "$REDIS_PID" 2>/dev/null
		REDIS_PID=
	fi
	return 0
}

redis_kill() {
	if [[ -n ${REDIS_PID:-} ]]; then
		kill -KILL "$REDIS_PID" 2>/dev/null
		wait "$REDIS_PID" 2>/dev/null
		REDIS_PID=
	fi
	return 0
}

redis_cluster_start() {
	local n=${1:-3} i port pid addrs=() ok
	CLUSTER_DIR=$(mktemp -d "${BATS_TEST_TMPDIR:-${TMPDIR:-/tmp}}/cluster.XXXXXX") || return 1
	CLUSTER_PORTS=()
	CLUSTER_PIDS=()
	for ((i = 0; i < n; i++)); do
		port=$(redis_free_port) || return 1
		mkdir -p "$CLUSTER_DIR/$port"
		_redis_spawn "$port" "$CLUSTER_DIR/$port" --cluster-enabled yes \
			--cluster-config-file "$CLUSTER_DIR/$port/nodes.conf" --cluster-node-timeout 5000
		pid=$_REDIS_SPAWNED
		CLUSTER_PORTS+=("$port")
		CLUSTER_PIDS+=("$pid")
		addrs+=("127.0.0.1:$port")
	done
	for ((i = 0; i < n; i++)); do
		_redis_wait_ping "${CLUSTER_PORTS[i]}" "${CLUSTER_PIDS[i]}" || return 1
	done
	if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
		>"$CLUSTER_DIR/create.log" 2>&1 </dev/null; then
		echo "redis_helpers: redis-cli --cluster create failed, see $CLUSTER_DIR/create.log" >&2
		return 1
	fi
	for ((i = 0; i < 1000; i++)); do
		ok=1
		for port in "${CLUSTER_PORTS[@]}"; do
			redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || ok=0
		done
		((ok)) && break
		sleep 0.02
	done
	if ((!ok)); then
		echo "redis_helpers: the cluster did not reach cluster_state:ok" >&2
		return 1
	fi
	CLUSTER_URL="redis-cluster://$(IFS=,; echo "${addrs[*]}")"
}

redis_cluster_stop() {
	local pid
	for pid in "${CLUSTER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${CLUSTER_PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	CLUSTER_PIDS=()
	return 0
}

redis_cluster_owner() {
	local slot=$1
	redis-cli -p "${CLUSTER_PORTS[0]}" cluster slots 2>/dev/null | awk -v s="$slot" '
		# CLUSTER SLOTS flattened: start, end, host, port, id, ... per range
		{ v[NR] = $0 }
		END {
			for (i = 1; i + 3 <= NR; i++)
				if (v[i] ~ /^[0-9]+$/ && v[i+1] ~ /^[0-9]+$/ && v[i+2] ~ /\./ &&
				    v[i] + 0 <= s && s <= v[i+1] + 0) { print v[i+3]; exit }
		}'
}

redis_cluster_move_slot() {
	local slot=$1 from=$2 to=$3 from_id to_id keys port
	from_id=$(redis-cli -p "$from" cluster myid) || return 1
	to_id=$(redis-cli -p "$to" cluster myid) || return 1
	redis-cli -p "$to" cluster setslot "$slot" importing "$from_id" >/dev/null || return 1
	redis-cli -p "$from" cluster setslot "$slot" migrating "$to_id" >/dev/null || return 1
	while :; do
		mapfile -t keys < <(redis-cli -p "$from" cluster getkeysinslot "$slot" 100)
		((${#keys[@]} == 0)) && break
		[[ -z ${keys[0]} ]] && break
		if [[ $(redis-cli -p "$from" migrate 127.0.0.1 "$to" "" 0 5000 keys "${keys[@]}") != OK ]]; then
			echo "redis_helpers: MIGRATE of slot $slot from $from to $to failed" >&2
			return 1
		fi
	done
	for port in "${CLUSTER_PORTS[@]}"; do
		redis-cli -p "$port" cluster setslot "$slot" node "$to_id" >/dev/null || return 1
	done
}
