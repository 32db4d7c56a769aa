#!/usr/bin/env bats
# Monitoring: what every dsys server exposes on /metrics is read by the
# real tools -- promtool's linter, a real Prometheus scraping it, the
# rules in examples/prometheus and every query of examples/grafana/dsys.json.

load helpers

setup() {
	dsys_setup
	EX="$BATS_TEST_DIRNAME/../examples"
}
teardown() { dsys_teardown; }

# start_raft: a one-node dsys-raft cluster on free ports, RAFT_PORT its
# client port; waits until it leads and has written a key (so its fsync
# histogram has samples).
start_raft() {
	local dir=$BATS_TEST_TMPDIR/raft i pp
	mkdir -p "$dir"
	RAFT_PORT=$(free_port)
	pp=$(free_port)
	dsys-raft node --name n1 --data-dir "$dir/n1" --listen-client "127.0.0.1:$RAFT_PORT" \
		--listen-peer "127.0.0.1:$pp" --initial-cluster "n1=http://127.0.0.1:$pp" \
		--heartbeat-interval 50ms --election-timeout 300ms >"$dir/out" 2>"$dir/err" 3>&- &
	DSYS_SERVER_PIDS+=($!)
	wait_ready "$dir/out" "$!" >/dev/null || return 1
	for ((i = 0; i < 100; i++)); do
		curl -sf "http://127.0.0.1:$RAFT_PORT/metrics" | grep -qx 'raft_is_leader 1' && break
		sleep 0.1
	done
	raft_put k v
}

# raft_put KEY VALUE: a write through etcd's v3 JSON API
raft_put() {
	curl -sf "http://127.0.0.1:$RAFT_PORT/v3/kv/put" \
		-d "{\"key\":\"$(printf %s "$1" | base64)\",\"value\":\"$(printf %s "$2" | base64)\"}" >/dev/null
}

# promtool_lint PORT: fetch /metrics and run promtool's linter on it.
promtool_lint() {
	curl -sf "http://127.0.0.1:$1/metrics" >"$BATS_TEST_TMPDIR/metrics.txt"
	run promtool check metrics <"$BATS_TEST_TMPDIR/metrics.txt"
	assert_success
	refute_output
}

# dashboard_exprs: every PromQL expression of the dashboard, one a line,
# with Grafana's $__rate_interval made concrete for our 1 s scrapes.
dashboard_exprs() {
	jq -r '.. | objects | select(has("expr")) | .expr | gsub("\n"; " ")' "$EX/grafana/dsys.json" |
		sed 's/\$__rate_interval/15s/g'
}

# start_prometheus CONFIG: run Prometheus on a free loopback port with a
# fresh data directory; set PROM_PORT and wait until it says it is ready.
start_prometheus() {
	local dir=$BATS_TEST_TMPDIR/prom i
	mkdir -p "$dir/data"
	PROM_PORT=$(free_port)
	prometheus --config.file="$1" --storage.tsdb.path="$dir/data" \
		--web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn \
		>"$dir/out" 2>"$dir/err" 3>&- &
	PROM_PID=$!
	DSYS_SERVER_PIDS+=("$PROM_PID")
	for ((i = 0; i < 600; i++)); do
		curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null && return 0
		kill -0 "$PROM_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$dir/err" >&2
	return 1
}

# prom_query EXPR: the JSON answer of an instant query.
prom_query() {
	curl -sfG "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1"
}

@test "prometheus: dsys-serve's /metrics passes promtool check metrics" {
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 2
	curl -s "http://127.0.0.1:$SERVER_PORT/hello" >/dev/null
	curl -s "http://127.0.0.1:$SERVER_PORT/nowhere" >/dev/null
	curl -s "http://127.0.0.1:$SERVER_PORT/health" >/dev/null
	promtool_lint "$SERVER_PORT"
	for m in process_cpu_seconds_total process_resident_memory_bytes process_open_fds \
		process_start_time_seconds http_requests_total http_request_duration_seconds; do
		grep -q "^# TYPE $m " "$BATS_TEST_TMPDIR/metrics.txt"
	done
	grep -q '^http_request_duration_seconds_bucket{le="0.0001"} ' "$BATS_TEST_TMPDIR/metrics.txt"
}

@test "prometheus: dsys-counter serve's /metrics passes promtool check metrics, backend round trips included" {
	start_server counter dsys-counter serve --listen 127.0.0.1:0 --threads 1
	curl -s -XPOST "http://127.0.0.1:$SERVER_PORT/incr" -d '{"key":"a"}' >/dev/null
	curl -s "http://127.0.0.1:$SERVER_PORT/counters/a" >/dev/null
	curl -s -XPOST "http://127.0.0.1:$SERVER_PORT/incr" -d 'nonsense' >/dev/null
	promtool_lint "$SERVER_PORT"
	grep -q '^counter_backend_duration_seconds_count{op="incr"} 1$' "$BATS_TEST_TMPDIR/metrics.txt"
	grep -q '^counter_backend_duration_seconds_count{op="get"} 1$' "$BATS_TEST_TMPDIR/metrics.txt"
	grep -q '^http_requests_total{route="/incr",code="400"} 1$' "$BATS_TEST_TMPDIR/metrics.txt"
}

@test "prometheus: dsys-raft node's /metrics passes promtool check metrics, with the families the dashboard reads" {
	start_raft
	promtool_lint "$RAFT_PORT"
	local f
	for f in raft_term raft_is_leader raft_commit_index raft_apply_index raft_wal_fsync_duration_seconds_bucket; do
		grep -q "^$f[ {]" "$BATS_TEST_TMPDIR/metrics.txt" || { echo "no $f" >&2; false; }
	done
	grep -qx 'raft_is_leader 1' "$BATS_TEST_TMPDIR/metrics.txt"
}

@test "prometheus: dsys-trace collect's /metrics passes promtool check metrics" {
	start_server collect dsys-trace collect --listen 127.0.0.1:0
	promtool_lint "$SERVER_PORT"
	grep -q '^process_cpu_seconds_total ' "$BATS_TEST_TMPDIR/metrics.txt"
}

@test "prometheus: the example rules pass promtool check rules and their unit tests" {
	run promtool check rules "$EX/prometheus/rules.yml"
	assert_success
	run promtool test rules "$EX/prometheus/rules_test.yml"
	assert_success
	assert_output --partial SUCCESS
}

@test "prometheus: the dashboard is Grafana JSON whose panels all carry PromQL" {
	run jq -e '.title == "dsys" and (.panels | length) > 8' "$EX/grafana/dsys.json"
	assert_success
	run dashboard_exprs
	assert_success
	[ "${#lines[@]}" -ge 15 ]
	# every query the must-return-data rule exempts is named in LATER_METRICS
	run bash -c "grep -c 'raft_' <<<\"\$1\"" _ "$(dashboard_exprs)"
	[ "$output" -eq 4 ]
}

@test "prometheus: a real Prometheus scrapes dsys-serve, dsys-counter serve and dsys-raft under load, every target is up and every dashboard query returns data" {
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1
	local serve_port=$SERVER_PORT
	start_server counter dsys-counter serve --listen 127.0.0.1:0 --threads 1
	local counter_port=$SERVER_PORT
	start_raft
	local cfg=$BATS_TEST_TMPDIR/prometheus.yml
	cp "$EX/prometheus/rules.yml" "$BATS_TEST_TMPDIR/rules.yml"
	cat >"$cfg" <<-EOF
		global:
		  scrape_interval: 1s
		  evaluation_interval: 1s
		rule_files: [rules.yml]
		scrape_configs:
		  - job_name: serve
		    static_configs: [{targets: ['127.0.0.1:$serve_port']}]
		  - job_name: counter
		    static_configs: [{targets: ['127.0.0.1:$counter_port']}]
		  - job_name: raft
		    static_configs: [{targets: ['127.0.0.1:$RAFT_PORT']}]
	EOF
	start_prometheus "$cfg"

	# load on both, some of it failing (404, 400), for about 6 s so that
	# rates over 15 s windows see several scrapes of it
	dsys-bench -c 2 -t 1 --rate 200/s -d 6s "http://127.0.0.1:$serve_port/hello" \
		"http://127.0.0.1:$serve_port/missing" >"$BATS_TEST_TMPDIR/b1.json" &
	local b1=$!
	# and writes to the raft node, so that its fsync histogram moves
	for ((i = 0; i < 30; i++)); do raft_put "k$i" "$i"; sleep 0.2; done &
	local puts=$!
	dsys-bench -c 2 -t 1 --rate 200/s -d 6s -m POST -b '{"key":"k","by":1}' \
		"http://127.0.0.1:$counter_port/incr" >"$BATS_TEST_TMPDIR/b2.json"
	wait "$b1"
	wait "$puts"
	curl -s -XPOST "http://127.0.0.1:$counter_port/incr" -d 'bad' >/dev/null

	# every target up
	local i up=
	for ((i = 0; i < 100; i++)); do
		up=$(curl -sf "http://127.0.0.1:$PROM_PORT/api/v1/targets" |
			jq -r '[.data.activeTargets[] | .health] | join(",")')
		[ "$up" = "up,up,up" ] && break
		sleep 0.2
	done
	[ "$up" = "up,up,up" ]
	run prom_query 'sum(up)'
	assert_success
	[ "$(jq -r '.data.result[0].value[1]' <<<"$output")" = 3 ]

	# every dashboard query parses and returns series
	local expr answer n failed=0 checked=0
	while IFS= read -r expr; do
		answer=$(prom_query "$expr") || { echo "does not parse: $expr" >&2; failed=1; continue; }
		[ "$(jq -r .status <<<"$answer")" = success ] || { echo "failed: $expr" >&2; failed=1; continue; }
		checked=$((checked + 1))
		# a scrape a busy machine delayed may leave a window short of
		# samples for a moment: ask again, a few seconds at most
		for ((i = 0; i < 20; i++)); do
			n=$(jq '.data.result | length' <<<"$answer")
			[ "$n" -gt 0 ] && break
			sleep 0.25
			answer=$(prom_query "$expr")
		done
		[ "$n" -gt 0 ] || { echo "no data: $expr" >&2; failed=1; }
	done < <(dashboard_exprs)
	[ "$failed" -eq 0 ] || { curl -s "http://127.0.0.1:$PROM_PORT/api/v1/targets" >&2; false; }
	[ "$checked" -ge 15 ]

	# the recording rules (evaluated every 15 s) see the traffic of every job
	local jobs=
	for ((i = 0; i < 150; i++)); do
		jobs=$(prom_query 'job:http_requests:rate1m > 0' | jq -r '[.data.result[].metric.job] | sort | join(",")')
		[ "$jobs" = "counter,raft,serve" ] && break
		sleep 0.2
	done
	[ "$jobs" = "counter,raft,serve" ]
	run prom_query 'sum(counter_backend_duration_seconds_count{op="incr"})'
	assert_success
	[ "$(jq -r '.data.result[0].value[1] | tonumber > 1000' <<<"$output")" = true ]
}
