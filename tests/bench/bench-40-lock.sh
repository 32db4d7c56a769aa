#!/usr/bin/env bash
# make bench, section "lock": dsys-lock on file:, redis:// and a 3-node etcd.
#
# Stores run on CPU $BENCH_SERVER_CPU (redis-server; three etcd members on
# loopback); the loads on CPU $BENCH_LOAD_CPU.  A just-started etcd first
# takes BENCH_LOCK_ETCD_WARM (300) untimed acquire+release pairs.  Cases,
# each BENCH_ROUNDS rounds with the stores' order reversed every other round:
#   acqrel     uncontended acquire+release pairs, BENCH_LOCK_PAIRS (300) in
#              one process (tests/bench/lock_cli): p50_us, p99_us of a pair
#              (issue 16's bars: p50 under 1000 on file: and redis://,
#              under 5000 on etcd)
#   handoff8   8 processes take and give back one lock for BENCH_LOCK_SECS
#              (3): handoffs_per_s, all grants over the wall time
#   cmd        BENCH_LOCK_CMDS (60) commands one after another, after
#              BENCH_LOCK_CMD_WARM (10) untimed ones of the same kind (a
#              3-node etcd just started answers its first writes slower:
#              one warm-up left round 1's first command kind ~30% slow),
#              wall time per command (us_per_cmd, the mean; p50_us), each
#              started by tests/bench/cmdtime (posix_spawn, no shell):
#              dsys-lock run NAME -- true on file:
#              and etcd, etcdctl lock NAME -- true, flock FILE true; and
#              the floors, each program starting and doing nothing:
#              dsys-lock --version, etcdctl version
#   cmd-ratio  the median of per-round ratios: etcdctl/dsys-lock on etcd
#              (the bar: at least 3) and dsys-lock on file:/flock (the
#              bar: at most 2)
# Check it with short settings, e.g.
#   BENCH_ROUNDS=1 BENCH_LOCK_PAIRS=20 BENCH_LOCK_SECS=1 BENCH_LOCK_CMDS=5 BENCH_LOCK_CMD_WARM=1 \
#       tests/bench/bench-40-lock.sh
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/bench/etcd.sh
. "$here/etcd.sh"
BENCH_ROW_LABEL=store
BENCH_COLUMNS="p50_us p99_us handoffs_per_s us_per_cmd ratio"
BENCH_RATIOS=""
bench_init lock || exit 1
CLI=$DSYS_BUILD/bench/lock_cli
CMDTIME=$DSYS_BUILD/bench/cmdtime
if ! command -v dsys-lock >/dev/null 2>&1 || [ ! -x "$CLI" ] || [ ! -x "$CMDTIME" ]; then
	bench_skip "lock: dsys-lock, $CLI or $CMDTIME not built"
	exit 0
fi
pairs=${BENCH_LOCK_PAIRS:-300}
secs=${BENCH_LOCK_SECS:-3}
cmds=${BENCH_LOCK_CMDS:-60}
cmdwarm=${BENCH_LOCK_CMD_WARM:-10}
filedir=$(bench_dir filelocks)
declare -A URL=([file]="file:$filedir")
names="file"

if bench_need redis-server; then
	port=$(bench_port)
	if bench_start redis "$port" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no; then
		URL[redis]="redis://127.0.0.1:$port"
		names+=" redis"
	fi
fi

# three etcd members, started together (one alone waits for its quorum)
etcd_ok=0
if bench_need etcd etcdctl; then
	bench_etcd3 && etcd_ok=1
	if [ $etcd_ok = 1 ]; then
		URL[etcd3]=$ETCD_URL
		names+=" etcd3"
		bench_log "etcd: 3 members at $ETCD_EPS"
		# A just-started etcd answers its first few hundred writes slower
		# (Go's heap and stacks growing, bbolt's first pages): without this,
		# round 1 of cmd ran dsys-lock 20-50% slower than the later rounds,
		# whichever went first.  Untimed, for every case and both clients.
		taskset -c "$BENCH_LOAD_CPU" "$CLI" "$ETCD_URL" latency etcd-warm "${BENCH_LOCK_ETCD_WARM:-300}" \
			>/dev/null 2>&1 || bench_fail "etcd: the warm-up's lock pairs failed"
	else
		bench_fail "etcd: the 3 members did not become healthy"
	fi
fi

acqrel() { # CASE NAME ROUND
	taskset -c "$BENCH_LOAD_CPU" "$CLI" "${URL[$2]}" latency warm 20 >/dev/null 2>&1
	if ! taskset -c "$BENCH_LOAD_CPU" "$CLI" "${URL[$2]}" latency "bench-$3" "$pairs" >"$BENCH_OUT" 2>"$BENCH_OUT.err"; then
		bench_fail "$1 $2: $(head -1 "$BENCH_OUT.err")"
		return 1
	fi
	local p50 p99
	p50=$(sed -n 's/.*"p50_us":\([0-9]*\).*/\1/p' "$BENCH_OUT")
	p99=$(sed -n 's/.*"p99_us":\([0-9]*\).*/\1/p' "$BENCH_OUT")
	bench_record "$1" "$2" "$3" p50_us="$p50" p99_us="$p99"
	bench_log "$(printf '%-9s round %s %-6s p50 %6s us  p99 %6s us' "$1" "$3" "$2" "$p50" "$p99")"
}

handoff() { # CASE NAME ROUND
	local pids=() i total=0 g t0 t1
	t0=$(date +%s%N)
	for i in 1 2 3 4 5 6 7 8; do
		taskset -c "$BENCH_LOAD_CPU" "$CLI" "${URL[$2]}" handoff "ho-$3" "$secs" \
			>"$BENCH_TMP/ho.$i" 2>"$BENCH_TMP/ho.$i.err" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || bench_fail "$1 $2: a contender failed"; done
	t1=$(date +%s%N)
	for i in 1 2 3 4 5 6 7 8; do
		g=$(sed -n 's/.*"grants":\([0-9]*\).*/\1/p' "$BENCH_TMP/ho.$i")
		total=$((total + ${g:-0}))
	done
	local rate
	rate=$(awk -v n="$total" -v ns="$((t1 - t0))" 'BEGIN { printf "%.0f", n * 1e9 / ns }')
	bench_record "$1" "$2" "$3" handoffs_per_s="$rate"
	bench_log "$(printf '%-9s round %s %-6s %6s handoffs/s' "$1" "$3" "$2" "$rate")"
}

# etcdctl 3.4 speaks v3 by default; exported, not through env(1), so that
# its commands are not timed with an exec of env in front
export ETCDCTL_API=3
declare -A cmd_us
percmd() { # CASE NAME ROUND
	local p50 flockfile=$filedir/flock.file
	local -a cmd
	case $2 in
	dsys-lock-file) cmd=(dsys-lock run cmd --store "${URL[file]}" -- true) ;;
	dsys-lock-etcd) cmd=(dsys-lock run cmd --store "${URL[etcd3]}" -- true) ;;
	etcdctl) cmd=(etcdctl --endpoints "$ETCD_EPS" lock cmd -- true) ;;
	flock) cmd=(flock "$flockfile" true) ;;
	dsys-lock-version) cmd=(dsys-lock --version) ;;
	etcdctl-version) cmd=(etcdctl version) ;;
	esac
	# cmdtime spawns each command itself (no bash fork in the time: see
	# tests/bench/cmdtime.c), cmdwarm untimed runs first
	if ! taskset -c "$BENCH_LOAD_CPU" "$CMDTIME" --warm "$cmdwarm" "$cmds" "${cmd[@]}" \
		>"$BENCH_OUT" 2>"$BENCH_OUT.err"; then
		bench_fail "$1 $2: a command failed: $(head -1 "$BENCH_OUT.err")"
		return 1
	fi
	cmd_us[$2.$3]=$(sed -n 's/.*"mean_us":\([0-9]*\).*/\1/p' "$BENCH_OUT")
	p50=$(sed -n 's/.*"p50_us":\([0-9]*\).*/\1/p' "$BENCH_OUT")
	bench_record "$1" "$2" "$3" us_per_cmd="${cmd_us[$2.$3]}" p50_us="$p50"
	bench_log "$(printf '%-9s round %s %-17s %8s us per command (mean), p50 %s' "$1" "$3" "$2" "${cmd_us[$2.$3]}" "$p50")"
}

# shellcheck disable=SC2086
bench_rounds acqrel "$names" acqrel
# shellcheck disable=SC2086
bench_rounds handoff8 "$names" handoff
cmdnames="dsys-lock-file flock dsys-lock-version"
[ $etcd_ok = 1 ] && cmdnames="dsys-lock-etcd etcdctl $cmdnames etcdctl-version"
# shellcheck disable=SC2086
bench_rounds cmd "$cmdnames" percmd
if bench_want cmd; then
	for ((r = 1; r <= BENCH_ROUNDS; r++)); do
		if [ $etcd_ok = 1 ] && [ -n "${cmd_us[etcdctl.$r]:-}" ] && [ -n "${cmd_us[dsys-lock-etcd.$r]:-}" ]; then
			bench_record cmd-ratio etcdctl/dsys-lock-etcd "$r" \
				ratio="$(awk -v a="${cmd_us[etcdctl.$r]}" -v b="${cmd_us[dsys-lock-etcd.$r]}" 'BEGIN { printf "%.2f", a / b }')"
		fi
		if [ -n "${cmd_us[dsys-lock-file.$r]:-}" ] && [ -n "${cmd_us[flock.$r]:-}" ]; then
			bench_record cmd-ratio dsys-lock-file/flock "$r" \
				ratio="$(awk -v a="${cmd_us[dsys-lock-file.$r]}" -v b="${cmd_us[flock.$r]}" 'BEGIN { printf "%.2f", a / b }')"
		fi
	done
fi
bench_report ""
bench_finish
exit
