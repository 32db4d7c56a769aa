#!/usr/bin/env bats
# The node's fault suite through etcd's gRPC clients (issue 21): the
# leader of a 3-node dsys-raft killed (SIGKILL) while etcdctl watches and
# while etcdctl keeps a lease alive; frozen (SIGSTOP) under gRPC puts
# through a follower.

load helpers
load etcd_helpers
load raft_helpers
bats_require_minimum_version 1.5.0

export ETCDCTL_API=3

setup() {
	raft_setup
	raft_cluster 3
	raft_start_all >/dev/null
}

teardown() {
	local i
	[[ -n ${WATCH_PID:-} ]] && kill "$WATCH_PID" 2>/dev/null
	for i in "${!RAFT_PIDS[@]}"; do
		[[ -n ${RAFT_PIDS[i]} ]] && raft_kill "$i"
	done
	dsys_teardown
}

# eps_but I: the client endpoints of every member but I
eps_but() {
	local i out=
	for i in "${!RAFT_CPORTS[@]}"; do
		[[ $i == "$1" ]] || out+="${out:+,}127.0.0.1:${RAFT_CPORTS[i]}"
	done
	echo "$out"
}

# put_retry EPS KEY VALUE: until the cluster takes it (an election may be under way)
put_retry() {
	local k
	for ((k = 0; k < 50; k++)); do
		etcdctl --endpoints "$1" --command-timeout 2s put "$2" "$3" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

@test "raft grpc faults: the leader killed during etcdctl watch: the watch goes on, every event once and in order" {
	local lead start i out
	lead=$(raft_wait_leader)
	start=$(etcdctl --endpoints "$RAFT_ENDPOINTS" put /fw/start 0 -w json | jq -r .header.revision)
	out=$(dsys_tmp watch)/events
	# every member's endpoint, the leader's first: the client may watch
	# through it and must then move to another member
	local eps="127.0.0.1:${RAFT_CPORTS[lead]},$(eps_but "$lead")"
	# from the revision after start: the puts below may begin before the
	# watch is set up, and a watch from "now" would miss them
	etcdctl --endpoints "$eps" watch --prefix /fw/k --rev "$((start + 1))" >"$out" 2>/dev/null 3>&- &
	WATCH_PID=$!
	for ((i = 0; i < 10; i++)); do put_retry "$(eps_but "$lead")" "/fw/k$i" "v$i"; done
	raft_kill "$lead"
	for ((i = 10; i < 20; i++)); do put_retry "$(eps_but "$lead")" "/fw/k$i" "v$i"; done
	# the watch has seen the last put (or fails the test after 20 s)
	for ((i = 0; i < 200; i++)); do
		grep -qx v19 "$out" && break
		sleep 0.1
	done
	kill "$WATCH_PID"
	wait "$WATCH_PID" 2>/dev/null || :
	WATCH_PID=
	# the same history replayed by a survivor: no event lost, none twice
	local want
	want=$(timeout 5 etcdctl --endpoints "$(eps_but "$lead")" watch --prefix /fw/k --rev "$((start + 1))" 2>/dev/null || :)
	[ "$(grep -c '^v' "$out")" -ge 20 ]
	[ "$(cat "$out")" = "$want" ]
	# in order, each value once (a put retried after a timeout that had
	# applied would show twice in both: the watch and the replay agree)
	[ "$(grep '^v' "$out" | sort -u | wc -l)" = 20 ]
}

@test "raft grpc faults: etcdctl lease keep-alive keeps its lease and key across a leader kill" {
	local lead id
	lead=$(raft_wait_leader)
	id=$(etcdctl --endpoints "$(eps_but "$lead")" lease grant 3 | awk '{print $2}')
	run -0 etcdctl --endpoints "$(eps_but "$lead")" put --lease "$id" /fl/k alive
	etcdctl --endpoints "127.0.0.1:${RAFT_CPORTS[lead]},$(eps_but "$lead")" lease keep-alive "$id" >/dev/null 2>&1 3>&- &
	WATCH_PID=$!
	sleep 1
	raft_kill "$lead"
	# twice the TTL with the old leader gone
	sleep 6
	run -0 etcdctl --endpoints "$(eps_but "$lead")" get /fl/k --print-value-only
	[ "$output" = alive ]
	run -0 etcdctl --endpoints "$(eps_but "$lead")" lease timetolive "$id"
	[[ $output == *"remaining("* ]]
	[[ $output != *"already expired"* ]]
}

@test "raft grpc faults: a LeaseKeepAlive stream ended by a timed-out keep-alive leaves its other keep-alives with no answer on the next stream" {
	# A follower forwards each keep-alive to the leader; with the leader
	# frozen they all wait, the first one's timeout ends the stream, and
	# the others time out afterwards: their answers belong to the ended
	# stream, not to the next stream the client opens on its connection
	# (which the server may build on the same exchange), nor may they
	# abort the member.
	local lead f id
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % RAFT_N))
	id=$(etcdctl --endpoints "127.0.0.1:${RAFT_CPORTS[f]}" lease grant 60 | awk '{print $2}')
	run timeout 40 "$DSYS_PY" - "127.0.0.1:${RAFT_CPORTS[f]}" "$id" "${RAFT_PIDS[lead]}" 3>&- <<'PY'
import os, signal, sys, threading, time, grpc
from etcd3.etcdrpc import rpc_pb2 as pb, rpc_pb2_grpc as stubs
ep, lease, leader = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3])
stub = stubs.LeaseStub(grpc.insecure_channel(ep))
stub.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=lease), timeout=5)  # connected

def keepalives(n, gap, done):
    for _ in range(n):
        yield pb.LeaseKeepAliveRequest(ID=lease)
        time.sleep(gap)
    done.wait(30)  # the client's side stays open

os.kill(leader, signal.SIGSTOP)
done = threading.Event()
try:
    for r in stub.LeaseKeepAlive(keepalives(3, 0.1, done), timeout=20):
        print("stream 1 answered", r.TTL, flush=True)
    print("stream 1 ended", flush=True)
except grpc.RpcError as e:
    print("stream 1 broken:", e.code().name, flush=True)
done.set()
done = threading.Event()
got = 0
try:
    for r in stub.LeaseKeepAlive(keepalives(15, 0.1, done), timeout=20):
        if r.TTL <= 0:
            print("stream 2 lease gone", flush=True)
            break
        got += 1
        if got == 15:
            break
except grpc.RpcError as e:
    print("stream 2 broken:", e.code().name, e.details(), flush=True)
done.set()
print("stream 2 answered", got, flush=True)
PY
	kill -CONT "${RAFT_PIDS[lead]}"
	echo "$output"
	[ "$status" = 0 ]
	[[ $output == *"stream 1 broken: UNAVAILABLE"* ]]
	[[ $output == *"stream 2 answered 15"* ]]
	[[ $output != *"stream 2 broken"* ]]
	kill -0 "${RAFT_PIDS[f]}"
	! grep -h invariant "$RAFT_DIR"/*.err
}

@test "raft grpc faults: a python grpc watch on the leader, the leader killed: resumed on another member from its last revision + 1, no event lost or twice" {
	local lead
	lead=$(raft_wait_leader)
	local others=($(tr , ' ' <<<"$(eps_but "$lead")"))
	out=$(dsys_tmp pywatch)/events
	# the watcher: on the leader until its stream breaks, then on a
	# survivor from the revision after the last event it saw
	"$DSYS_PY" - "127.0.0.1:${RAFT_CPORTS[lead]}" "${others[0]}" >"$out" 2>"$out.err" 3>&- <<'PY' &
import sys, grpc
from etcd3.etcdrpc import rpc_pb2 as pb, rpc_pb2_grpc as stubs
last, n = 0, 0
for ep in sys.argv[1:]:
    ch = grpc.insecure_channel(ep)
    req = pb.WatchCreateRequest(key=b"/fp/", range_end=b"/fp0", start_revision=last + 1 if last else 0)
    try:
        for r in stubs.WatchStub(ch).Watch(iter([pb.WatchRequest(create_request=req)]), timeout=60):
            if r.created:
                print("created on", ep, flush=True)
            for e in r.events:
                last = e.kv.mod_revision
                print(e.kv.mod_revision, e.kv.key.decode(), e.kv.value.decode(), flush=True)
                n += 1
            if n >= 30:
                sys.exit(0)
    except grpc.RpcError as e:
        print("broken:", e.code().name, flush=True)
PY
	WATCH_PID=$!
	for ((i = 0; i < 100; i++)); do grep -q created "$out" && break; sleep 0.1; done
	for ((i = 0; i < 15; i++)); do put_retry "$(eps_but "$lead")" "/fp/k$i" "v$i"; done
	raft_kill "$lead"
	for ((i = 15; i < 30; i++)); do put_retry "$(eps_but "$lead")" "/fp/k$i" "v$i"; done
	wait "$WATCH_PID"
	WATCH_PID=
	cat "$out"
	grep -q "^broken:" "$out"
	[ "$(grep -c '^created on' "$out")" = 2 ]
	# every revision once, increasing, and the same events a survivor replays
	grep -E '^[0-9]+ ' "$out" | cut -d' ' -f1 >"$out.revs"
	[ "$(wc -l <"$out.revs")" = 30 ]
	sort -n -u "$out.revs" | diff - "$out.revs"
	run -0 timeout 10 etcdctl --endpoints "$(eps_but "$lead")" get --prefix /fp/ -w json
	[ "$(jq -r '[.kvs[].mod_revision] | sort | join(" ")' <<<"$output")" = "$(sort -n "$out.revs" | paste -sd' ')" ]
}

# freeze_under_load PID OUT LEAD F FLAG: once the load generator PID has
# written "started" to OUT, freeze the leader (member LEAD) past the
# election timeout, thaw it, tell the load (FLAG), wait for the load and
# show what it printed; member F must then be in a later term: a leader
# change happened under the load.
freeze_under_load() {
	local py=$1 out=$2 lead=$3 f=$4 flag=$5 k
	for ((k = 0; k < 300; k++)); do grep -q started "$out" && break; sleep 0.1; done
	kill -STOP "${RAFT_PIDS[lead]}"
	sleep 1.5
	kill -CONT "${RAFT_PIDS[lead]}"
	touch "$flag"
	wait "$py"
	cat "$out"
	run -0 curl -s "http://127.0.0.1:${RAFT_CPORTS[f]}/metrics"
	[[ $output == *"raft_term "[2-9]* ]]
}

# freeze_setup NAME: for the caller's locals, the leader $lead, a follower
# $f, the thaw flag's path $flag and an output file $out (in NAME)
freeze_setup() {
	lead=$(raft_wait_leader)
	f=$(((lead + 1) % 3))
	flag=$(dsys_tmp thawed)/flag
	out=$(dsys_tmp "$1")/out
}

# applied_once PREFIX N F: member F holds N keys under PREFIX, each at
# version 1 (each put applied once).
applied_once() {
	run -0 etcdctl --endpoints "127.0.0.1:${RAFT_CPORTS[$3]}" get --prefix "$1" -w json
	[ "$(jq '.count' <<<"$output")" = "$2" ]
	[ "$(jq '[.kvs[] | select(.version != 1)] | length' <<<"$output")" = 0 ]
}

@test "raft grpc faults: gRPC puts in flight through a follower while the leader is frozen past the election timeout all succeed, each applied once" {
	# The frozen leader had proposed some of them (or proposes them as it
	# thaws, before it hears of the new term); the new leader's entries
	# take their indexes, and each is proposed again through the new
	# leader, not answered "leader changed" (entry_lost in node.c).
	local lead f flag out
	freeze_setup puts
	timeout 120 "$DSYS_PY" - "127.0.0.1:${RAFT_CPORTS[f]}" "$flag" >"$out" 2>&1 3>&- <<'PY' &
import os, sys, grpc
from etcd3.etcdrpc import rpc_pb2 as pb, rpc_pb2_grpc as stubs
ep, flag = sys.argv[1], sys.argv[2]
kvs = [stubs.KVStub(grpc.insecure_channel(ep)) for _ in range(4)]
inflight, errors, done, i, after = [], {}, 0, 0, None
def settle(f):
    global done
    try:
        f.result()
    except grpc.RpcError as e:
        errors[e.details()] = errors.get(e.details(), 0) + 1
    done += 1
# 64 puts in flight at all times, each to a key of its own
while i < 200000:
    while len(inflight) < 64:
        inflight.append(kvs[i % 4].Put.future(pb.PutRequest(key=b"/lc/%06d" % i, value=b"v"), timeout=60))
        i += 1
    settle(inflight.pop(0))
    if done == 300:
        print("started", flush=True)
    if after is None and os.path.exists(flag):
        after = done
    # on for a while after the thaw, so the new leader's log passes every
    # index the old one had proposed at
    if after is not None and done >= after + 1000:
        break
for f in inflight:
    settle(f)
print("puts", i, "done", done, "errors", sorted(errors.items()), flush=True)
PY
	freeze_under_load $! "$out" "$lead" "$f" "$flag"
	grep -q "errors \[\]" "$out"
	local n
	n=$(sed -n 's/^puts \([0-9]*\) .*/\1/p' "$out")
	[ "$n" -gt 1000 ]
	applied_once /lc/ "$n" "$f"
}

@test "raft grpc faults: hundreds of gRPC puts and linearizable reads in flight on the leader and a follower while the leader is frozen past the election timeout are each answered once, without error, and each put applied once" {
	# The frozen leader's own proposals of the old term are settled by the
	# new leader's entries (apply_waiters) and proposed again through it;
	# the follower's read barrier, lost with the old leader, is asked
	# again of the new one (reqs_tick); its forwarded writes are answered
	# by FWD_REQ id.  Each call is answered once: a second answer would be
	# to a freed request (ASan), a missing one a timeout.
	local lead f flag out
	freeze_setup calls
	timeout 150 "$DSYS_PY" - "127.0.0.1:${RAFT_CPORTS[lead]}" "127.0.0.1:${RAFT_CPORTS[f]}" "$flag" >"$out" 2>&1 3>&- <<'PY' &
import os, sys, grpc
from etcd3.etcdrpc import rpc_pb2 as pb, rpc_pb2_grpc as stubs
eps, flag = sys.argv[1:3], sys.argv[3]
kvs = [stubs.KVStub(grpc.insecure_channel(eps[k % 2])) for k in range(8)]
inflight, errors, done, reads, i, after = [], {}, 0, 0, 0, None
def settle(f):
    global done, reads
    kind, fut = f
    try:
        fut.result()
        reads += kind == "r"
    except grpc.RpcError as e:
        errors[kind + ": " + str(e.details())] = errors.get(kind + ": " + str(e.details()), 0) + 1
    done += 1
# 256 calls in flight, half on each member; every fourth a linearizable
# read, the others puts each to a key of its own
while i < 200000:
    while len(inflight) < 256:
        kv = kvs[i % 8]
        if i % 4 == 3:
            inflight.append(("r", kv.Range.future(pb.RangeRequest(key=b"/mc/%06d" % (i - 1)), timeout=60)))
        else:
            inflight.append(("w", kv.Put.future(pb.PutRequest(key=b"/mc/%06d" % i, value=b"v"), timeout=60)))
        i += 1
    settle(inflight.pop(0))
    if done == 1000:
        print("started", flush=True)
    if after is None and os.path.exists(flag):
        after = done
    if after is not None and done >= after + 2000:
        break
for f in inflight:
    settle(f)
puts = sum(1 for k in range(i) if k % 4 != 3)
print("calls", i, "puts", puts, "reads", reads, "done", done, "errors", sorted(errors.items()), flush=True)
PY
	freeze_under_load $! "$out" "$lead" "$f" "$flag"
	grep -q "errors \[\]" "$out"
	local calls puts
	calls=$(sed -n 's/^calls \([0-9]*\) .*/\1/p' "$out")
	puts=$(sed -n 's/.* puts \([0-9]*\) .*/\1/p' "$out")
	[ "$calls" -gt 3000 ]
	grep -q " done $calls " "$out"
	applied_once /mc/ "$puts" "$f"
}
