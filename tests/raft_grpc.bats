#!/usr/bin/env bats
# dsys-raft's etcd gRPC API (bin/dsys-raft/grpc.c) with third-party
# clients: etcdctl 3.4 (ETCDCTL_API=3, grpc-go) and python3-etcd3
# (grpcio), against a 3-node dsys-raft cluster, and against a real etcd
# 3.4 answering the same commands.

load helpers
load etcd_helpers
load raft_helpers
bats_require_minimum_version 1.5.0

export ETCDCTL_API=3

# One 3-node cluster for the file; each test writes under its own prefix.
setup_file() { raft_setup_file 3; }

teardown_file() { raft_teardown_file; }

setup() {
	raft_setup
	RAFT1_PID=
	read -r -a P <<<"$GRPC_PORTS"
}

teardown() {
	[[ -n $RAFT1_PID ]] && kill_server "$RAFT1_PID"
	etcd_stop
	dsys_teardown
}

# ctl I ARGS...: etcdctl against member I (0-based) only
ctl() {
	local i=$1
	shift
	etcdctl --endpoints "127.0.0.1:${P[i]}" --command-timeout 5s "$@"
}

# strip_ids: etcdctl's JSON without what legitimately differs between two
# clusters (the ids of the cluster and member, the raft term)
strip_ids() {
	"$DSYS_PY" -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        print(line); continue
    v = json.loads(line)
    def walk(o):
        if isinstance(o, dict):
            for k in ("cluster_id", "member_id", "raft_term", "ID", "id"):
                o.pop(k, None)
            for x in o.values(): walk(x)
        elif isinstance(o, list):
            for x in o: walk(x)
    walk(v)
    print(json.dumps(v, sort_keys=True))'
}

@test "raft grpc: etcdctl puts on one member and gets from another, with prefix, range, from-key, limit, sort, keys-only, rev, serializable and print-value-only" {
	run ctl 0 put /g1/a alpha
	[ "$status" -eq 0 ]
	[ "$output" = OK ]
	ctl 0 put /g1/b beta
	ctl 0 put /g1/c gamma
	run ctl 2 get /g1/a
	[ "$status" -eq 0 ]
	[ "$output" = $'/g1/a\nalpha' ]
	run ctl 1 get --prefix /g1/ --print-value-only
	[ "$output" = $'alpha\nbeta\ngamma' ]
	run ctl 1 get --prefix /g1/ --limit 2 --sort-by=KEY --order=DESCEND --keys-only
	[ "$output" = $'/g1/c\n\n/g1/b' ]   # etcdctl's blank line per key; run drops the last
	run ctl 2 get --prefix /g1/ --limit 1 -w json
	[ "$(jq -r .count <<<"$output")" = 3 ]
	[ "$(jq -r .more <<<"$output")" = true ]
	[ "$(jq -r '.kvs | length' <<<"$output")" = 1 ]
	local rev
	rev=$(jq -r .header.revision <<<"$output")
	ctl 0 put /g1/a changed
	run ctl 1 get /g1/a --rev "$rev" --print-value-only
	[ "$output" = alpha ]
	run ctl 2 get /g1/a --consistency=s --print-value-only
	[ "$status" -eq 0 ]
	run ctl 1 get /g1/b --from-key --keys-only
	[[ $output == "/g1/b"*"/g1/c"* ]]
	run ctl 0 get /g1/a /g1/c
	[ "$output" = $'/g1/a\nchanged\n/g1/b\nbeta' ]
	run ctl 0 get /g1/none
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "raft grpc: etcdctl get -w json, del and txn answer as a real etcd does, ids aside" {
	local ports dsys etcd cmds
	ports=($(etcd_free_ports 2))
	dsys-raft node --name n1 --data-dir "$BATS_TEST_TMPDIR/r1" --listen-client "127.0.0.1:${ports[0]}" \
		--listen-peer "127.0.0.1:${ports[1]}" --initial-cluster "n1=http://127.0.0.1:${ports[1]}" \
		--heartbeat-interval 50ms --election-timeout 500ms >"$BATS_TEST_TMPDIR/r1.out" 2>/dev/null 3>&- &
	RAFT1_PID=$!
	wait_ready "$BATS_TEST_TMPDIR/r1.out" "$RAFT1_PID" >/dev/null
	etcd_start
	# the same session against each; every output line compared
	session() {
		local e="etcdctl --endpoints $1 --command-timeout 5s"
		$e put k1 v1 -w json
		$e put k2 v2 -w json
		$e put k1 v1b --prev-kv -w json
		$e get k --prefix -w json
		$e get k1 --rev 2 -w json
		$e get k --prefix --sort-by=MODIFY --order=DESCEND -w json
		$e txn -w json <<<$'mod("k1") > "0"\nvalue("k2") = "v2"\n\nput k3 v3\nget k1\n\nput k4 v4\n'
		$e txn -w json <<<$'version("k9") > "0"\n\nput k5 v5\n\ndel k3\nget k --prefix --keys-only\n'
		$e del k --prefix --prev-kv -w json
		$e get k --prefix -w json
		$e get k1 --rev 99 2>&1 | grep -o 'Error:.*'
		$e compaction 3 2>&1
		$e get k1 --rev 2 2>&1 | grep -o 'Error:.*'
		$e lease revoke 1234 2>&1 | grep -o 'Error:.*'
		$e put k1 v --lease 1234 2>&1 | grep -o 'Error:.*'
		$e get "" 2>&1 | grep -o 'Error:.*'
	}
	dsys=$(session "127.0.0.1:${ports[0]}" | strip_ids)
	etcd=$(session "$ETCD_ENDPOINT" | strip_ids)
	echo "dsys-raft:"$'\n'"$dsys"$'\n'"etcd:"$'\n'"$etcd"
	[ "$(wc -l <<<"$etcd")" -ge 15 ]
	[[ $etcd == *'"value": "djFi"'* ]]   # v1b: the session really ran
	[[ $etcd == *"required revision is a future revision"* ]]
	[ "$dsys" = "$etcd" ]
}

@test "raft grpc: a txn compare-and-swap takes the success branch once, then the failure branch" {
	ctl 0 put /g3/lock free
	run ctl 1 txn <<<$'value("/g3/lock") = "free"\n\nput /g3/lock taken\n\nget /g3/lock\n'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = SUCCESS ]
	run ctl 2 txn <<<$'value("/g3/lock") = "free"\n\nput /g3/lock taken-again\n\nget /g3/lock\n'
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = FAILURE ]
	[ "${lines[-1]}" = taken ]
	run ctl 0 get /g3/lock --print-value-only
	[ "$output" = taken ]
}

@test "raft grpc: etcdctl del removes one key or a prefix and reports how many" {
	ctl 0 put /g4/a 1
	ctl 0 put /g4/b 2
	ctl 0 put /g4x 3
	run ctl 1 del /g4/a
	[ "$output" = 1 ]
	run ctl 1 del /g4/a
	[ "$output" = 0 ]
	run ctl 2 del --prefix /g4/ --prev-kv
	[ "$output" = $'1\n/g4/b\n2' ]
	run ctl 0 get --prefix /g4 --print-value-only
	[ "$output" = 3 ]
}

@test "raft grpc: a lease is granted, lists, shows its keys and TTL, and its key goes when it expires" {
	run ctl 0 lease grant 2
	[ "$status" -eq 0 ]
	local id
	id=$(awk '/granted/ {print $2}' <<<"$output")
	[ -n "$id" ]
	ctl 1 put /g5/eph here --lease "$id"
	run ctl 2 lease timetolive "$id" --keys
	[[ $output == "lease $id granted with TTL(2s), remaining("*"attached keys([/g5/eph])" ]]
	run ctl 0 lease list
	[[ $output == *"$id"* ]]
	run ctl 0 get /g5/eph --print-value-only
	[ "$output" = here ]
	# expiry is the leader's, on its clock: the key is gone within a few TTLs
	local k
	for ((k = 0; k < 80; k++)); do
		[ -z "$(ctl 0 get /g5/eph --print-value-only)" ] && break
		sleep 0.1
	done
	run ctl 1 get /g5/eph
	[ -z "$output" ]
	run ctl 0 lease timetolive "$id"
	[ "$output" = "lease $id already expired" ]
}

@test "raft grpc: a revoked lease takes its keys and a second revoke is etcd's NotFound" {
	local id
	id=$(ctl 0 lease grant 60 | awk '{print $2}')
	ctl 0 put /g6/k v --lease "$id"
	run ctl 1 lease revoke "$id"
	[ "$output" = "lease $id revoked" ]
	run ctl 2 get /g6/k
	[ -z "$output" ]
	run ctl 0 lease revoke "$id"
	[ "$status" -ne 0 ]
	[[ $output == *"code = NotFound desc = etcdserver: requested lease not found"* ]]
	[[ $output == *"Error: failed to revoke lease (etcdserver: requested lease not found)"* ]]
}

@test "raft grpc: member list names the 3 members and endpoint status shows one leader among them" {
	run ctl 1 member list -w json
	[ "$status" -eq 0 ]
	[ "$(jq '.members | length' <<<"$output")" = 3 ]
	[ "$(jq -r '[.members[].name] | sort | join(",")' <<<"$output")" = n1,n2,n3 ]
	run etcdctl --endpoints "$GRPC_EPS" endpoint status -w json
	[ "$status" -eq 0 ]
	[ "$(jq length <<<"$output")" = 3 ]
	[ "$(jq '[.[].Status.leader] | unique | length' <<<"$output")" = 1 ]
	[ "$(jq '[.[] | select(.Status.header.member_id == .Status.leader)] | length' <<<"$output")" = 1 ]
	[ "$(jq -r '.[0].Status.version' <<<"$output")" = 3.4.23 ]
	run etcdctl --endpoints "$GRPC_EPS" endpoint health
	[ "$status" -eq 0 ]
	[ "$(grep -c 'is healthy: successfully committed proposal' <<<"$output")" = 3 ]
}

@test "raft grpc: etcdctl --cluster commands reach every member through its client URL (grpc-go sends :authority with http://)" {
	run ctl 0 endpoint status --cluster -w json
	[ "$status" -eq 0 ]
	[ "$(jq length <<<"$output")" = 3 ]
	[ "$(jq -r '[.[].Endpoint] | sort | join(",")' <<<"$output")" = \
		"$(printf 'http://127.0.0.1:%s\n' "${P[@]}" | sort | paste -sd,)" ]
	[ "$(jq '[.[].Status.leader] | unique | length' <<<"$output")" = 1 ]
	run ctl 0 endpoint health --cluster
	[ "$status" -eq 0 ]
	[ "$(grep -c 'is healthy: successfully committed proposal' <<<"$output")" = 3 ]
	run ctl 0 put cluster-hash v
	[ "$status" -eq 0 ]
	run ctl 0 endpoint hashkv --cluster -w json
	[ "$status" -eq 0 ]
	[ "$(jq length <<<"$output")" = 3 ]
}

@test "raft grpc: errors carry etcd's gRPC codes and messages: future and compacted revisions, empty key" {
	ctl 0 put /g8/a 1
	local rev
	rev=$(ctl 0 get /g8/a -w json | jq .header.revision)
	run ctl 1 get /g8/a --rev $((rev + 1000))
	[ "$status" -ne 0 ]
	[[ $output == *"code = OutOfRange desc = etcdserver: mvcc: required revision is a future revision"* ]]
	ctl 0 put /g8/a 2
	ctl 0 compaction "$rev"
	run ctl 2 get /g8/a --rev $((rev - 1))
	[ "$status" -ne 0 ]
	[[ $output == *"code = OutOfRange desc = etcdserver: mvcc: required revision has been compacted"* ]]
	run ctl 0 put "" v
	[ "$status" -ne 0 ]
	[[ $output == *"etcdserver: key is not provided"* ]]
}

@test "raft grpc: a put with ignore_value and a value, or ignore_lease and a lease, is refused as etcd refuses it (gRPC, in a txn, and the gateway)" {
	etcd_start
	# the same requests against each; every line compared
	session() {
		"$DSYS_PY" - "$1" <<'EOF'
import json, sys, urllib.request
import grpc
from etcd3.etcdrpc import rpc_pb2, rpc_pb2_grpc
ep = sys.argv[1]
kv = rpc_pb2_grpc.KVStub(grpc.insecure_channel(ep))
def call(what, f, req):
    try:
        f(req, timeout=5)
        print(what, "OK")
    except grpc.RpcError as e:
        print(what, e.code().name, e.details())
kv.Put(rpc_pb2.PutRequest(key=b"/iv/k", value=b"old"), timeout=5)
call("value", kv.Put, rpc_pb2.PutRequest(key=b"/iv/k", value=b"new", ignore_value=True))
call("lease", kv.Put, rpc_pb2.PutRequest(key=b"/iv/k", lease=7, ignore_lease=True))
call("both", kv.Put, rpc_pb2.PutRequest(key=b"/iv/k", value=b"x", lease=7, ignore_value=True, ignore_lease=True))
call("neither", kv.Put, rpc_pb2.PutRequest(key=b"/iv/k", ignore_value=True, ignore_lease=True))
op = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"/iv/t", value=b"x", ignore_value=True))
call("txn", kv.Txn, rpc_pb2.TxnRequest(success=[op]))
print("value after", kv.Range(rpc_pb2.RangeRequest(key=b"/iv/k"), timeout=5).kvs[0].value.decode())
print("txn key", kv.Range(rpc_pb2.RangeRequest(key=b"/iv/t"), timeout=5).count)
body = json.dumps({"key": "L2l2L2s=", "value": "eA==", "ignore_value": True}).encode()
try:
    urllib.request.urlopen("http://" + ep + "/v3/kv/put", body, timeout=5)
    print("gateway 200")
except urllib.error.HTTPError as e:
    o = json.loads(e.read())
    print("gateway", e.code, o.get("error"), o.get("code"))
EOF
	}
	dsys=$(session "127.0.0.1:${P[1]}")
	etcd=$(session "127.0.0.1:$ETCD_PORT")
	echo "dsys-raft:"$'\n'"$dsys"$'\n'"etcd:"$'\n'"$etcd"
	[[ $etcd == *"value INVALID_ARGUMENT etcdserver: value is provided"* ]]
	[[ $etcd == *"lease INVALID_ARGUMENT etcdserver: lease is provided"* ]]
	[ "$dsys" = "$etcd" ]
}

@test "raft grpc: python3-etcd3 puts, reads a prefix, runs a transaction, uses a lease and sees NOT_FOUND" {
	run "$DSYS_PY" - "${P[1]}" <<'EOF'
import sys
import etcd3
import grpc
c = etcd3.client(host="127.0.0.1", port=int(sys.argv[1]))
c.put("/g9/a", "1")
c.put("/g9/b", "2")
print(c.get("/g9/a")[0].decode())
print(",".join(sorted(v.decode() for v, _ in c.get_prefix("/g9/"))))
ok, _ = c.transaction(compare=[c.transactions.value("/g9/a") == "1"],
                      success=[c.transactions.put("/g9/a", "10")], failure=[])
print(ok, c.get("/g9/a")[0].decode())
ok, _ = c.transaction(compare=[c.transactions.value("/g9/a") == "1"],
                      success=[c.transactions.put("/g9/a", "11")], failure=[])
print(ok, c.get("/g9/a")[0].decode())
l = c.lease(30)
c.put("/g9/l", "x", lease=l)
print(l.granted_ttl, [k.decode() for k in l.keys])
l.revoke()
print(c.get("/g9/l")[0])
print(c.status().version, len(list(c.members)))
try:
    c.revoke_lease(12345)
except grpc.RpcError as e:
    print(e.code().name, e.details())
EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "1
1,2
True 10
False 10
30 ['/g9/l']
None
3.4.23 3
NOT_FOUND etcdserver: requested lease not found" ]
}

@test "raft grpc: etcdctl watch streams puts and deletes under a prefix as a writer makes them, in order" {
	ctl 0 put /g11/before 0
	timeout 20 etcdctl --endpoints "127.0.0.1:${P[1]}" watch --prefix /g11/w >"$BATS_TEST_TMPDIR/watch.out" 2>&1 &
	local wpid=$! k
	sleep 1
	ctl 0 put /g11/w1 one
	ctl 2 put /g11/w2 two
	ctl 0 del /g11/w1
	ctl 1 put /g11/other x
	ctl 0 put /g11/w3 three
	for ((k = 0; k < 100; k++)); do
		grep -q three "$BATS_TEST_TMPDIR/watch.out" && break
		sleep 0.1
	done
	kill "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null || :
	run cat "$BATS_TEST_TMPDIR/watch.out"
	[ "$output" = "PUT
/g11/w1
one
PUT
/g11/w2
two
DELETE
/g11/w1

PUT
/g11/w3
three" ]
	# the member still serves after its watcher went away
	run ctl 1 get /g11/w3 --print-value-only
	[ "$output" = three ]
}

@test "raft grpc: etcdctl watch --rev replays history from that revision, the same events a real etcd sends" {
	local ports
	ports=($(etcd_free_ports 2))
	dsys-raft node --name n1 --data-dir "$BATS_TEST_TMPDIR/r1" --listen-client "127.0.0.1:${ports[0]}" \
		--listen-peer "127.0.0.1:${ports[1]}" --initial-cluster "n1=http://127.0.0.1:${ports[1]}" \
		--heartbeat-interval 50ms --election-timeout 500ms >"$BATS_TEST_TMPDIR/r1.out" 2>/dev/null 3>&- &
	RAFT1_PID=$!
	wait_ready "$BATS_TEST_TMPDIR/r1.out" "$RAFT1_PID" >/dev/null
	etcd_start
	session() {
		local e="etcdctl --endpoints $1 --command-timeout 5s"
		$e put a 1 >/dev/null
		$e put b 2 >/dev/null
		$e put a 3 >/dev/null
		$e del a >/dev/null
		timeout 3 $e watch --rev 2 --prefix "" --prev-kv -w json || :
	}
	local dsys etcd
	dsys=$(session "127.0.0.1:${ports[0]}" | strip_ids | sed 's/"revision": [0-9]*, //')
	etcd=$(session "$ETCD_ENDPOINT" | strip_ids | sed 's/"revision": [0-9]*, //')
	echo "dsys-raft: $dsys"
	echo "etcd:      $etcd"
	[[ $etcd == *'"Events": [{"kv": {"create_revision": 2'* ]]
	[ "$dsys" = "$etcd" ]
}

@test "raft grpc: etcdctl lease keep-alive keeps a 2 s lease and its key past its TTL; lock runs a command holding the lock" {
	local id
	id=$(ctl 0 lease grant 2 | awk '{print $2}')
	ctl 0 put /g12/ka alive --lease "$id"
	timeout 5 etcdctl --endpoints "127.0.0.1:${P[1]}" lease keep-alive "$id" >"$BATS_TEST_TMPDIR/ka.out" 2>&1 &
	local kpid=$!
	sleep 4
	run ctl 2 get /g12/ka --print-value-only
	[ "$output" = alive ]
	wait "$kpid" || :
	[ "$(grep -c "lease $id keepalived with TTL(2)" "$BATS_TEST_TMPDIR/ka.out")" -ge 2 ]
	run ctl 0 lease keep-alive --once "$id"
	[ "$output" = "lease $id keepalived with TTL(2)" ]
	run timeout 15 etcdctl --endpoints "127.0.0.1:${P[2]}" lock /g12/lock echo holding
	[ "$status" -eq 0 ]
	[ "$output" = holding ]
}

@test "raft grpc: a malformed request message is INVALID_ARGUMENT and the node keeps serving" {
	# a RangeRequest whose field 1 (key, bytes) claims 100 bytes and has 2
	printf '\x00\x00\x00\x00\x04\x0a\x64ab' >"$BATS_TEST_TMPDIR/bad.bin"
	run curl -s --http2-prior-knowledge -m 5 -D - -o /dev/null -H 'content-type: application/grpc' \
		-H 'te: trailers' --data-binary @"$BATS_TEST_TMPDIR/bad.bin" "http://127.0.0.1:${P[0]}/etcdserverpb.KV/Range"
	echo "$output"
	[[ $output == *"grpc-status: 3"* ]]
	run ctl 0 put /g10/after ok
	[ "$output" = OK ]
}
