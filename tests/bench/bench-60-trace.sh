#!/usr/bin/env bash
# make bench, section "trace": what `dsys-trace exec` adds to a command.
#
# Rows (each BENCH_ROUNDS rounds, order reversed every other round), each
# BENCH_TRACE_RUNS (200) runs of /bin/true one after another, pinned to
# CPU $BENCH_LOAD_CPU:
#   true        /bin/true alone
#   exec        dsys-trace exec -- /bin/true, no exporter set
#   exec-file   the same, each span appended to DSYS_TRACE_FILE
# Columns: us_per_run, the mean wall time of one run, and overhead_us, the
# difference to true of the same round (issue 18's bar: at most 2000).
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
BENCH_ROW_LABEL=run
BENCH_COLUMNS="us_per_run overhead_us"
BENCH_RATIOS=""
bench_init trace || exit 1
if ! command -v dsys-trace >/dev/null 2>&1; then
	bench_skip "trace: dsys-trace not built"
	exit 0
fi
runs=${BENCH_TRACE_RUNS:-200}
spans=$(bench_dir trace)/spans.jsonl
declare -A true_us

loop() { # CASE NAME ROUND
	local t0 t1 us
	local -a cmd=(/bin/true)
	case $2 in
	exec | exec-file) cmd=("$(command -v dsys-trace)" exec -- /bin/true) ;;
	esac
	t0=$(date +%s%N)
	if [ "$2" = exec-file ]; then
		DSYS_TRACE_FILE=$spans taskset -c "$BENCH_LOAD_CPU" bash -c \
			'for ((i = 0; i < $1; i++)); do "${@:2}"; done' _ "$runs" "${cmd[@]}"
	else
		env -u DSYS_TRACE_FILE -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_EXPORTER_OTLP_TRACES_ENDPOINT \
			taskset -c "$BENCH_LOAD_CPU" bash -c \
			'for ((i = 0; i < $1; i++)); do "${@:2}"; done' _ "$runs" "${cmd[@]}"
	fi || { bench_fail "$2: status $?"; return 1; }
	t1=$(date +%s%N)
	us=$(((t1 - t0) / 1000 / runs))
	[ "$2" = true ] && true_us[$3]=$us
	bench_record "$1" "$2" "$3" us_per_run="$us" overhead_us="$((us - ${true_us[$3]:-$us}))"
}

# true first in every round, so each exec row has its round's baseline
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
	bench_want exec-true || break
	loop exec-true true "$r"
	for name in $(bench_order "$r" exec exec-file); do
		loop exec-true "$name" "$r"
	done
done
bench_report ""
bench_finish
exit
