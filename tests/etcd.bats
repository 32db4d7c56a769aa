#!/usr/bin/env bats
# lib/store/etcd against real etcd-server 3.4 processes (tests/etcd_helpers.bash),
# through tests/bench/etcd_cli (built by make), cross-checked with etcdctl.

load helpers
load etcd_helpers
bats_require_minimum_version 1.5.0

setup_file() {
	command -v etcd >/dev/null || fail "etcd is not installed (make deps installs etcd-server)"
	command -v etcdctl >/dev/null || fail "etcdctl is not installed (make deps installs etcd-client)"
}

setup() {
	ETCD_PID=
	ETCD_CLUSTER_PIDS=()
	CLI=${DSYS_BUILD:-$BATS_TEST_DIRNAME/../build}/bench/etcd_cli
	[ -x "$CLI" ] || fail "$CLI is missing: run make first"
	export ETCDCTL_API=3
}

teardown() {
	[[ -n ${WATCH_PID:-} ]] && { kill "$WATCH_PID" 2>/dev/null; wait "$WATCH_PID" 2>/dev/null; }
	etcd_teardown
}

# field JSON KEY: one top-level field of a JSON line
field() { /usr/bin/python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(json.dumps(eval("v"+sys.argv[2]), ensure_ascii=False))' "$1" "$2"; }

@test "etcd: a put by the client is read by etcdctl, and a put by etcdctl is read by the client" {
	etcd_start
	run -0 "$CLI" "$ETCD_URL" put greeting 'hello world'
	run ctl get greeting --print-value-only
	assert_output 'hello world'
	ctl put from-ctl 'ünïcode value' >/dev/null
	run -0 "$CLI" "$ETCD_URL" get from-ctl
	[ "$(field "$output" '["kvs"][0]["value"]')" = '"ünïcode value"' ]
	ctl put dir/a 1 >/dev/null
	ctl put dir/b 2 >/dev/null
	ctl put dis 3 >/dev/null
	run -0 "$CLI" "$ETCD_URL" get dir/ prefix
	[ "$(field "$output" '["count"]')" = 2 ]
	[ "$(field "$output" '[ "kvs"][1]["key"]')" = '"dir/b"' ]
	run -0 "$CLI" "$ETCD_URL" del dir/ prefix
	[ "$(field "$output" '["deleted"]')" = 2 ]
	run ctl get dir/ --prefix --keys-only
	assert_output ''
	run ctl get dis --print-value-only
	assert_output 3
	ctl del greeting >/dev/null
	run -0 "$CLI" "$ETCD_URL" get greeting
	[ "$(field "$output" '["count"]')" = 0 ]
}

@test "etcd: gRPC (etcd://) and the JSON gateway (etcd+json://) give the same answers" {
	etcd_start
	J=${ETCD_URL/etcd:/etcd+json:}
	same() {   # same OP ARGS...: one answer and exit code on both transports
		local g j gc=0 jc=0
		g=$("$CLI" "$ETCD_URL" "$@") || gc=$?
		j=$("$CLI" "$J" "$@") || jc=$?
		[ "$g" = "$j" ] && [ "$gc" = "$jc" ] || { echo "grpc $gc: $g"; echo "json $jc: $j"; return 9; }
		echo "$g"
		return "$gc"
	}
	run -0 "$CLI" "$J" put a 'x y'
	run -0 "$CLI" "$ETCD_URL" put b $'\xff\x01z'
	run -0 same get '' prefix
	[ "$(field "$output" '["count"]')" = 2 ]
	run -0 same get a
	[ "$(field "$output" '["kvs"][0]["value"]')" = '"x y"' ]
	run -1 same get a one 999999
	[ "$(field "$output" '["etcd_code"]')" = 11 ]
	run -0 "$CLI" "$ETCD_URL" grant 60
	lease=$(field "$output" '["id"]')
	run -0 "$CLI" "$J" put c 1 "$lease"
	# the same lease seen from both; its remaining ttl may tick down a
	# second between the two calls (it did under ASan), the rest may not
	g=$("$CLI" "$ETCD_URL" ttl "$lease")
	j=$("$CLI" "$J" ttl "$lease")
	echo "grpc: $g"$'\n'"json: $j"
	run -0 /usr/bin/python3 -c '
import json, sys
g, j, lease = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
assert g["id"] == lease and 0 < g["ttl"] <= 60, g
assert 0 <= g["ttl"] - j["ttl"] <= 1, (g, j)
del g["ttl"], j["ttl"]
assert g == j, (g, j)' "$g" "$j" "$lease"
	run -0 same get c
	[ "$(field "$output" '["kvs"][0]["lease"]')" = "$lease" ]
	run -0 "$CLI" "$J" keepalive "$lease"
	[ "$(field "$output" '["ttl"]')" = 60 ]
	run -0 "$CLI" "$ETCD_URL" keepalive "$lease"
	[ "$(field "$output" '["ttl"]')" = 60 ]
	run -1 "$CLI" "$ETCD_URL" create c 2
	[ "$(field "$output" '["succeeded"]')" = false ]
	run -0 "$CLI" "$ETCD_URL" revoke "$lease"
	run -1 same revoke "$lease"
	[ "$(field "$output" '["etcd_code"]')" = 5 ]
	run -0 same keepalive "$lease"
	[ "$(field "$output" '["ttl"]')" = 0 ]
	run -0 "$CLI" "$ETCD_URL" del '' prefix
	[ "$(field "$output" '["deleted"]')" = 2 ]
}

@test "etcd: revisions, versions and create revisions agree exactly with etcdctl" {
	etcd_start
	for i in 1 2 3; do "$CLI" "$ETCD_URL" put k "v$i" >/dev/null; done
	run -0 "$CLI" "$ETCD_URL" get k
	ours=$output
	theirs=$(ctl get k -w json)
	[ "$(field "$ours" '["kvs"][0]["mod_revision"]')" = "$(field "$theirs" '["kvs"][0]["mod_revision"]')" ]
	[ "$(field "$ours" '["kvs"][0]["create_revision"]')" = "$(field "$theirs" '["kvs"][0]["create_revision"]')" ]
	[ "$(field "$ours" '["kvs"][0]["version"]')" = 3 ]
	[ "$(field "$ours" '["revision"]')" = "$(field "$theirs" '["header"]["revision"]')" ]
	# an old revision reads the old value
	rev=$(field "$ours" '["kvs"][0]["create_revision"]')
	run -0 "$CLI" "$ETCD_URL" get k one "$rev"
	[ "$(field "$output" '["kvs"][0]["value"]')" = '"v1"' ]
	# a future revision is etcd's own error (code 11, out of range), exit 1
	run -1 "$CLI" "$ETCD_URL" get k one 999999
	[ "$(field "$output" '["etcd_code"]')" = 11 ]
}

@test "etcd: a txn on create_revision == 0 succeeds once and fails the second time" {
	etcd_start
	run -0 "$CLI" "$ETCD_URL" create lock first
	[ "$(field "$output" '["succeeded"]')" = true ]
	created=$(field "$output" '["revision"]')
	run -1 "$CLI" "$ETCD_URL" create lock second
	[ "$(field "$output" '["succeeded"]')" = false ]
	[ "$(field "$output" '["create_revision"]')" = "$created" ]
	run ctl get lock --print-value-only
	assert_output first
}

@test "etcd: a key put with a lease vanishes when the lease is revoked" {
	etcd_start
	run -0 "$CLI" "$ETCD_URL" grant 60
	id=$(field "$output" '["id"]')
	[ "$(field "$output" '["ttl"]')" = 60 ]
	run -0 "$CLI" "$ETCD_URL" put leased v "$id"
	run -0 "$CLI" "$ETCD_URL" get leased
	[ "$(field "$output" '["kvs"][0]["lease"]')" = "$id" ]
	run ctl lease timetolive "$(printf %x "$id")"
	assert_output --partial 'granted with TTL(60s)'
	run -0 "$CLI" "$ETCD_URL" keepalive "$id"
	[ "$(field "$output" '["ttl"]')" = 60 ]
	run -0 "$CLI" "$ETCD_URL" revoke "$id"
	run ctl get leased
	assert_output ''
	run -0 "$CLI" "$ETCD_URL" ttl "$id"
	[ "$(field "$output" '["ttl"]')" = -1 ]
	run -1 "$CLI" "$ETCD_URL" revoke "$id"
	[ "$(field "$output" '["etcd_code"]')" = 5 ]
}

@test "etcd: a watch sees a put and a delete in order, and resumes after etcd restarts without losing or repeating one" {
	etcd_start
	run -0 "$CLI" "$ETCD_URL" get w/ prefix
	rev=$(field "$output" '["revision"]')
	timeout 30 "$CLI" "$ETCD_URL" watch w/ prefix $((rev + 1)) 4 >"$BATS_TEST_TMPDIR/watch.out" 2>"$BATS_TEST_TMPDIR/watch.err" 3>&- &
	WATCH_PID=$!
	"$CLI" "$ETCD_URL" put w/a 1 >/dev/null
	"$CLI" "$ETCD_URL" del w/a >/dev/null
	for ((i = 0; i < 100; i++)); do
		[ "$(wc -l <"$BATS_TEST_TMPDIR/watch.out")" -ge 2 ] && break
		sleep 0.05
	done
	[ "$(wc -l <"$BATS_TEST_TMPDIR/watch.out")" -eq 2 ]
	etcd_kill
	etcd_restart
	ctl put w/b 2 >/dev/null
	ctl del w/b >/dev/null
	st=0
	wait "$WATCH_PID" || st=$?
	WATCH_PID=
	[ "$st" -eq 0 ]
	run cat "$BATS_TEST_TMPDIR/watch.out"
	[ "${#lines[@]}" -eq 4 ]
	[ "$(field "${lines[0]}" '["type"]')" = '"put"' ]
	[ "$(field "${lines[0]}" '["key"]')" = '"w/a"' ]
	[ "$(field "${lines[1]}" '["type"]')" = '"delete"' ]
	[ "$(field "${lines[1]}" '["key"]')" = '"w/a"' ]
	[ "$(field "${lines[2]}" '["type"]')" = '"put"' ]
	[ "$(field "${lines[2]}" '["key"]')" = '"w/b"' ]
	[ "$(field "${lines[3]}" '["type"]')" = '"delete"' ]
	# revisions go up by one from the start: nothing lost, nothing repeated
	for i in 0 1 2 3; do
		[ "$(field "${lines[i]}" '["mod_revision"]')" -eq $((rev + 1 + i)) ]
	done
}

@test "etcd: calls fail over to the next member when the one in use is killed" {
	etcd_cluster_start 3
	# The first endpoint must be a follower: killing the leader drops the
	# proposals in flight (etcd's own "request timed out"), which is a
	# different test.  Put a follower first in the URL.
	first=$(etcdctl --endpoints "$ETCD_CLUSTER_ENDPOINTS" endpoint status -w json |
		/usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print([i for i,e in enumerate(s) if e["Status"]["leader"] != e["Status"]["header"]["member_id"]][0])')
	order=("$first")
	for i in 0 1 2; do [ "$i" = "$first" ] || order+=("$i"); done
	url="etcd://127.0.0.1:${ETCD_CLUSTER_PORTS[order[0]]},127.0.0.1:${ETCD_CLUSTER_PORTS[order[1]]},127.0.0.1:${ETCD_CLUSTER_PORTS[order[2]]}"
	"$CLI" "$url" putloop fo 40 50 >"$BATS_TEST_TMPDIR/loop.out" 3>&- &
	loop=$!
	for ((i = 0; i < 100; i++)); do
		[ "$(wc -l <"$BATS_TEST_TMPDIR/loop.out")" -ge 5 ] && break
		sleep 0.05
	done
	used=$(tail -1 "$BATS_TEST_TMPDIR/loop.out" | /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["endpoint"])')
	[ "$used" = "127.0.0.1:${ETCD_CLUSTER_PORTS[first]}" ]
	etcd_cluster_kill "$first"
	wait "$loop" || :
	run cat "$BATS_TEST_TMPDIR/loop.out"
	[ "${#lines[@]}" -eq 40 ]
	# Every put succeeded, except at most one caught in flight on the killed
	# member: that one gets -ECONNRESET (-104, outcome unknown), never a
	# silent resend that could apply it twice.
	bad=$(grep -v '"rc":0,' "$BATS_TEST_TMPDIR/loop.out" | grep -vc '"rc":-104,' || :)
	unknown=$(grep -c '"rc":-104,' "$BATS_TEST_TMPDIR/loop.out" || :)
	[ "$bad" -eq 0 ] || { cat "$BATS_TEST_TMPDIR/loop.out"; false; }
	[ "$unknown" -le 1 ]
	[ "$(field "${lines[39]}" '["endpoint"]')" != "\"$used\"" ]
	run etcdctl --endpoints "$ETCD_CLUSTER_ENDPOINTS" get fo --print-value-only
	assert_output 39
}

@test "etcd: a watch moves to the next member when its member is killed, without losing or repeating an event" {
	etcd_cluster_start 3
	first=$(etcdctl --endpoints "$ETCD_CLUSTER_ENDPOINTS" endpoint status -w json |
		/usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print([i for i,e in enumerate(s) if e["Status"]["leader"] != e["Status"]["header"]["member_id"]][0])')
	order=("$first")
	for i in 0 1 2; do [ "$i" = "$first" ] || order+=("$i"); done
	url="etcd://127.0.0.1:${ETCD_CLUSTER_PORTS[order[0]]},127.0.0.1:${ETCD_CLUSTER_PORTS[order[1]]},127.0.0.1:${ETCD_CLUSTER_PORTS[order[2]]}"
	others="http://127.0.0.1:${ETCD_CLUSTER_PORTS[order[1]]},http://127.0.0.1:${ETCD_CLUSTER_PORTS[order[2]]}"
	run -0 "$CLI" "$url" get m/ prefix
	rev=$(field "$output" '["revision"]')
	timeout 30 "$CLI" "$url" watch m/ prefix $((rev + 1)) 3 >"$BATS_TEST_TMPDIR/watch.out" 3>&- &
	WATCH_PID=$!
	etcdctl --endpoints "$others" put m/1 a >/dev/null
	for ((i = 0; i < 100; i++)); do
		[ -s "$BATS_TEST_TMPDIR/watch.out" ] && break
		sleep 0.05
	done
	[ -s "$BATS_TEST_TMPDIR/watch.out" ]
	etcd_cluster_kill "$first"
	etcdctl --endpoints "$others" put m/2 b >/dev/null
	etcdctl --endpoints "$others" put m/3 c >/dev/null
	st=0
	wait "$WATCH_PID" || st=$?
	WATCH_PID=
	[ "$st" -eq 0 ]
	run cat "$BATS_TEST_TMPDIR/watch.out"
	[ "${#lines[@]}" -eq 3 ]
	for i in 0 1 2; do
		[ "$(field "${lines[i]}" '["key"]')" = "\"m/$((i + 1))\"" ]
		[ "$(field "${lines[i]}" '["mod_revision"]')" -eq $((rev + 1 + i)) ]
	done
}

@test "etcd: an unreachable endpoint list gives the unreachable code within the timeout" {
	ports=($(etcd_free_ports 3))
	start=$(date +%s%N)
	run -3 "$CLI" -t 2000 "etcd://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}" get k
	ms=$((($(date +%s%N) - start) / 1000000))
	[ "$(field "$output" '["error"]')" = '"no etcd endpoint reachable"' ]
	[ "$ms" -lt 2500 ]
}

@test "etcd: an endpoint that accepts but never answers gives the timeout code within the timeout" {
	port=$(etcd_free_ports 1)
	/usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); print("ready", flush=True); time.sleep(30)' "$port" \
		>"$BATS_TEST_TMPDIR/mute.out" 3>&- &
	WATCH_PID=$!
	for ((i = 0; i < 100; i++)); do [ -s "$BATS_TEST_TMPDIR/mute.out" ] && break; sleep 0.05; done
	start=$(date +%s%N)
	run -4 "$CLI" -t 1000 "etcd://127.0.0.1:$port" get k
	ms=$((($(date +%s%N) - start) / 1000000))
	[ "$(field "$output" '["error"]')" = '"timed out"' ]
	[ "$ms" -ge 900 ]
	[ "$ms" -lt 2000 ]
}

@test "etcd: the gateway (etcd+json://) keeps one kept-alive connection, reads chunked and sized answers, and reconnects after Connection: close" {
	port=$(etcd_free_ports 1)
	# a stand-in gateway: answer i (1-based) is sized (1), chunked in
	# pieces (2), sized with Connection: close (3), then sized again (4,
	# on a new connection); it counts the connections it accepted
	/usr/bin/python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); print("ready", flush=True)
n = conns = 0
while n < 4:
    c, _ = s.accept(); conns += 1; data = b""
    while n < 4:
        while b"\r\n\r\n" not in data:
            got = c.recv(65536)
            if not got: break
            data += got
        if b"\r\n\r\n" not in data: break
        head, _, data = data.partition(b"\r\n\r\n")
        assert head.startswith(b"POST /v3/kv/put HTTP/1.1\r\n"), head
        length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
        while len(data) < length: data += c.recv(65536)
        data = data[length:]
        n += 1
        body = b"{\"header\":{\"revision\":\"%d\"}}" % (100 + n)
        if n == 2:
            out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            for i in range(0, len(body), 7):
                out += b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
            c.sendall(out + b"0\r\n\r\n")
        else:
            close = b"Connection: close\r\n" if n == 3 else b""
            c.sendall(b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (close, len(body), body))
            if n == 3: break
    c.close()
print("connections", conns, flush=True)' "$port" >"$BATS_TEST_TMPDIR/gw.out" 3>&- &
	WATCH_PID=$!
	for ((i = 0; i < 100; i++)); do [ -s "$BATS_TEST_TMPDIR/gw.out" ] && break; sleep 0.05; done
	run -0 "$CLI" -t 3000 "etcd+json://127.0.0.1:$port" putloop k 4 0
	[ "${#lines[@]}" -eq 4 ]
	for i in 0 1 2 3; do
		[ "$(field "${lines[i]}" '["rc"]')" -eq 0 ]
		[ "$(field "${lines[i]}" '["revision"]')" -eq $((101 + i)) ]
	done
	wait "$WATCH_PID"
	WATCH_PID=
	run grep -c '^connections 2$' "$BATS_TEST_TMPDIR/gw.out"
	[ "$output" = 1 ]
}
