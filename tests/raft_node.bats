#!/usr/bin/env bats
# dsys-raft node and cluster: real processes on loopback, a WAL on disk,
# etcd's v3 JSON API checked with curl, with lib/store/etcd (etcd_cli) and
# against a real etcd 3.4 answering the same requests.

load helpers
load etcd_helpers
load raft_helpers
bats_require_minimum_version 1.5.0

setup() {
	raft_setup CLI
}

teardown() {
	[[ -n ${WATCH_PID:-} ]] && { kill "$WATCH_PID" 2>/dev/null; wait "$WATCH_PID" 2>/dev/null; }
	raft_teardown
	dsys_teardown
}

@test "raft node: a 3-node cluster elects one leader, every member is healthy and reports it in /metrics" {
	raft_cluster 3
	raft_start_all
	lead=$(raft_wait_leader)
	for m in 0 1 2; do
		run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[m]}/health"
		[ "$(jq -r .leader <<<"$output")" -eq $((lead + 1)) ]
	done
	run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[lead]}/metrics"
	assert_line 'raft_is_leader 1'
	assert_line --regexp '^raft_term [1-9]'
	assert_line --regexp '^raft_leader_changes_total [1-9]'
	assert_output --partial 'raft_wal_fsync_duration_seconds_count'
	assert_output --partial 'raft_apply_duration_seconds_bucket'
}

@test "raft node: a member alone answers /health 503, then 200 once a majority is up" {
	raft_cluster 3
	raft_start 0
	run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${RAFT_CPORTS[0]}/health"
	assert_output 503
	raft_start 1
	raft_wait_leader >/dev/null
	run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${RAFT_CPORTS[0]}/health"
	assert_output 200
}

@test "raft node: a put on one member is read on every member, via curl and via lib/store/etcd" {
	raft_cluster 3
	raft_start_all
	lead=$(raft_wait_leader)
	f=$(( (lead + 1) % 3 ))   # a follower: it forwards the put to the leader
	run -0 post "${RAFT_CPORTS[f]}" /v3/kv/put "{\"key\":\"$(b64 greeting)\",\"value\":\"$(b64 'hello world')\"}"
	[ "$(field "$output" '["header"]["revision"]')" = '"2"' ]
	# the header names the member spoken to, as etcd's does
	me=$(post "${RAFT_CPORTS[f]}" /v3/maintenance/status '{}' | jq -r .header.member_id)
	[ "$(jq -r .header.member_id <<<"$output")" = "$me" ]
	for m in 0 1 2; do
		run -0 post "${RAFT_CPORTS[m]}" /v3/kv/range "{\"key\":\"$(b64 greeting)\"}"
		[ "$(jq -r '.kvs[0].value' <<<"$output" | base64 -d)" = 'hello world' ]
		[ "$(jq -r '.kvs[0].version' <<<"$output")" = 1 ]
	done
	run -0 "$CLI" "$RAFT_URL" put dir/a 1
	run -0 "$CLI" "$RAFT_URL" put dir/b 2
	run -0 "$CLI" "etcd://127.0.0.1:${RAFT_CPORTS[2]}" get dir/ prefix
	[ "$(field "$output" '["count"]')" = 2 ]
	[ "$(field "$output" '["kvs"][1]["value"]')" = '"2"' ]
	run -0 "$CLI" "$RAFT_URL" create lock first
	[ "$(field "$output" '["succeeded"]')" = true ]
	run -1 "$CLI" "$RAFT_URL" create lock second
	[ "$(field "$output" '["succeeded"]')" = false ]
	run -0 "$CLI" "$RAFT_URL" del dir/ prefix
	[ "$(field "$output" '["deleted"]')" = 2 ]
}

@test "raft node: leases are granted, kept alive, listed and revoked with their keys, and expire on the leader's clock" {
	raft_cluster 3
	raft_start_all
	run -0 "$CLI" "$RAFT_URL" grant 60
	id=$(field "$output" '["id"]')
	[ "$(field "$output" '["ttl"]')" = 60 ]
	run -0 "$CLI" "$RAFT_URL" put leased v "$id"
	run -0 "$CLI" "$RAFT_URL" keepalive "$id"
	[ "$(field "$output" '["ttl"]')" = 60 ]
	run -0 "$CLI" "$RAFT_URL" revoke "$id"
	run -0 "$CLI" "$RAFT_URL" get leased
	[ "$(field "$output" '["count"]')" = 0 ]
	run -0 "$CLI" "$RAFT_URL" ttl "$id"
	[ "$(field "$output" '["ttl"]')" = -1 ]
	run -1 "$CLI" "$RAFT_URL" revoke "$id"
	[ "$(field "$output" '["etcd_code"]')" = 5 ]
	# a TTL under 1.5 election timeouts is raised to that (etcd's rule: 1 s
	# here), and the key goes when it runs out
	run -0 post "${RAFT_CPORTS[0]}" /v3/lease/grant '{"TTL":0}'
	[ "$(jq -r .TTL <<<"$output")" = 1 ]
	short=$(jq -r .ID <<<"$output")
	run -0 post "${RAFT_CPORTS[1]}" /v3/kv/put "{\"key\":\"$(b64 brief)\",\"value\":\"$(b64 x)\",\"lease\":\"$short\"}"
	for ((k = 0; k < 100; k++)); do
		n=$(post "${RAFT_CPORTS[2]}" /v3/kv/range "{\"key\":\"$(b64 brief)\"}" | jq -r '.count // "0"')
		[ "$n" = 0 ] && break
		sleep 0.1
	done
	[ "$n" = 0 ]
}

@test "raft node: kill -9 of the leader elects a new one and loses no acknowledged write" {
	raft_cluster 3
	raft_start_all
	lead=$(raft_wait_leader)
	acked=()
	for m in $(seq 1 20); do
		"$CLI" "$RAFT_URL" put "k$m" "v$m" >/dev/null && acked+=("$m")
	done
	[ "${#acked[@]}" -eq 20 ]
	raft_kill "$lead"
	new=$(raft_wait_leader)
	[ "$new" -ne "$lead" ]
	for m in $(seq 21 30); do
		run -0 "$CLI" "$RAFT_URL" put "k$m" "v$m"
	done
	for m in $(seq 1 30); do
		run -0 "$CLI" "$RAFT_URL" get "k$m"
		[ "$(field "$output" '["kvs"][0]["value"]')" = "\"v$m\"" ]
	done
	# the old leader comes back from its WAL and catches up
	raft_start "$lead"
	for ((k = 0; k < 100; k++)); do
		got=$(post "${RAFT_CPORTS[lead]}" /v3/kv/range "{\"key\":\"$(b64 k30)\",\"serializable\":true}" | jq -r '.kvs[0].value // empty' | base64 -d)
		[ "$got" = v30 ] && break
		sleep 0.1
	done
	[ "$got" = v30 ]
}

@test "raft node: a write that never found a leader gets 'no leader' at --request-timeout, and goes to a leader found in time" {
	# 'no leader' tells a client (lib/store/etcd) that the write was never
	# proposed, so it may go to another member; 'request timed out' would
	# mean its outcome is unknown
	RAFT_ARGS=(--request-timeout 2500ms)
	raft_cluster 3
	raft_start_all
	lead=$(raft_wait_leader)
	other=$(((lead + 1) % 3))
	alone=$(((lead + 2) % 3))
	run -0 post "${RAFT_CPORTS[alone]}" /v3/kv/put "{\"key\":\"$(b64 a)\",\"value\":\"$(b64 1)\"}"
	raft_kill "$lead"
	raft_kill "$other"
	# at once: the survivor may still name the dead leader, whose
	# connection is refused, so the FWD_REQ never leaves it
	run -0 post "${RAFT_CPORTS[alone]}" /v3/kv/put "{\"key\":\"$(b64 b)\",\"value\":\"$(b64 1)\"}"
	run jq -c '[.code, .message]' <<<"$output"
	assert_output '[14,"etcdserver: no leader"]'
	# later: an election is on, nobody leads
	run -0 post "${RAFT_CPORTS[alone]}" /v3/kv/put "{\"key\":\"$(b64 b)\",\"value\":\"$(b64 2)\"}"
	run jq -c '[.code, .message]' <<<"$output"
	assert_output '[14,"etcdserver: no leader"]'
	# a write waiting for a leader goes to the one elected before its deadline
	post "${RAFT_CPORTS[alone]}" /v3/kv/put "{\"key\":\"$(b64 c)\",\"value\":\"$(b64 1)\"}" >"$BATS_TEST_TMPDIR/put" &
	pid=$!
	sleep 0.2
	raft_start "$other"
	wait "$pid"
	run jq -r .header.revision "$BATS_TEST_TMPDIR/put"
	assert_output 3
	run -0 post "${RAFT_CPORTS[alone]}" /v3/kv/range "{\"key\":\"$(b64 b)\"}"
	run jq -r '.count // "0"' <<<"$output"
	assert_output 0
	run -0 post "${RAFT_CPORTS[alone]}" /v3/kv/range "{\"key\":\"$(b64 c)\"}"
	run jq -r '.kvs[0].version' <<<"$output"
	assert_output 1
}

@test "raft node: a leader frozen past the election timeout (SIGSTOP) is replaced, and on SIGCONT follows the new one" {
	raft_cluster 3
	raft_start_all
	old=$(raft_wait_leader)
	"$CLI" "$RAFT_URL" put before 1 >/dev/null
	kill -STOP "${RAFT_PIDS[old]}"
	frozen=${RAFT_PIDS[old]}
	RAFT_PIDS[old]=   # raft_wait_leader skips it while it is frozen
	new=$(raft_wait_leader)
	[ "$new" -ne "$old" ]
	others=$(for m in 0 1 2; do [ "$m" -ne "$old" ] && printf '127.0.0.1:%s,' "${RAFT_CPORTS[m]}"; done | sed 's/,$//')
	run -0 "$CLI" "etcd://$others" put during 2
	kill -CONT "$frozen"
	RAFT_PIDS[old]=$frozen
	for ((k = 0; k < 100; k++)); do
		got=$(post "${RAFT_CPORTS[old]}" /v3/kv/range "{\"key\":\"$(b64 during)\",\"serializable\":true}" | jq -r '.kvs[0].value // empty' | base64 -d)
		lead=$(curl -s -m 1 "http://127.0.0.1:${RAFT_CPORTS[old]}/health" | jq -r .leader)
		[[ "$got" = 2 && "$lead" = $((new + 1)) ]] && break
		sleep 0.1
	done
	[ "$got" = 2 ]
	[ "$lead" = $((new + 1)) ]
	run -0 "$CLI" "$RAFT_URL" get before
	[ "$(field "$output" '["kvs"][0]["value"]')" = '"1"' ]
}

@test "raft node: a whole cluster stopped and restarted serves every write from its WAL, at the same revision" {
	raft_cluster 3
	raft_start_all
	for m in 1 2 3 4 5; do "$CLI" "$RAFT_URL" put "p$m" "$m" >/dev/null; done
	run -0 "$CLI" "$RAFT_URL" get p5
	rev=$(field "$output" '["revision"]')
	for m in 0 1 2; do stop_server "${RAFT_PIDS[m]}"; RAFT_PIDS[m]=; done
	raft_start_all
	run -0 "$CLI" "$RAFT_URL" get p prefix
	[ "$(field "$output" '["count"]')" = 5 ]
	[ "$(field "$output" '["revision"]')" = "$rev" ]
}

@test "raft node: gRPC puts (the log's binary form) and gateway puts read alike through both front ends, and after a restart of the whole cluster" {
	command -v etcdctl >/dev/null || skip "etcdctl is not installed"
	export ETCDCTL_API=3
	raft_cluster 3
	raft_start_all
	ctl() { etcdctl --endpoints "127.0.0.1:${RAFT_CPORTS[$1]}" --command-timeout 5s "${@:2}"; }
	# an entry as gateway JSON, then gRPC puts with every field of PutRequest
	run -0 post "${RAFT_CPORTS[0]}" /v3/kv/put "{\"key\":\"$(b64 /b/json)\",\"value\":\"$(b64 'from the gateway')\"}"
	run -0 ctl 0 lease grant 600
	id=$(awk '{print $2}' <<<"$output")
	lease=$(printf '%d' "0x$id")
	run -0 ctl 0 put '/b/grpc ü' 'value one' --lease="$id"
	run -0 ctl 1 put '/b/grpc ü' 'two words' --prev-kv --ignore-lease
	assert_output $'OK\n/b/grpc ü\nvalue one'
	run -0 ctl 2 put '/b/grpc ü' --ignore-value --ignore-lease --prev-kv
	assert_output $'OK\n/b/grpc ü\ntwo words'
	run -0 ctl 1 put /b/empty ''
	check() {
		run -0 post "${RAFT_CPORTS[$1]}" /v3/kv/range "{\"key\":\"$(b64 '/b/grpc ü')\"}"
		[ "$(field "$output" '["kvs"][0]["value"]')" = "\"$(b64 'two words')\"" ]
		[ "$(field "$output" '["kvs"][0]["lease"]')" = "\"$lease\"" ]
		[ "$(field "$output" '["kvs"][0]["version"]')" = '"3"' ]
		rev=$(field "$output" '["header"]["revision"]')
		run -0 ctl "$1" get /b/ --prefix
		assert_output $'/b/empty\n\n/b/grpc ü\ntwo words\n/b/json\nfrom the gateway'
		run -0 ctl "$1" get '/b/grpc ü' -w json
		[ "$(field "$output" '["kvs"][0]["lease"]')" = "$lease" ]
		[ "$(field "$output" '["kvs"][0]["create_revision"]')" = 3 ]
	}
	for m in 0 1 2; do check "$m"; done
	[ "$rev" = '"6"' ]
	# the WAL holds both forms; a restart replays them all
	for m in 0 1 2; do stop_server "${RAFT_PIDS[m]}"; RAFT_PIDS[m]=; done
	raft_start_all
	for m in 0 1 2; do check "$m"; done
	[ "$rev" = '"6"' ]
}

@test "raft node: SIGTERM on the leader hands leadership over and exits 0" {
	raft_cluster 3
	raft_start_all
	lead=$(raft_wait_leader)
	st=0
	stop_server "${RAFT_PIDS[lead]}" || st=$?
	RAFT_PIDS[lead]=
	[ "$st" -eq 0 ]
	grep -q 'handing leadership to' "$RAFT_DIR/n$((lead + 1)).err"
	new=$(raft_wait_leader)
	[ "$new" -ne "$lead" ]
}

@test "raft node: a torn WAL tail is cut at restart, a damaged WAL refuses to start naming the byte" {
	raft_cluster 1
	raft_start_all
	for m in 1 2 3; do "$CLI" "$RAFT_URL" put "t$m" "$m" >/dev/null; done
	raft_kill 0
	log="$RAFT_DIR/n1/wal/log"
	good=$(stat -c %s "$log")
	printf '\x30\x00\x00\x00\x12\x34' >>"$log"    # a record cut short by a crash
	raft_start 0
	raft_wait_leader >/dev/null
	run -0 "$CLI" "$RAFT_URL" get t3
	[ "$(field "$output" '["kvs"][0]["value"]')" = '"3"' ]
	raft_kill 0
	# damage in the middle: flip a byte of the first record's payload
	printf '\xff' | dd of="$log" bs=1 seek=12 conv=notrunc 2>/dev/null
	before=$(stat -c %s "$log")
	run --separate-stderr dsys-raft node --name n1 --data-dir "$RAFT_DIR/n1" \
		--listen-client "127.0.0.1:${RAFT_CPORTS[0]}" --initial-cluster "$RAFT_INITIAL"
	assert_failure 1
	[[ "$stderr" == *"is damaged at byte 0"* ]]
	[ -z "$output" ]
	[ "$(stat -c %s "$log")" -eq "$before" ]
	[ "$good" -gt 0 ]
}

@test "raft node: bad requests get etcd's errors and change nothing" {
	raft_cluster 1
	raft_start_all
	p=${RAFT_CPORTS[0]}
	run -0 curl -s -w '\n%{http_code}' "http://127.0.0.1:$p/v3/kv/put" -d 'xx'
	assert_line --index 1 400
	[ "$(jq -r .code <<<"${lines[0]}")" = 3 ]
	run -0 post "$p" /v3/kv/put '{"key":"","value":"MQ=="}'
	[ "$(jq -r .error <<<"$output")" = 'etcdserver: key is not provided' ]
	run -0 post "$p" /v3/kv/txn "{\"success\":[{\"request_put\":{\"key\":\"YQ==\"}},{\"request_put\":{\"key\":\"YQ==\"}}]}"
	[ "$(jq -r .error <<<"$output")" = 'etcdserver: duplicate key given in txn request' ]
	run -0 post "$p" /v3/kv/range '{"key":"YQ==","revision":"99"}'
	[ "$(jq -r .error <<<"$output")" = 'etcdserver: mvcc: required revision is a future revision' ]
	run -0 post "$p" /v3/kv/range '{"key":"YQ=="}'
	[ "$(jq -r .header.revision <<<"$output")" = 1 ]
	run -0 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/health"
	assert_output 200
}

# The conformance script: one request per line, PATH BODY.
CONFORMANCE='/v3/kv/range {"key":"YQ=="}
/v3/kv/put {"key":"YQ==","value":"MQ=="}
/v3/kv/put {"key":"YQ==","value":"Mg==","prev_kv":true}
/v3/kv/put {"key":"Yw==","value":"Mw=="}
/v3/kv/range {"key":"YQ==","range_end":"AA==","limit":1}
/v3/kv/range {"key":"YQ==","range_end":"AA==","sort_order":"DESCEND","sort_target":"MOD"}
/v3/kv/range {"key":"YQ==","count_only":true}
/v3/kv/range {"key":"YQ==","keys_only":true}
/v3/kv/range {"key":"YQ==","revision":"2"}
/v3/kv/range {"key":"YQ==","revision":"99"}
/v3/kv/deleterange {"key":"Yg=="}
/v3/kv/deleterange {"key":"YQ==","prev_kv":true}
/v3/kv/txn {"compare":[{"key":"YQ==","target":"CREATE","create_revision":"0"}],"success":[{"request_put":{"key":"YQ==","value":"Mw=="}}],"failure":[{"request_range":{"key":"YQ=="}}]}
/v3/kv/txn {"compare":[{"key":"YQ==","target":"CREATE","create_revision":"0"}],"success":[{"request_put":{"key":"YQ==","value":"Mw=="}}],"failure":[{"request_range":{"key":"YQ=="}}]}
/v3/kv/txn {"compare":[{"key":"YQ==","target":"VALUE","result":"EQUAL","value":"Mw=="}],"success":[{"request_delete_range":{"key":"Yw=="}},{"request_put":{"key":"ZA==","value":"NA=="}}]}
/v3/kv/txn {"success":[{"request_put":{"key":"YQ==","value":"Mw=="}},{"request_put":{"key":"YQ==","value":"Mw=="}}]}
/v3/kv/compaction {"revision":"3"}
/v3/kv/range {"key":"YQ==","revision":"2"}
/v3/kv/compaction {"revision":"3"}
/v3/kv/compaction {"revision":"99"}
/v3/lease/grant {"TTL":30,"ID":"5"}
/v3/lease/grant {"TTL":60,"ID":"77"}
/v3/lease/grant {"TTL":60,"ID":"77"}
/v3/kv/put {"key":"Yg==","value":"MQ==","lease":"77"}
/v3/kv/put {"key":"Yg==","value":"MQ==","lease":"78"}
/v3/kv/range {"key":"Yg=="}
/v3/lease/keepalive {"ID":"77"}
/v3/lease/keepalive {"ID":"79"}
/v3/kv/lease/timetolive {"ID":"79"}
/v3/lease/leases {}
/v3/kv/lease/revoke {"ID":"77"}
/v3/lease/revoke {"ID":"77"}
/v3/kv/range {"key":"Yg=="}
/v3/kv/put {"key":"","value":"MQ=="}'

# run_conformance PORT: each request's HTTP status and body, one line each,
# with what legitimately differs taken out (ids of the cluster and member,
# the Raft term, a lease's seconds left).
run_conformance() {
	local port=$1 path body
	while read -r path body; do
		curl -s -w ' %{http_code}\n' "http://127.0.0.1:$port$path" -d "$body" |
			"$DSYS_PY" -c '
import json, sys
line = sys.stdin.read().strip()
body, code = line.rsplit(" ", 1)
v = json.loads(body)
def strip(o):
    if isinstance(o, dict):
        for k in ("cluster_id", "member_id", "raft_term"):
            o.pop(k, None)
        for k in o.values():
            strip(k)
    elif isinstance(o, list):
        for k in o:
            strip(k)
strip(v)
print(code, json.dumps(v, sort_keys=True))'
	done <<<"$CONFORMANCE"
}

@test "raft node: the conformance requests get the same answers from dsys-raft and from etcd 3.4, ids aside" {
	command -v etcd >/dev/null || fail "etcd is not installed (make deps installs etcd-server)"
	etcd_start
	raft_cluster 1
	raft_start_all
	theirs=$(run_conformance "$ETCD_PORT")
	ours=$(run_conformance "${RAFT_CPORTS[0]}")
	diff <(echo "$theirs") <(echo "$ours")
	[ "$(wc -l <<<"$ours")" -eq 34 ]
}

@test "raft node: a watch through lib/store/etcd sees every put and delete once and in order, across a leader's kill" {
	raft_cluster 3
	raft_start_all
	run -0 "$CLI" "$RAFT_URL" get w/ prefix
	rev=$(field "$output" '["revision"]')
	timeout 30 "$CLI" "$RAFT_URL" watch w/ prefix $((rev + 1)) 6 >"$BATS_TEST_TMPDIR/watch.out" 2>"$BATS_TEST_TMPDIR/watch.err" 3>&- &
	WATCH_PID=$!
	"$CLI" "$RAFT_URL" put w/a 1 >/dev/null
	"$CLI" "$RAFT_URL" put w/b 2 >/dev/null
	"$CLI" "$RAFT_URL" del w/a >/dev/null
	raft_kill "$(raft_wait_leader)"
	raft_wait_leader >/dev/null
	"$CLI" "$RAFT_URL" put w/c 3 >/dev/null
	"$CLI" "$RAFT_URL" put w/b 4 >/dev/null
	"$CLI" "$RAFT_URL" del w/ prefix >/dev/null
	st=0
	wait "$WATCH_PID" || st=$?
	[ "$st" -eq 0 ]
	run jq -c '[.type, .key, .mod_revision]' "$BATS_TEST_TMPDIR/watch.out"
	assert_output "[\"put\",\"w/a\",$((rev + 1))]
[\"put\",\"w/b\",$((rev + 2))]
[\"delete\",\"w/a\",$((rev + 3))]
[\"put\",\"w/c\",$((rev + 4))]
[\"put\",\"w/b\",$((rev + 5))]
[\"delete\",\"w/b\",$((rev + 6))]"
}

@test "raft node: a watch from an old revision answers etcd's lines, and a compacted one etcd's cancel" {
	command -v etcd >/dev/null || fail "etcd is not installed (make deps installs etcd-server)"
	etcd_start
	raft_cluster 1
	raft_start_all
	norm() { "$DSYS_PY" -c '
import json, sys
for line in sys.stdin:
    v = json.loads(line)
    for k in ("cluster_id", "member_id", "raft_term"):
        v["result"]["header"].pop(k, None)
    print(json.dumps(v, sort_keys=True))'; }
	for port in "$ETCD_PORT" "${RAFT_CPORTS[0]}"; do
		post "$port" /v3/kv/put '{"key":"dw==","value":"MQ=="}' >/dev/null
		post "$port" /v3/kv/put '{"key":"dw==","value":"Mg=="}' >/dev/null
		post "$port" /v3/kv/deleterange '{"key":"dw=="}' >/dev/null
		curl -s -m 2 "http://127.0.0.1:$port/v3/watch" -d '{"create_request":{"key":"dw==","start_revision":"2","prev_kv":true}}' |
			norm >"$BATS_TEST_TMPDIR/w.$port" || :
		post "$port" /v3/kv/compaction '{"revision":"3"}' >/dev/null
		# compacted past: created, canceled; dsys-raft then ends the stream
		# (nothing more can come on it), where etcd's stays open
		st=0
		curl -s -m 3 "http://127.0.0.1:$port/v3/watch" -d '{"create_request":{"key":"dw==","start_revision":"2"}}' \
			>"$BATS_TEST_TMPDIR/c.raw.$port" || st=$?
		[ "$port" = "$ETCD_PORT" ] || [ "$st" -eq 0 ]
		norm <"$BATS_TEST_TMPDIR/c.raw.$port" >"$BATS_TEST_TMPDIR/c.$port"
	done
	diff "$BATS_TEST_TMPDIR/w.$ETCD_PORT" "$BATS_TEST_TMPDIR/w.${RAFT_CPORTS[0]}"
	diff "$BATS_TEST_TMPDIR/c.$ETCD_PORT" "$BATS_TEST_TMPDIR/c.${RAFT_CPORTS[0]}"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/w.$ETCD_PORT")" -eq 2 ]
	grep -q '"compact_revision": "3"' "$BATS_TEST_TMPDIR/c.${RAFT_CPORTS[0]}"
}

# norm: etcd's watch lines with the ids and the term left out, one per line
watch_norm() { "$DSYS_PY" -c '
import json, sys
for line in sys.stdin:
    v = json.loads(line)
    for k in ("cluster_id", "member_id", "raft_term"):
        v["result"]["header"].pop(k, None)
    print(json.dumps(v, sort_keys=True))'; }

@test "raft node: curl -N on /v3/watch stays connected and prints a line per put as it happens, as etcd does" {
	command -v etcd >/dev/null || fail "etcd is not installed (make deps installs etcd-server)"
	etcd_start
	raft_cluster 1
	raft_start_all
	for port in "$ETCD_PORT" "${RAFT_CPORTS[0]}"; do
		post "$port" /v3/kv/put '{"key":"eg==","value":"MA=="}' >/dev/null
		out="$BATS_TEST_TMPDIR/s.$port"
		curl -sN -m 6 "http://127.0.0.1:$port/v3/watch" -d '{"create_request":{"key":"YQ==","range_end":"Yg=="}}' >"$out" 3>&- &
		cpid=$!
		for _ in $(seq 50); do [ -s "$out" ] && break; sleep 0.05; done
		# created at once, before any event
		[ "$(wc -l <"$out")" -eq 1 ]
		for i in 1 2 3; do
			post "$port" /v3/kv/put "{\"key\":\"YQ==\",\"value\":\"$(b64 $i)\"}" >/dev/null
			for _ in $(seq 50); do [ "$(wc -l <"$out")" -gt "$i" ] && break; sleep 0.05; done
			# each put's line arrives while the stream stays open
			[ "$(wc -l <"$out")" -eq $((i + 1)) ]
			kill -0 "$cpid"
			sleep 0.3
		done
		st=0; wait "$cpid" || st=$?
		[ "$st" -eq 28 ]   # curl's timeout: the stream never ended by itself
		watch_norm <"$out" >"$out.norm"
	done
	diff "$BATS_TEST_TMPDIR/s.$ETCD_PORT.norm" "$BATS_TEST_TMPDIR/s.${RAFT_CPORTS[0]}.norm"
	grep -q '"created": true' "$BATS_TEST_TMPDIR/s.${RAFT_CPORTS[0]}.norm"
	# chunked on HTTP/1.1, one chunk per line
	run curl -s --raw -m 1 -i "http://127.0.0.1:${RAFT_CPORTS[0]}/v3/watch" -d '{"create_request":{"key":"YQ==","start_revision":"3"}}'
	assert_output --partial 'Transfer-Encoding: chunked'
	assert_output --regexp $'\r\n[0-9a-f]+\r\n\\{"result".*"created":true\\}\\}\n\r\n[0-9a-f]+\r\n\\{"result"'
}

@test "raft node: a watch client that disconnects frees its watcher (raft_watchers), and a stopping node ends the stream" {
	raft_cluster 1
	raft_start_all
	port=${RAFT_CPORTS[0]}
	gauge() { curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "raft_watchers" { print $2 }'; }
	[ "$(gauge)" = 0 ]
	curl -sN "http://127.0.0.1:$port/v3/watch" -d '{"create_request":{"key":"YQ=="}}' >"$BATS_TEST_TMPDIR/w" 3>&- &
	cpid=$!
	for _ in $(seq 50); do [ "$(gauge)" = 1 ] && break; sleep 0.05; done
	[ "$(gauge)" = 1 ]
	kill "$cpid"; wait "$cpid" || :
	# no write needed: the next tick sees the client gone
	for _ in $(seq 50); do [ "$(gauge)" = 0 ] && break; sleep 0.05; done
	[ "$(gauge)" = 0 ]
	# a stream open when the node stops ends (curl exits 0), and the drain is not held up
	curl -sN -m 20 "http://127.0.0.1:$port/v3/watch" -d '{"create_request":{"key":"YQ=="}}' >"$BATS_TEST_TMPDIR/w2" 3>&- &
	cpid=$!
	for _ in $(seq 50); do [ -s "$BATS_TEST_TMPDIR/w2" ] && break; sleep 0.05; done
	start=$(date +%s)
	kill -TERM "${RAFT_PIDS[0]}"
	wait "${RAFT_PIDS[0]}"
	RAFT_PIDS[0]=
	st=0; wait "$cpid" || st=$?
	[ "$st" -eq 0 ]
	[ $(($(date +%s) - start)) -lt 8 ]
}

@test "raft node: progress_notify gets etcd's progress line (a header, no events) after the interval without events" {
	command -v etcd >/dev/null || fail "etcd is not installed (make deps installs etcd-server)"
	ETCD_ARGS=(--experimental-watch-progress-notify-interval 1s)
	etcd_start
	RAFT_ARGS=(--experimental-watch-progress-notify-interval 1s)
	raft_cluster 1
	raft_start_all
	for port in "$ETCD_PORT" "${RAFT_CPORTS[0]}"; do
		post "$port" /v3/kv/put '{"key":"eg==","value":"MA=="}' >/dev/null
		curl -sN -m 2.6 "http://127.0.0.1:$port/v3/watch" -d '{"create_request":{"key":"YQ==","progress_notify":true}}' |
			watch_norm >"$BATS_TEST_TMPDIR/p.$port" || :
	done
	cat "$BATS_TEST_TMPDIR/p.${RAFT_CPORTS[0]}"
	diff <(sed -n 1,2p "$BATS_TEST_TMPDIR/p.$ETCD_PORT") <(sed -n 1,2p "$BATS_TEST_TMPDIR/p.${RAFT_CPORTS[0]}")
	run sed -n 2p "$BATS_TEST_TMPDIR/p.${RAFT_CPORTS[0]}"
	assert_output '{"result": {"header": {"revision": "2"}}}'
}

@test "raft node: bad frames on the peer port are dropped or end that connection, and the member goes on" {
	raft_cluster 3
	raft_start 0       # alone: the test speaks for member 2
	"$DSYS_PY" - "${RAFT_PPORTS[0]}" "$RAFT_INITIAL" <<'EOF2'
import socket, struct, sys, time
port, initial = int(sys.argv[1]), sys.argv[2].encode()
def frame(kind, body):
    q = bytes([kind]) + body
    return struct.pack('<I', len(q)) + q
h = 0xcbf29ce484222325            # the cluster id: FNV-1a 64 of --initial-cluster
for c in initial:
    h = ((h ^ c) * 0x100000001b3) & 0xffffffffffffffff
# no hello: closed at the first frame
s = socket.create_connection(('127.0.0.1', port))
s.sendall(frame(2, b'' * 40))
s.settimeout(3)
assert s.recv(10) == b''
# another cluster's hello: closed
s = socket.create_connection(('127.0.0.1', port))
s.sendall(frame(1, struct.pack('<IQ', 1, h ^ 1)))
s.settimeout(3)
assert s.recv(10) == b''
# a hello that claims to be the member itself: closed
s = socket.create_connection(('127.0.0.1', port))
s.sendall(frame(1, struct.pack('<IQ', 1, h)))
s.settimeout(3)
assert s.recv(10) == b''
# member 2: a snapshot that is no store (dropped), a forward with an unknown op (ignored),
# an undecodable message (dropped), then a length past the limit (closed)
s = socket.create_connection(('127.0.0.1', port))
s.sendall(frame(1, struct.pack('<IQ', 2, h)))
s.sendall(frame(2, struct.pack('<BBBIIQQQQQQI', 9, 0, 0, 2, 1, 99, 0, 0, 0, 0, 0, 0) + b'\x01' +
                struct.pack('<QQQQI', 10, 3, 6, 0, 4) + b'data'))
s.sendall(frame(3, struct.pack('<QBQ', 7, 200, 0) + b'{}'))
s.sendall(frame(2, b'\x01' * 30))
s.sendall(struct.pack('<I', 0xffffffff))
s.settimeout(3)
assert s.recv(10) == b''
EOF2
	run curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${RAFT_CPORTS[0]}/health"
	assert_output 503
	kill -0 "${RAFT_PIDS[0]}"
	grep -q 'without a valid hello' "$RAFT_DIR/n1.err"
	grep -q 'sent a snapshot that does not hold a store: dropped' "$RAFT_DIR/n1.err"
	grep -q 'frame past the limit' "$RAFT_DIR/n1.err"
	raft_start 1
	raft_wait_leader >/dev/null
	run -0 "$CLI" "$RAFT_URL" put still here
}

@test "raft cluster: starts N members on free ports, one ready line each, and stops them all on SIGTERM" {
	dir=$(dsys_tmp c)
	out="$BATS_TEST_TMPDIR/cluster.out"
	dsys-raft cluster --nodes 3 --data-dir "$dir" --heartbeat-interval 50ms --election-timeout 500ms \
		>"$out" 2>"$BATS_TEST_TMPDIR/cluster.err" 3>&- &
	pid=$!
	RAFT_PIDS=("$pid")
	for ((k = 0; k < 200; k++)); do
		[ "$(grep -c '"event":"ready"' "$out")" -eq 3 ] && break
		sleep 0.05
	done
	[ "$(grep -c '"event":"ready"' "$out")" -eq 3 ]
	[ "$(jq -s 'map(.name) | sort | join(",")' -r "$out")" = n1,n2,n3 ]
	port=$(jq -s -r '.[0].listen' "$out" | sed 's/.*://')
	for ((k = 0; k < 100; k++)); do
		curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
		sleep 0.05
	done
	run -0 "$CLI" "etcd://127.0.0.1:$port" put via-cluster yes
	st=0
	stop_server "$pid" || st=$?
	RAFT_PIDS=()
	[ "$st" -eq 0 ]
	for p in $(jq -r .pid "$out"); do
		run kill -0 "$p"
		assert_failure
	done
}

@test "raft node: usage errors exit 2 and name the problem" {
	run --separate-stderr dsys-raft node --data-dir /tmp/x --initial-cluster a=http://127.0.0.1:1
	assert_failure 2
	[[ "$stderr" == *"--name, --data-dir and --initial-cluster are required"* ]]
	run --separate-stderr dsys-raft node --name b --data-dir "$BATS_TEST_TMPDIR/x" --initial-cluster a=http://127.0.0.1:1
	assert_failure 2
	[[ "$stderr" == *"--name 'b' is not in --initial-cluster"* ]]
	run --separate-stderr dsys-raft node --name a --data-dir "$BATS_TEST_TMPDIR/x" --initial-cluster a=nohost
	assert_failure 2
	run --separate-stderr dsys-raft cluster --nodes 9 --data-dir "$BATS_TEST_TMPDIR/y"
	assert_failure 2
}

@test "raft node: bash and zsh complete the node and cluster subcommands and their options" {
	load helpers_completion
	bcomp=$BATS_TEST_DIRNAME/../completions/bash/dsys-raft
	zcomp=$BATS_TEST_DIRNAME/../completions/zsh/_dsys-raft
	run bash_complete "$bcomp" dsys-raft ''
	assert_line node
	assert_line cluster
	assert_line sim
	run bash_complete "$bcomp" dsys-raft node --initial-c
	assert_line -- --initial-cluster
	assert_line -- --initial-cluster-state
	run bash_complete "$bcomp" dsys-raft node --snapshot-c
	assert_output -- --snapshot-count
	run bash_complete "$bcomp" dsys-raft node --snap
	assert_line -- --snapshot-count
	assert_line -- --snapshot-slice
	run bash_complete "$bcomp" dsys-raft cluster --no
	assert_output -- --nodes
	run zsh_complete "$zcomp" dsys-raft node --listen-
	assert_line -- --listen-client
	assert_line -- --listen-peer
}

@test "raft node: every option of node and cluster is in the man page" {
	for sub in node cluster; do
		opts=$(dsys-raft "$sub" --list-options)
		[ -n "$opts" ]
		for o in $opts; do
			grep -qE "Fl -${o#--}( |$)" "$BATS_TEST_DIRNAME/../man/man1/dsys-raft.1" ||
				{ echo "$sub: $o is not in the man page"; false; }
		done
	done
}

@test "raft node: past --quota-backend-bytes writes get etcd's NOSPACE error while reads, deletes and compaction go on; compaction clears it" {
	RAFT_ARGS=(--quota-backend-bytes 4K)
	raft_cluster 3
	raft_start_all >/dev/null
	val=$(head -c 300 /dev/zero | tr '\0' v)
	for m in $(seq 1 12); do   # 12 revisions of 350 bytes each (as kv_bytes counts) pass 4096
		run -0 "$CLI" "$RAFT_URL" put "q$m" "$val"
	done
	run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[0]}/metrics"
	assert_line 'raft_alarm_nospace 1'
	run post "${RAFT_CPORTS[1]}" /v3/kv/put "{\"key\":\"$(b64 more)\",\"value\":\"$(b64 x)\"}"
	assert_output '{"error":"etcdserver: mvcc: database space exceeded","message":"etcdserver: mvcc: database space exceeded","code":8}'
	run post "${RAFT_CPORTS[2]}" /v3/maintenance/alarm '{"action":"GET"}'
	[ "$(jq -r '.alarms | length' <<<"$output")" = 3 ]
	[ "$(jq -r '.alarms[0].alarm' <<<"$output")" = NOSPACE ]
	run -0 "$CLI" "$RAFT_URL" get q1
	[ "$(field "$output" '["count"]')" = 1 ]
	run -0 "$CLI" "$RAFT_URL" del q prefix
	rev=$(post "${RAFT_CPORTS[0]}" /v3/kv/range "{\"key\":\"$(b64 q1)\"}" | jq -r .header.revision)
	run -0 post "${RAFT_CPORTS[0]}" /v3/kv/compaction "{\"revision\":\"$rev\"}"
	for m in 0 1 2; do
		run -0 curl -sf "http://127.0.0.1:${RAFT_CPORTS[m]}/metrics"
		assert_line 'raft_alarm_nospace 0'
	done
	run post "${RAFT_CPORTS[2]}" /v3/maintenance/alarm '{"action":"GET"}'
	[ "$(jq -r '.alarms | length' <<<"$output")" = 0 ]
	run -0 "$CLI" "$RAFT_URL" put more x
}
