# etcd_helpers.bash -- real etcd-server processes for bats tests.
#
# Source it from a .bats file (load etcd_helpers) or from bash.  Every
# member runs in the foreground as our child (started with fd 3 closed, so
# bats does not wait for it), with client and peer URLs on 127.0.0.1 on
# free ports, its data dir under $BATS_TEST_TMPDIR, and is stopped by its
# PID.  Readiness is polled with `etcdctl endpoint health`, never slept for.
# Heartbeat 50 ms and election timeout 500 ms keep failover tests short.
#
#   etcd_start
#       One member.  Sets ETCD_PORT, ETCD_PEER_PORT, ETCD_PID, ETCD_DIR,
#       ETCD_ENDPOINT (http://127.0.0.1:PORT, for etcdctl --endpoints) and
#       ETCD_URL (etcd://127.0.0.1:PORT, for our client).
#   etcd_restart      the same member again, same ports and data dir
#   etcd_stop         SIGTERM to ETCD_PID and wait; etcd_kill: SIGKILL
#   etcd_cluster_start [N]
#       N (default 3) members forming one cluster.  Sets bash arrays
#       ETCD_CLUSTER_PORTS and ETCD_CLUSTER_PIDS (same order), and
#       ETCD_CLUSTER_URL (etcd://127.0.0.1:P1,...) and
#       ETCD_CLUSTER_ENDPOINTS (http://127.0.0.1:P1,... for etcdctl).
#   etcd_cluster_kill I   SIGKILL member I (0-based) and wait for it
#   etcd_cluster_stop     SIGTERM to every member still running
#   etcd_free_ports N     print N distinct free loopback ports, one a line
#
# For a .bats file's own setup_file, setup and teardown:
#   etcd_require      1 unless etcd and etcdctl are installed
#   etcd_reset        no member started yet; etcdctl speaks v3
#   etcd_teardown     etcd_stop and etcd_cluster_stop
#   ctl ARGS...       etcdctl on $ETCD_CTL_EP, else on $ETCD_ENDPOINT
#
# Failures print a line on stderr and return 1; a member's log is
# DIR/etcd.log.

# etcd_free_ports N: N ports in 22000-29999 that bind now and that no other
# call gave out in the last 10 minutes.  Test files run side by side
# (prove -j): a port free when probed may be taken by another file's
# cluster before its member binds it, so the ports handed out are noted
# in a shared file, under a lock, and not handed out again while fresh.
etcd_free_ports() {
	/usr/bin/python3 - "$1" "/tmp/dsys-test-ports.$(id -u)" <<'EOF2'
import fcntl, os, random, socket, sys, time
n, path, got = int(sys.argv[1]), sys.argv[2], []
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
with open(path, "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    now, taken = time.time(), {}
    for line in f:
        try:
            port, when = line.split()
            if now - float(when) < 600:
                taken[int(port)] = float(when)
        except ValueError:
            pass
    for _ in range(5000):
        p = random.randint(22000, 29999)
        if p not in got and p not in taken and free(p):
            got.append(p)
            if len(got) == n:
                break
    else:
        raise SystemExit("no free ports")
    for p in got:
        taken[p] = now
    f.seek(0)
    f.truncate()
    f.write("".join("%d %.0f\n" % kv for kv in taken.items()))
print("\n".join(map(str, got)))
EOF2
}

# _etcd_spawn NAME DIR CPORT PPORT INITIAL_CLUSTER STATE: PID in _ETCD_SPAWNED.
_etcd_spawn() {
	local name=$1 dir=$2 cport=$3 pport=$4 initial=$5 state=$6
	etcd --name "$name" --data-dir "$dir/data" \
		--listen-client-urls "http://127.0.0.1:$cport" \
		--advertise-client-urls "http://127.0.0.1:$cport" \
		--listen-peer-urls "http://127.0.0.1:$pport" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "$initial" --initial-cluster-state "$state" \
		--initial-cluster-token "dsys-test-$$" \
		--heartbeat-interval 50 --election-timeout 500 "${ETCD_ARGS[@]}" \
		</dev/null >>"$dir/etcd.log" 2>&1 3>&- &
	_ETCD_SPAWNED=$!
}

# _etcd_wait_healthy ENDPOINTS PID...: up to ~20 s.
_etcd_wait_healthy() {
	local endpoints=$1 i pid
	shift
	for ((i = 0; i < 200; i++)); do
		if etcdctl --endpoints "$endpoints" --dial-timeout 1s --command-timeout 1s \
			endpoint health >/dev/null 2>&1; then
			return 0
		fi
		for pid in "$@"; do
			kill -0 "$pid" 2>/dev/null || { echo "etcd_helpers: etcd $pid exited" >&2; return 1; }
		done
		sleep 0.1
	done
	echo "etcd_helpers: etcd at $endpoints did not become healthy" >&2
	return 1
}

etcd_start() {
	ETCD_DIR=$(mktemp -d "${BATS_TEST_TMPDIR:-${TMPDIR:-/tmp}}/etcd.XXXXXX") || return 1
	local ports
	ports=($(etcd_free_ports 2)) || return 1
	ETCD_PORT=${ports[0]}
	ETCD_PEER_PORT=${ports[1]}
	ETCD_ENDPOINT="http://127.0.0.1:$ETCD_PORT"
	ETCD_URL="etcd://127.0.0.1:$ETCD_PORT"
	_etcd_spawn e0 "$ETCD_DIR" "$ETCD_PORT" "$ETCD_PEER_PORT" "e0=http://127.0.0.1:$ETCD_PEER_PORT" new
	ETCD_PID=$_ETCD_SPAWNED
	_etcd_wait_healthy "$ETCD_ENDPOINT" "$ETCD_PID"
}

etcd_restart() {
	_etcd_spawn e0 "$ETCD_DIR" "$ETCD_PORT" "$ETCD_PEER_PORT" "e0=http://127.0.0.1:$ETCD_PEER_PORT" new
	ETCD_PID=$_ETCD_SPAWNED
	_etcd_wait_healthy "$ETCD_ENDPOINT" "$ETCD_PID"
}

etcd_stop() {
	if [[ -n ${ETCD_PID:-} ]]; then
		kill "$ETCD_PID" 2>/dev/null
		wait "$ETCD_PID" 2>/dev/null || :
		ETCD_PID=
	fi
	return 0
}

etcd_kill() {
	if [[ -n ${ETCD_PID:-} ]]; then
		kill -KILL "$ETCD_PID" 2>/dev/null
		wait "$ETCD_PID" 2>/dev/null || :
		ETCD_PID=
	fi
	return 0
}

etcd_cluster_start() {
	local n=${1:-3} i ports initial= urls=() eps=()
	ETCD_CLUSTER_DIR=$(mktemp -d "${BATS_TEST_TMPDIR:-${TMPDIR:-/tmp}}/etcdc.XXXXXX") || return 1
	ports=($(etcd_free_ports $((2 * n)))) || return 1
	ETCD_CLUSTER_PORTS=()
	ETCD_CLUSTER_PIDS=()
	for ((i = 0; i < n; i++)); do
		initial+="${initial:+,}e$i=http://127.0.0.1:${ports[n + i]}"
	done
	for ((i = 0; i < n; i++)); do
		mkdir -p "$ETCD_CLUSTER_DIR/$i"
		_etcd_spawn "e$i" "$ETCD_CLUSTER_DIR/$i" "${ports[i]}" "${ports[n + i]}" "$initial" new
		ETCD_CLUSTER_PORTS+=("${ports[i]}")
		ETCD_CLUSTER_PIDS+=("$_ETCD_SPAWNED")
		urls+=("127.0.0.1:${ports[i]}")
		eps+=("http://127.0.0.1:${ports[i]}")
	done
	ETCD_CLUSTER_URL="etcd://$(IFS=,; echo "${urls[*]}")"
	ETCD_CLUSTER_ENDPOINTS=$(IFS=,; echo "${eps[*]}")
	for ((i = 0; i < n; i++)); do
		_etcd_wait_healthy "${eps[i]}" "${ETCD_CLUSTER_PIDS[@]}" || return 1
	done
}

etcd_cluster_kill() {
	local pid=${ETCD_CLUSTER_PIDS[$1]}
	if [[ -n $pid ]]; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null || :
		ETCD_CLUSTER_PIDS[$1]=
	fi
	return 0
}

etcd_cluster_stop() {
	local pid
	for pid in "${ETCD_CLUSTER_PIDS[@]}"; do
		[[ -n $pid ]] || continue
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null || :
	done
	ETCD_CLUSTER_PIDS=()
	return 0
}

etcd_require() {
	local c
	for c in etcd etcdctl; do
		command -v "$c" >/dev/null && continue
		echo "$c is not installed (make deps installs etcd-server and etcd-client)" >&2
		return 1
	done
}

etcd_reset() {
	ETCD_PID=
	ETCD_CLUSTER_PIDS=()
	export ETCDCTL_API=3
}

etcd_teardown() {
	etcd_stop
	etcd_cluster_stop
}

ctl() { etcdctl --endpoints "${ETCD_CTL_EP:-$ETCD_ENDPOINT}" "$@"; }
# ctl for `ctl_bg ... &`: the job is etcdctl itself (exec), so $! is the
# pid that teardown kills, not a subshell that would leave etcdctl behind
ctl_bg() { exec etcdctl --endpoints "${ETCD_CTL_EP:-$ETCD_ENDPOINT}" "$@"; }
