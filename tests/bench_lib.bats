#!/usr/bin/env bats
# tests/bench/lib.sh: the arithmetic make bench's tables and ratios rest on.
#
# make bench itself is never run by make test (timings on a shared machine
# are no test), but what it prints from its samples is: the median of the
# rounds per server, and a ratio that is the median of the per-round ratios,
# so that a neighbour's load drifting across a section cancels out.  These
# tests feed bench_report samples with a known answer.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	dsys_setup
	BT=$BATS_TEST_TMPDIR/bench
	mkdir -p "$BT"
}
teardown() { dsys_teardown; }

# report BASE < samples.tsv: run bench_report on the given samples.
report() {
	cat >"$BT/samples.tsv"
	(
		# shellcheck source=tests/bench/lib.sh
		. "$BATS_TEST_DIRNAME/bench/lib.sh"
		BENCH_SECTION=t BENCH_SAMPLES=$BT/samples.tsv BENCH_TMP=$BT \
			BENCH_RESULTS=$BT/results.jsonl BENCH_COLUMNS="rps cpu_us_per_req" \
			BENCH_RATIOS="rps cpu_us_per_req" BENCH_ROUNDS=3 BENCH_ROW_LABEL=server \
			bench_report "$1"
	)
}

@test "bench lib: the table holds each server's median of the rounds" {
	run --separate-stderr report a <<-EOF
	c100	a	1	rps	100
	c100	a	2	rps	70
	c100	a	3	rps	90
	c100	b	1	rps	50
	c100	b	2	rps	60
	c100	b	3	rps	40
	EOF
	[ "$status" -eq 0 ]
	[[ "$output" =~ c100\ +a\ +90 ]]
	[[ "$output" =~ c100\ +b\ +50 ]]
	jq -s -e '[.[] | select(.server == "a")][0] | .rps == 90 and .samples == 3' "$BT/results.jsonl"
	jq -s -e '[.[] | select(.server == "b")][0] | .rps == 50' "$BT/results.jsonl"
}

@test "bench lib: a ratio is the median of the rounds' own ratios, not a ratio of medians" {
	# per-round ratios a/b: 2.0, 0.9, 2.0 -> 2; the medians' ratio would be 1.8
	run --separate-stderr report a <<-EOF
	c100	a	1	rps	100
	c100	b	1	rps	50
	c100	b	2	rps	100
	c100	a	2	rps	90
	c100	a	3	rps	80
	c100	b	3	rps	40
	EOF
	[ "$status" -eq 0 ]
	[[ "$output" =~ vs\ b\ +req/s\ 2\.00x ]]
	jq -s -e '[.[] | select(.ratio == "a/b")][0] | .rps == 2' "$BT/results.jsonl"
}

@test "bench lib: a round one server missed is left out of the ratio, not misaligned" {
	# b has no sample in round 2; rounds 1 and 3 give 0.5 and 0.5
	run --separate-stderr report a <<-EOF
	c100	a	1	cpu_us_per_req	10
	c100	b	1	cpu_us_per_req	20
	c100	a	2	cpu_us_per_req	1
	c100	a	3	cpu_us_per_req	12
	c100	b	3	cpu_us_per_req	24
	EOF
	[ "$status" -eq 0 ]
	jq -s -e '[.[] | select(.ratio == "a/b")][0] | .cpu_us_per_req == 0.5' "$BT/results.jsonl"
}

@test "bench lib: another section's earlier results are kept, this section's replaced" {
	printf '%s\n' '{"section":"other","case":"x","server":"z","rps":1}' \
		'{"section":"t","case":"old","server":"z","rps":1}' >"$BT/results.jsonl"
	run --separate-stderr report a <<-EOF
	c1	a	1	rps	10
	EOF
	[ "$status" -eq 0 ]
	[ "$(jq -r 'select(.section == "other") | .server' "$BT/results.jsonl")" = z ]
	[ "$(jq -c 'select(.section == "t" and .case == "old")' "$BT/results.jsonl")" = "" ]
	jq -s -e '[.[] | select(.section == "t" and .case == "c1")][0] | .rps == 10' "$BT/results.jsonl"
}

# cg SCRIPT: run SCRIPT in a shell that sourced lib.sh, with one "server"
# (a sleep) started through bench_start; bench_cleanup on exit as in a section.
cg() {
	(
		# shellcheck source=tests/bench/lib.sh
		. "$BATS_TEST_DIRNAME/bench/lib.sh"
		bench_init t >/dev/null 2>&1 || exit 99
		BENCH_SERVER_CPU=0
		sleep 30 </dev/null >/dev/null 2>&1 3>&- &
		BENCH_PID[s]=$!
		eval "$1"
	)
}

@test "bench lib: without a writable cgroup cpu controller the limit says it is skipped, and fails" {
	BENCH_CGROUP_ROOT=$BT/nothing-here run --separate-stderr cg 'bench_cgroup_limit s 5000 1000'
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"skipped: no writable cgroup v1 cpu controller at $BT/nothing-here"* ]]
}

@test "bench lib: bench_cgroup_limit puts a server in a CPU-limited group, which goes on exit" {
	[ -w /sys/fs/cgroup/cpu/cgroup.procs ] || skip "no writable cgroup v1 cpu controller here"
	run --separate-stderr cg 'bench_cgroup_limit s 5000 1000 || exit 1
		d=${BENCH_CGROUP[s]}
		echo "dir $d"
		echo "quota $(cat "$d/cpu.cfs_quota_us") $(cat "$d/cpu.cfs_period_us")"
		grep -qx "${BENCH_PID[s]}" "$d/cgroup.procs" && echo "in group"
		echo "stat $(bench_cgroup_stat s | wc -w)"'
	[ "$status" -eq 0 ]
	[ "${lines[1]}" = "quota 1000 5000" ]
	[ "${lines[2]}" = "in group" ]
	[ "${lines[3]}" = "stat 3" ]
	dir=${lines[0]#dir }
	[[ "$dir" == /sys/fs/cgroup/cpu/dsys-bench-* ]]
	[ ! -e "$dir" ]   # removed by bench_cleanup, the sleep stopped first
}

@test "bench lib: a process left in a bench cgroup at exit (outside the server's tree) is killed, said, and the group goes" {
	[ -w /sys/fs/cgroup/cpu/cgroup.procs ] || skip "no writable cgroup v1 cpu controller here"
	run --separate-stderr cg 'bench_cgroup_limit s 5000 1000 || exit 1
		d=${BENCH_CGROUP[s]}
		sleep 300 </dev/null >/dev/null 2>&1 3>&- &
		o=$!
		echo "$o" >"$d/cgroup.procs"
		disown "$o"
		echo "dir $d"
		echo "orphan $o"'
	[ "$status" -eq 0 ]
	dir=${lines[0]#dir }
	o=${lines[1]#orphan }
	[ -n "$o" ]
	[ ! -e "$dir" ]
	run kill -0 "$o"
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"pid $o was left in it; killed"* ]]
}
