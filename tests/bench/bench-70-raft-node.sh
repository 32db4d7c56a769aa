#!/usr/bin/env bash
# make bench, section "raft-node": etcd's JSON gateway on a 3-member
# dsys-raft cluster and on a 3-member etcd 3.4 cluster, both on this
# machine, both fsyncing every commit, all members pinned to the server
# CPU, wrk and the watcher on the load CPU.  Each cluster is three members
# (default flags) under one shell, each started by its own script so one
# can be killed and started again: etcd's by tests/bench/etcd.sh, dsys-raft's
# as `dsys-raft node` here, the members `dsys-raft cluster` would start
# (that supervisor does not start a killed member again).
#
# Cases (each BENCH_ROUNDS rounds, order reversed every other round):
#   c1 c64 c512   wrk -cN POST /v3/kv/put with a 1 KiB value, keys round
#                 robin over 1000 (bench/k0 ...), to member 1 (a follower or
#                 the leader: both forward to the leader, as etcd does)
#   range-c64     wrk -c64 POST /v3/kv/range of those keys, linearizable
#   watch-c64     c64's puts while a watch on the prefix bench/ is open on
#                 member 2 (not the member written to: the events reach it
#                 through replication), from the revision after a
#                 linearizable read made before the run, counted by
#                 tests/bench/watch_count on the load CPU, which reads
#                 the one stream both answer the watch with (made again
#                 only if a stream ends: the log line's "watch requests"
#                 says how many were made, 1 when none ended): watch_eps is the
#                 events delivered by the end of the run per second of it,
#                 beside the puts acknowledged (rps); watch_lag the
#                 revisions the run made (a linearizable read after it, less
#                 the one before) not yet delivered when the run ended,
#                 watch_lost those still missing 5 s later (should be 0),
#                 watch_cpu_pct the watcher's own CPU over the run (it
#                 keeps up: a few % of the load CPU)
# and after them, once (not in rounds):
#   elect         per cluster, 5 times: kill -9 the leader (the member whose
#                 /v3/maintenance/status names itself leader), poll the
#                 two others' status every 10 ms until one names another
#                 leader: elect_ms from the kill to that, and elect_timeouts
#                 = elect_ms / the election timeout (1 s on both: dsys-raft
#                 node's default, read from its --help, and etcd's); then
#                 the killed member is started again on its data dir and
#                 the next kill waits until it follows the leader and has
#                 caught up with its commit index
# The bars of issue 20 (as ratios of medians, shown, not enforced here):
#   dsys-raft/etcd writes/s >= 3 at c64 and c512, with a p99 no higher;
#   linearizable reads/s >= 2; a new leader within 2 election timeouts
#   (each kill: the worst of the 5 is printed under the table).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/bench/etcd.sh
. "$here/etcd.sh"
bench_init raft-node || exit 1
bench_need wrk etcd curl || exit 1
if ! command -v dsys-raft >/dev/null 2>&1; then
	bench_skip "dsys-raft: not built yet"
	bench_finish
	exit
fi
export DSYS_LOG_LEVEL=warn
BENCH_COLUMNS=${BENCH_COLUMNS_RAFT_NODE:-rps watch_eps p50_us p99_us elect_ms elect_timeouts cpu_us_per_req server_cpu_pct rss_kib}
BENCH_RATIOS=${BENCH_RATIOS_RAFT_NODE:-rps watch_eps p99_us cpu_us_per_req rss_kib}
ELECT_KILLS=5
WATCH_BIN=$DSYS_BUILD/bench/watch_count
servers=()
# Per cluster (server name): the directory of its member scripts mI.sh
# and PID files mI.pid, its members' client ports, its election timeout.
declare -A CL_DIR=() CL_PORTS=() CL_ELECTION_MS=()

# dsys-raft: three members under one shell, as bench_etcd3_tree starts
# etcd's, with the flags `dsys-raft cluster` gives them, client ports fixed.
bench_raft3_tree() {
	local ports=() i rdir initial bin
	bin=$(command -v dsys-raft)
	for i in 1 2 3 4 5 6; do ports+=("$(bench_port)"); done
	rdir=$(bench_dir raft-data)
	initial="n1=http://127.0.0.1:${ports[3]},n2=http://127.0.0.1:${ports[4]},n3=http://127.0.0.1:${ports[5]}"
	for i in 0 1 2; do
		echo "exec '$bin' node --name n$((i + 1)) --data-dir '$rdir/n$((i + 1))'" \
			"--listen-client 127.0.0.1:${ports[i]} --listen-peer 127.0.0.1:${ports[i + 3]}" \
			"--initial-cluster '$initial' >>'$rdir/m$i.log' 2>&1" >"$rdir/m$i.sh"
	done
	{
		echo "trap 'kill \$(jobs -p) 2>/dev/null; wait; exit 0' TERM INT"
		for i in 0 1 2; do
			echo "bash '$rdir/m$i.sh' & echo \$! >'$rdir/m$i.pid'"
		done
		echo wait
	} >"$rdir/run.sh"
	CL_DIR[dsys-raft]=$rdir
	CL_PORTS[dsys-raft]="${ports[*]:0:3}"
	bench_start dsys-raft "${ports[0]}" bash "$rdir/run.sh"
}

# The election timeout `dsys-raft node --help` names as its default, in ms.
raft_election_ms() {
	local v
	v=$(dsys-raft node --help 2>&1 | tr -s ' \n' ' ' |
		sed -n 's/.*--election-timeout[^(]*(default \([0-9][0-9]*\)\(m*s\)).*/\1 \2/p')
	case $v in
	*" ms") echo "${v% ms}" ;;
	*" s") echo $((${v% s} * 1000)) ;;
	*) bench_log "dsys-raft node --help names no default election timeout: taking 1000 ms"; echo 1000 ;;
	esac
}

bench_raft3_tree && servers+=(dsys-raft)
CL_ELECTION_MS[dsys-raft]=$(raft_election_ms)

# etcd: three members under one shell (tests/bench/etcd.sh), so the
# section's CPU sampling sees the whole cluster as one process tree
if bench_etcd3_tree; then
	servers+=(etcd)
	CL_DIR[etcd]=$ETCD_DIR
	CL_PORTS[etcd]="${ETCD_PORTS[*]}"
	CL_ELECTION_MS[etcd]=1000 # etcd's default; etcd.sh sets none
fi

# Each must take a put (so a leader is there) before it is measured.
for s in "${servers[@]}"; do
	ok=
	for ((i = 0; i < 100; i++)); do
		body=$(curl -s --max-time 2 "http://127.0.0.1:${BENCH_PORT[$s]}/v3/kv/put" -d '{"key":"cHJvYmU=","value":"MQ=="}')
		[[ $body == *'"revision"'* ]] && { ok=1; break; }
		sleep 0.1
	done
	[ -n "$ok" ] || { bench_fail "$s: no put answered: '$body'; left out"; bench_stop "$s"; servers=("${servers[@]/$s/}"); }
done
read -r -a servers <<<"${servers[*]}"

# ------------------------------------------------------------ watch-c64

# Ask the watcher for its count: SIGUSR1, then its next line.
watch_events() {
	local pid=$1 out=$2 n i line
	n=$(wc -l <"$out")
	kill -USR1 "$pid" 2>/dev/null || return 1
	for ((i = 0; i < 200; i++)); do
		[ "$(wc -l <"$out")" -gt "$n" ] && break
		sleep 0.01
	done
	line=$(tail -1 "$out")
	[[ $line =~ \"events\":([0-9]+) ]] || return 1
	echo "${BASH_REMATCH[1]}"
}

watch_c64() { # CASE NAME ROUND
	local case=$1 name=$2 round=$3 url wport rev wpid out i ev_run ev_all wticks
	local -a ports script=(-s "$here/raft_put.lua" -- 1000)
	read -r -a ports <<<"${CL_PORTS[$name]}"
	wport=${ports[1]}
	url="http://127.0.0.1:${BENCH_PORT[$name]}/v3/kv/put"
	bench_load wrk -t1 -c64 -d "$BENCH_WARMUP" "$url" "${script[@]}" || {
		bench_fail "$case $name: warm-up failed: $(head -3 "$BENCH_OUT.err")"; return 1; }
	# A linearizable read on the member written to: every put acknowledged
	# so far is at or below its revision, so the watch starts after them.
	rev=$(curl -s --max-time 5 "http://127.0.0.1:${BENCH_PORT[$name]}/v3/kv/range" -d '{"key":"cHJvYmU="}' |
		sed -n 's/.*"header":{[^}]*"revision":"\([0-9][0-9]*\)".*/\1/p')
	[ -n "$rev" ] || { bench_fail "$case $name: no revision read before the watch"; return 1; }
	out=$BENCH_TMP/watch.out
	# bench/ to bench0 (the prefix's range end), in base64
	taskset -c "$BENCH_LOAD_CPU" "$WATCH_BIN" "127.0.0.1:$wport" YmVuY2gv YmVuY2gw $((rev + 1)) \
		</dev/null >"$out" 2>"$BENCH_TMP/watch.err" &
	wpid=$!
	BENCH_AUX_PIDS=$wpid
	for ((i = 0; i < 200; i++)); do
		grep -qs '"ready"' "$out" && break
		bench_alive "$wpid" || break
		sleep 0.02
	done
	if ! grep -q '"ready"' "$out"; then
		bench_fail "$case $name: the watcher did not start: $(head -3 "$BENCH_TMP/watch.err")"
		kill -TERM "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null; BENCH_AUX_PIDS=
		return 1
	fi
	bench_measure "$name" wrk -t1 -c64 -d "$BENCH_DURATION" --latency "$url" "${script[@]}"
	ev_run=$(watch_events "$wpid" "$out")
	wticks=$(bench_cpu_ticks "$wpid")
	if ! bench_wrk_parse "$BENCH_OUT" || [ -z "$ev_run" ]; then
		bench_fail "$case $name: wrk counted no answers or the watcher no events:" \
			"$(head -3 "$BENCH_OUT.err") $(head -3 "$BENCH_TMP/watch.err")"
		kill -TERM "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null; BENCH_AUX_PIDS=
		return 1
	fi
	# The events owed: the revisions the run made (each put makes one; an
	# error answer none, and a put still in flight when wrk stopped, which
	# wrk does not count, one), read as the start revision was.
	local rev_end owed n
	rev_end=$(curl -s --max-time 5 "http://127.0.0.1:${BENCH_PORT[$name]}/v3/kv/range" -d '{"key":"cHJvYmU="}' |
		sed -n 's/.*"header":{[^}]*"revision":"\([0-9][0-9]*\)".*/\1/p')
	[ -n "$rev_end" ] || { bench_fail "$case $name: no revision read after the run"; rev_end=$rev; }
	owed=$((rev_end - rev))
	# What the run left undelivered, for up to 5 s.
	ev_all=$ev_run
	for ((i = 0; i < 50 && ev_all < owed; i++)); do
		sleep 0.1
		n=$(watch_events "$wpid" "$out") || break
		ev_all=$n
	done
	kill -TERM "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	BENCH_AUX_PIDS=
	local watches='?'
	[[ $(tail -1 "$out") =~ \"watches\":([0-9]+) ]] && watches=${BASH_REMATCH[1]}
	local eps cpu_us busy wbusy lag lost
	read -r eps cpu_us busy wbusy < <(awk -v e="$ev_run" -v c="$BENCH_SERVER_CPU_S" -v w="$BENCH_WALL_S" \
		-v n="$WRK_REQUESTS" -v wt="${wticks:-0}" -v hz="$BENCH_TICK" \
		'BEGIN { printf "%.0f %.2f %.0f %.0f\n", e / w, c * 1e6 / n, c * 100 / w, wt / hz * 100 / w }')
	lag=$((owed > ev_run ? owed - ev_run : 0))
	lost=$((owed > ev_all ? owed - ev_all : 0))
	local pct=()
	[ "$WRK_P50_US" -gt 0 ] && pct+=(p50_us="$WRK_P50_US")
	[ "$WRK_P99_US" -gt 0 ] && pct+=(p99_us="$WRK_P99_US")
	bench_record "$case" "$name" "$round" rps="$WRK_RPS" "${pct[@]}" requests="$WRK_REQUESTS" \
		errors="$WRK_ERRORS" watch_eps="$eps" watch_events="$ev_run" watch_lag="$lag" watch_lost="$lost" \
		watch_cpu_pct="$wbusy" \
		cpu_us_per_req="$cpu_us" server_cpu_pct="$busy" rss_kib="$BENCH_RSS_KIB"
	bench_log "$(printf '%-9s round %s %-10s %7.0f put/s %7s events/s  %s puts acked, %s revisions made, %s events by the end, %s after (lost %s; %s watch requests, watcher busy %s%%)%s' \
		"$case" "$round" "$name" "$WRK_RPS" "$eps" "$WRK_REQUESTS" "$owed" "$ev_run" "$ev_all" "$lost" "$watches" "$wbusy" \
		"$([ "$WRK_ERRORS" -gt 0 ] && echo "  ERRORS $WRK_ERRORS")")"
	[ "$lost" -eq 0 ] || bench_fail "$case $name: $lost acknowledged puts never reached the watcher"
}

# ------------------------------------------------------------ elect

# A member's status: "MEMBER_ID LEADER RAFT_INDEX" (LEADER 0: none known).
member_status() {
	local body id lead=0 idx=0
	body=$(curl -s --max-time 0.5 "http://127.0.0.1:$1/v3/maintenance/status" -d '{}') || return 1
	[[ $body =~ \"member_id\":\"([0-9]+)\" ]] || return 1
	id=${BASH_REMATCH[1]}
	[[ $body =~ \"leader\":\"([0-9]+)\" ]] && lead=${BASH_REMATCH[1]}
	[[ $body =~ \"raftIndex\":\"([0-9]+)\" ]] && idx=${BASH_REMATCH[1]}
	echo "$id $lead $idx"
}

# The PID of member I of cluster NAME: started again by us, or by its shell.
member_pid() {
	local name=$1 i=$2
	if [ -n "${BENCH_PID[$name-m$i]:-}" ]; then
		echo "${BENCH_PID[$name-m$i]}"
	else
		cat "${CL_DIR[$name]}/m$i.pid"
	fi
}

# Member I of NAME again, from its script, pinned as its shell's members
# are, registered as server NAME-mI so every exit path stops it by PID.
# Disowned, so that its kill -9 is not reported as a killed job.
member_restart() {
	local name=$1 i=$2 dir
	dir=$(bench_dir "$name-m$i") || return 1
	(cd "$dir" && exec taskset -c "$BENCH_SERVER_CPU" bash "${CL_DIR[$name]}/m$i.sh") \
		</dev/null >"$dir/stdout" 2>"$dir/stderr" 3>&- &
	BENCH_PID[$name-m$i]=$!
	disown "$!"
}

elect_run() { # NAME
	local name=$1 ports ids=() k i t li st t0 t1 ms x pid lead idx id l lidx ok
	read -r -a ports <<<"${CL_PORTS[$name]}"
	for i in 0 1 2; do
		st=$(member_status "${ports[i]}") || { bench_fail "elect $name: member $i answers no status"; return 1; }
		ids[i]=${st%% *}
	done
	for ((k = 1; k <= ELECT_KILLS; k++)); do
		li=
		for ((t = 0; t < 300 && ${#li} == 0; t++)); do
			for i in 0 1 2; do
				read -r id lead idx < <(member_status "${ports[i]}") || continue
				[ "$lead" = "$id" ] && { li=$i; break; }
			done
			[ -n "$li" ] || sleep 0.1
		done
		[ -n "$li" ] || { bench_fail "elect $name: no member says it leads"; return 1; }
		pid=$(member_pid "$name" "$li")
		t0=$EPOCHREALTIME
		kill -KILL "$pid" || { bench_fail "elect $name: cannot kill member $li (pid $pid)"; return 1; }
		ok=
		for ((t = 0; t < 3000 && ${#ok} == 0; t++)); do
			for i in 0 1 2; do
				((i == li)) && continue
				read -r id lead idx < <(member_status "${ports[i]}") || continue
				if [ "$lead" != 0 ] && [ "$lead" != "${ids[li]}" ]; then
					t1=$EPOCHREALTIME
					ok=1
					break
				fi
			done
			[ -n "$ok" ] || sleep 0.01
		done
		[ -n "$ok" ] || { bench_fail "elect $name: no new leader 30 s after the kill"; return 1; }
		read -r ms x < <(awk -v a="$t0" -v b="$t1" -v e="${CL_ELECTION_MS[$name]}" \
			'BEGIN { ms = (b - a) * 1000; printf "%.0f %.2f\n", ms, ms / e }')
		bench_record elect "$name" "$k" elect_ms="$ms" elect_timeouts="$x" \
			election_timeout_ms="${CL_ELECTION_MS[$name]}"
		bench_log "$(printf 'elect     kill %s %-10s member %s: a new leader in %5s ms (%s election timeouts)' \
			"$k" "$name" "$li" "$ms" "$x")"
		# Back on its data before the next kill: following the leader and
		# caught up with its commit index (nothing writes meanwhile).
		member_restart "$name" "$li"
		ok=
		for ((t = 0; t < 600 && ${#ok} == 0; t++)); do
			sleep 0.1
			read -r id l idx < <(member_status "${ports[li]}") || continue
			[ "$l" != 0 ] || continue
			for i in 0 1 2; do
				[ "${ids[i]}" = "$l" ] || continue
				read -r _ _ lidx < <(member_status "${ports[i]}") || continue
				((idx >= lidx)) && ok=1
			done
		done
		[ -n "$ok" ] || { bench_fail "elect $name: member $li not back 60 s after its start"; return 1; }
	done
}

for c in 1 64 512; do
	bench_rounds "c$c" "${servers[*]}" bench_wrk /v3/kv/put -c"$c" -s "$here/raft_put.lua" -- 1000
done
bench_rounds range-c64 "${servers[*]}" bench_wrk /v3/kv/range -c64 -s "$here/raft_put.lua" -- 1000 range
if [ -x "$WATCH_BIN" ]; then
	bench_rounds watch-c64 "${servers[*]}" watch_c64
elif bench_want watch-c64; then
	bench_skip "watch-c64: $WATCH_BIN not built"
fi
if bench_want elect; then
	for s in "${servers[@]}"; do
		elect_run "$s"
	done
else
	bench_skip "case elect (not in BENCH_CASES)"
fi
bench_stop_all
echo
bench_report etcd
# The bar is on every kill, not on the median: the worst of each.
awk -F'\t' '$1 == "elect" && $4 == "elect_timeouts" { k[$2]++; if (!($2 in w) || $5 > w[$2]) w[$2] = $5 }
	END { for (s in w) printf "elect  %s: the slowest of %d elections took %s election timeouts (bar: 2)\n", s, k[s], w[s] }' \
	"$BENCH_SAMPLES"
bench_finish
