# shellcheck shell=bash disable=SC2034
# tests/bench/etcd.sh -- three etcd members for a make bench section.
#
# Source it after lib.sh and bench_init.  bench_etcd3 starts three members
# together (one alone would wait for its quorum) on loopback, each pinned
# to $BENCH_SERVER_CPU in its own bench_dir, registered in BENCH_PID as
# etcd0..etcd2 so bench_finish stops them by PID, and waits until
# `etcdctl endpoint health` answers (up to ~20 s).  On success it sets
# ETCD_EPS (http://127.0.0.1:P,... for etcdctl) and ETCD_URL
# (etcd://127.0.0.1:P,... for dsys programs: gRPC; BENCH_ETCD_SCHEME=etcd+json
# makes it etcd+json://, the JSON gateway, to compare the two) and returns 0.
bench_etcd3() {
	local ports=() initial="" eps=() hosts=() i d
	for i in 0 1 2; do ports+=("$(bench_port)" "$(bench_port)"); done
	for i in 0 1 2; do initial+="${initial:+,}e$i=http://127.0.0.1:${ports[2 * i + 1]}"; done
	for i in 0 1 2; do
		d=$(bench_dir "etcd$i")
		(cd "$d" && exec taskset -c "$BENCH_SERVER_CPU" etcd --name "e$i" --data-dir "$d/data" \
			--listen-client-urls "http://127.0.0.1:${ports[2 * i]}" \
			--advertise-client-urls "http://127.0.0.1:${ports[2 * i]}" \
			--listen-peer-urls "http://127.0.0.1:${ports[2 * i + 1]}" \
			--initial-advertise-peer-urls "http://127.0.0.1:${ports[2 * i + 1]}" \
			--initial-cluster "$initial" --initial-cluster-state new \
			--initial-cluster-token "dsys-bench-$$") </dev/null >"$d/stdout" 2>"$d/stderr" 3>&- &
		BENCH_PID["etcd$i"]=$!
		eps+=("http://127.0.0.1:${ports[2 * i]}")
		hosts+=("127.0.0.1:${ports[2 * i]}")
	done
	ETCD_EPS=$(IFS=,; echo "${eps[*]}")
	ETCD_URL="${BENCH_ETCD_SCHEME:-etcd}://$(IFS=,; echo "${hosts[*]}")"
	for ((i = 0; i < 200; i++)); do
		ETCDCTL_API=3 etcdctl --endpoints "$ETCD_EPS" --dial-timeout 1s endpoint health >/dev/null 2>&1 &&
			return 0
		sleep 0.1
	done
	return 1
}

# bench_etcd3_tree: the same three members, but as one process tree under
# one shell started by bench_start as server "etcd", so that a section
# which samples each server's CPU (bench_start's process tree) sees the
# whole cluster, as it sees `dsys-raft cluster`'s.  Each member is started
# by its own script, ETCD_DIR/mI.sh (I 0 to 2: exec etcd with its flags,
# its log appended to ETCD_DIR/mI.log), whose PID the shell writes to
# ETCD_DIR/mI.pid, so that a section can kill -9 one member and start it
# again with the same flags and data (etcd ignores the --initial-cluster
# flags when its data dir holds a member already).  Sets ETCD_PORTS (the
# three client ports) and ETCD_DIR; returns bench_start's status.
bench_etcd3_tree() {
	local ports=() i edir initial
	for i in 1 2 3 4 5 6; do ports+=("$(bench_port)"); done
	edir=$(bench_dir etcd-data)
	initial="e1=http://127.0.0.1:${ports[3]},e2=http://127.0.0.1:${ports[4]},e3=http://127.0.0.1:${ports[5]}"
	for i in 0 1 2; do
		echo "exec etcd --name e$((i + 1)) --data-dir '$edir/m$i'" \
			"--listen-client-urls http://127.0.0.1:${ports[i]} --advertise-client-urls http://127.0.0.1:${ports[i]}" \
			"--listen-peer-urls http://127.0.0.1:${ports[i + 3]} --initial-advertise-peer-urls http://127.0.0.1:${ports[i + 3]}" \
			"--initial-cluster '$initial' --initial-cluster-state new --log-level error >>'$edir/m$i.log' 2>&1" \
			>"$edir/m$i.sh"
	done
	{
		echo "trap 'kill \$(jobs -p) 2>/dev/null; wait; exit 0' TERM INT"
		for i in 0 1 2; do
			echo "bash '$edir/m$i.sh' & echo \$! >'$edir/m$i.pid'"
		done
		echo wait
	} >"$edir/run.sh"
	ETCD_PORTS=("${ports[@]:0:3}")
	ETCD_DIR=$edir
	bench_start etcd "${ports[0]}" bash "$edir/run.sh"
}
