#!/usr/bin/env bats
# dsys-raft's etcd gRPC API beyond single calls (bin/dsys-raft/grpc.c):
# the Watch stream as etcd serves it (several watches, cancel, progress,
# fragments), etcd's hasleader metadata, Maintenance's alarm, defragment
# and hashes, and Auth as etcd with auth disabled answers it.  Each is
# compared with a real etcd 3.4 answering the same client, ids and
# revisions aside.

load helpers
load etcd_helpers
load raft_helpers
bats_require_minimum_version 1.5.0

export ETCDCTL_API=3

# One 3-node cluster for the file (tests that kill members start their own).
setup_file() { raft_setup_file 3; }

teardown_file() { raft_teardown_file; }

setup() {
	raft_setup
	read -r -a P <<<"$GRPC_PORTS"
}

teardown() {
	local i
	for i in "${!RAFT_PIDS[@]}"; do
		[[ -n ${RAFT_PIDS[i]} ]] && raft_kill "$i"
	done
	etcd_teardown
	dsys_teardown
}

# rctl I ARGS...: etcdctl against dsys-raft member I (0-based) only
rctl() {
	local i=$1
	shift
	etcdctl --endpoints "127.0.0.1:${P[i]}" --command-timeout 5s "$@"
}

@test "raft grpc stream: one Watch stream carries several watches, created in order, cancel, progress and fragments, as etcd's" {
	etcd_start
	run -0 timeout 60 "$DSYS_PY" "$BATS_TEST_DIRNAME/etcd_watch_stream.py" "127.0.0.1:$ETCD_PORT" /s1
	local want=$output
	# a follower's endpoint: its events come from its own applied state
	run -0 timeout 60 "$DSYS_PY" "$BATS_TEST_DIRNAME/etcd_watch_stream.py" "127.0.0.1:${P[1]}" /s1
	[ "$output" = "$want" ]
	# the script's own checks: what etcd sends, seen here
	[[ $output == *"watch_id=7 created"*"watch_id=0 created"*"watch_id=1 created"* ]]
	[[ $output == *"watch_id=-1 rev=3"* ]]
	[[ $output == *"watch_id=7 canceled"* ]]
	[[ $output != *"/s1/a=after"* ]]
	[[ $output == *"fragment PUT"* ]]
}

@test "raft grpc stream: etcdctl watch -i watches, prints events and a progress notify with the revision, as etcd does" {
	etcd_start
	local out
	out=$( { echo "watch /i/a"; sleep 1; etcdctl --endpoints "$ETCD_ENDPOINT" put /i/a 1 >/dev/null; sleep 0.5; echo progress; sleep 0.5; echo "cancel 0"; sleep 0.5; } |
		timeout 10 etcdctl --endpoints "$ETCD_ENDPOINT" watch -i 2>&1 || :)   # it ends at the input's EOF, status 3
	local base
	base=$(rctl 0 get /i -w json | jq -r .header.revision)
	run bash -c "{ echo 'watch /i/a'; sleep 1; etcdctl --endpoints 127.0.0.1:${P[0]} put /i/a 1 >/dev/null; sleep 0.5; echo progress; sleep 0.5; echo 'cancel 0'; sleep 0.5; } |
		timeout 10 etcdctl --endpoints 127.0.0.1:${P[2]} watch -i 2>&1"
	# etcd's revision 2 is its first put; here the put is base + 1
	[ "${output/progress notify: $((base + 1))/progress notify: 2}" = "$out" ]
	[[ $out == *"progress notify: 2"* ]]
}

@test "raft grpc stream: a watch or keep-alive with hasleader fails with etcd's no leader on a member that has none" {
	raft_cluster 3
	raft_start_all
	run -0 etcdctl --endpoints "127.0.0.1:${RAFT_CPORTS[0]}" put /h/a 1
	raft_kill 1
	raft_kill 2
	local i
	for ((i = 0; i < 100; i++)); do
		curl -s "http://127.0.0.1:${RAFT_CPORTS[0]}/health" | grep -q '"health":"false"' && break
		sleep 0.1
	done
	run -0 "$DSYS_PY" - "127.0.0.1:${RAFT_CPORTS[0]}" <<'PY'
import sys, grpc
ch = grpc.insecure_channel(sys.argv[1])
def status(path, md, msg):
    call = ch.stream_stream(path)(iter([msg]), metadata=md, timeout=3)
    try:
        next(call)
        return "answered"
    except grpc.RpcError as e:
        return "%s %s" % (e.code().name, e.details())
create = b"\x0a\x03\x0a\x01a"   # WatchRequest{create_request{key "a"}}
print(status("/etcdserverpb.Watch/Watch", [("hasleader", "true")], create))
print(status("/etcdserverpb.Lease/LeaseKeepAlive", [("hasleader", "true")], b"\x08\x01"))
# without the metadata the watch is served (its created reply)
print(status("/etcdserverpb.Watch/Watch", [], create))
PY
	[ "${lines[0]}" = "UNAVAILABLE etcdserver: no leader" ]
	[ "${lines[1]}" = "UNAVAILABLE etcdserver: no leader" ]
	[ "${lines[2]}" = "answered" ]
	# etcdctl watch asks for a leader and says etcd's text
	run timeout 10 etcdctl --endpoints "127.0.0.1:${RAFT_CPORTS[0]}" watch /h/a
	[[ $output == *"etcdserver: no leader"* ]]
}

@test "raft grpc stream: endpoint hashkv gives the 3 members one hash at one revision, and a new one after a write" {
	run -0 rctl 0 put /hk/a 1
	# a linearizable read on each: every member has applied the put
	for i in 0 1 2; do rctl "$i" get /hk/a >/dev/null; done
	run -0 etcdctl --endpoints "$GRPC_EPS" endpoint hashkv -w json
	local rev h
	[ "$(jq -r '[.[].HashKV.header.revision] | unique | length' <<<"$output")" = 1 ]
	[ "$(jq -r '[.[].HashKV.hash] | unique | length' <<<"$output")" = 1 ]
	[ "$(jq -r '.[0].HashKV.compact_revision' <<<"$output")" = -1 ]
	rev=$(jq -r '.[0].HashKV.header.revision' <<<"$output")
	h=$(jq -r '.[0].HashKV.hash' <<<"$output")
	run -0 rctl 1 put /hk/a 2
	for i in 0 1 2; do rctl "$i" get /hk/a >/dev/null; done
	run -0 etcdctl --endpoints "$GRPC_EPS" endpoint hashkv -w json
	[ "$(jq -r '[.[].HashKV.hash] | unique | length' <<<"$output")" = 1 ]
	[ "$(jq -r '.[0].HashKV.hash' <<<"$output")" != "$h" ]
	[ "$(jq -r '.[0].HashKV.header.revision' <<<"$output")" = $((rev + 1)) ]
	# etcdctl's table, as etcd prints it: endpoint and hash
	run -0 rctl 2 endpoint hashkv
	[[ $output =~ ^127\.0\.0\.1:${P[2]},\ [0-9]+$ ]]
}

@test "raft grpc stream: defrag, alarm list and disarm answer as etcd's do with no alarm" {
	etcd_start
	local cmd want
	for cmd in "defrag" "alarm list" "alarm disarm"; do
		want=$(ctl $cmd 2>&1 | sed "s#http://127.0.0.1:$ETCD_PORT#EP#")
		run rctl 1 $cmd
		[ "$status" -eq 0 ]
		[ "${output//127.0.0.1:${P[1]}/EP}" = "$want" ]
	done
}

@test "raft grpc stream: auth answers as etcd with auth disabled: empty user and role lists, enable and get refused with etcd's text" {
	etcd_start
	local cmd want
	for cmd in "user list" "role list" "auth disable" "auth enable" "user get u1" "role get r1"; do
		want=$(ctl $cmd 2>&1 | grep -v '"level":"warn"'; echo "rc=${PIPESTATUS[0]}")
		run bash -c "etcdctl --endpoints 127.0.0.1:${P[0]} $cmd 2>&1 | grep -v '\"level\":\"warn\"'; echo rc=\${PIPESTATUS[0]}"
		[ "$output" = "$want" ]
	done
	run rctl 0 auth enable
	[ "$status" -ne 0 ]
	[[ $output == *"Error: etcdserver: root user does not exist"* ]]
}

@test "raft grpc stream: past --quota-backend-bytes etcdctl alarm list shows NOSPACE, puts fail with etcd's text, and compaction clears it" {
	raft_cluster 1
	RAFT_ARGS=(--quota-backend-bytes 4096)
	raft_start_all
	local ep=127.0.0.1:${RAFT_CPORTS[0]} i
	run -0 etcdctl --endpoints "$ep" alarm list
	[ -z "$output" ]
	for ((i = 0; i < 40; i++)); do
		etcdctl --endpoints "$ep" put /q/k "$(printf 'v%.0s' {1..400})" >/dev/null 2>&1 || break
	done
	run etcdctl --endpoints "$ep" put /q/k2 more
	[ "$status" -ne 0 ]
	[[ $output == *"Error: etcdserver: mvcc: database space exceeded"* ]]
	run -0 etcdctl --endpoints "$ep" alarm list
	[[ $output =~ ^memberID:[0-9]+\ alarm:NOSPACE\ ?$ ]]   # etcdctl prints the message's text form
	# disarm answers the alarm (it follows the store's size, so it stays)
	run -0 etcdctl --endpoints "$ep" alarm disarm
	[[ $output =~ ^memberID:[0-9]+\ alarm:NOSPACE\ ?$ ]]   # etcdctl prints the message's text form
	# history compacted away: under the quota, the alarm gone, puts work
	local rev
	rev=$(etcdctl --endpoints "$ep" get /q/k -w json | jq -r .header.revision)
	run -0 etcdctl --endpoints "$ep" del /q/k
	run -0 etcdctl --endpoints "$ep" compaction "$((rev + 1))"
	run -0 etcdctl --endpoints "$ep" alarm list
	[ -z "$output" ]
	run -0 etcdctl --endpoints "$ep" put /q/k2 more
}
