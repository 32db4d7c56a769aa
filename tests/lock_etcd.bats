#!/usr/bin/env bats
# dsys-lock on etcd:// against real etcd-server 3.4 members
# (tests/etcd_helpers.bash), cross-checked with Debian's etcdctl 3.4: the
# concurrency package's key layout, exclusion with etcdctl lock, waiting by
# watch, a lease revoked from outside, and contention across a leader kill.

load helpers
load etcd_helpers
load lock_helpers
bats_require_minimum_version 1.5.0
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-120}

setup_file() {
	etcd_require
}

setup() {
	lock_setup
	etcd_reset
}

teardown() { lock_teardown etcd_teardown; }

@test "lock etcd: acquire, status, renew and release keep their promises, in etcd's concurrency layout" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	run --separate-stderr dsys-lock acquire job --ttl 10s --owner me
	assert_success
	grant=$output
	"$DSYS_PY" - "$grant" <<'EOF'
import json, re, sys
g = json.loads(sys.argv[1])
assert set(g) == {"name", "owner", "token", "fence", "lease", "ttl_ms", "expires_at", "store"}, g
assert re.fullmatch(r"[0-9a-f]{32}", g["token"]), g
assert re.fullmatch(r"[0-9a-f]{16}", g["lease"]) and g["token"].startswith(g["lease"]), g
assert g["ttl_ms"] == 10000 and g["owner"] == "me" and g["fence"] >= 1, g
EOF
	fence=$(field "$grant" fence)
	token=$(field "$grant" token)
	lease=$(field "$grant" lease)
	# the key: PREFIX/LEASE-in-hex as etcdctl prints it, created at the fence
	key="dsys/locks/job/$(printf %x "0x$lease")"
	run ctl get --prefix dsys/locks/job/ --keys-only
	assert_output "$key"
	run ctl get "$key" -w json
	[[ $output == *"\"create_revision\":$fence,"* ]]

	run -1 dsys-lock acquire job --nowait
	run -9 dsys-lock acquire job --nowait --conflict-exit-code 9
	run --separate-stderr dsys-lock status job
	assert_success
	[ "$(field "$output" held)" = True ]
	[ "$(field "$output" fence)" = "$fence" ]
	[ "$(field "$output" owner)" = me ]
	# a miss leaves nothing queued
	run ctl get --prefix dsys/locks/job/ --keys-only
	assert_output "$key"

	run -1 dsys-lock release job --token 0123456789abcdef0123456789abcdef
	run -1 dsys-lock release job --token "${lease}0123456789abcdef"   # right lease, wrong token
	run -1 dsys-lock renew job --token 0123456789abcdef0123456789abcdef
	run --separate-stderr dsys-lock renew <<<"$grant"
	assert_success
	[ "$(field "$output" fence)" = "$fence" ]
	run --separate-stderr dsys-lock release job --token "$token"
	assert_output '{"name":"job","released":true}'
	run ctl get --prefix dsys/locks/job/ --keys-only
	assert_output ''
	run --separate-stderr dsys-lock status job
	assert_output '{"name":"job","held":false}'
	run -1 dsys-lock release <<<"$grant"
	run --separate-stderr dsys-lock acquire job --nowait
	assert_success
	[ "$(field "$output" fence)" -gt "$fence" ]
}

@test "lock etcd: etcdctl lock and dsys-lock acquire exclude each other" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	# etcdctl holds: dsys-lock misses, then gets it when etcdctl's command ends
	ctl_bg lock dsys/locks/shared -- sh -c "touch $BATS_TEST_TMPDIR/ctl-in; sleep 1.5" >/dev/null 3>&- &
	BG+=($!)
	for ((i = 0; i < 200; i++)); do [ -e "$BATS_TEST_TMPDIR/ctl-in" ] && break; sleep 0.02; done
	run -1 dsys-lock acquire shared --nowait
	run --separate-stderr dsys-lock status shared
	[ "$(field "$output" held)" = True ]
	run --separate-stderr dsys-lock acquire shared --wait 10s --ttl 20s
	assert_success
	[ ! -e "$BATS_TEST_TMPDIR/ctl-out" ]
	grant=$output
	# dsys-lock holds: etcdctl waits until the release
	ctl_bg lock dsys/locks/shared -- touch "$BATS_TEST_TMPDIR/ctl-out" 3>&- &
	ctlpid=$!
	BG+=("$ctlpid")
	sleep 1
	[ ! -e "$BATS_TEST_TMPDIR/ctl-out" ]
	run -0 dsys-lock release <<<"$grant"
	wait "$ctlpid"
	[ -e "$BATS_TEST_TMPDIR/ctl-out" ]
}

@test "lock etcd: a lease id that is already someone's (forced by the test hook) is never revoked nor left with our key; the acquire goes on with a fresh id" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	# a foreign lease with no key: our txn may put our key under it; it must go
	run -0 curl -sf "$ETCD_ENDPOINT/v3/lease/grant" -d '{"TTL":60,"ID":4660}'
	run --separate-stderr env DSYS_TEST_ETCD_LEASE_ID=1234 dsys-lock acquire col --ttl 20s
	assert_success
	lease=$(field "$output" lease)
	[ "$lease" != 0000000000001234 ]
	keys=$(ctl get --prefix dsys/locks/col/ --keys-only | grep .)
	[ "$keys" = "dsys/locks/col/$(printf %x "0x$lease")" ]
	run -0 ctl lease timetolive 1234
	[[ $output == *"granted with TTL(60s)"* ]]
	# etcdctl holds, and we collide with its lease: its key stays, we miss
	ctl_bg lock dsys/locks/col2 -- sh -c "touch $BATS_TEST_TMPDIR/ctl-in; sleep 3" >/dev/null 3>&- &
	BG+=($!)
	for ((i = 0; i < 200; i++)); do [ -e "$BATS_TEST_TMPDIR/ctl-in" ] && break; sleep 0.02; done
	key=$(ctl get --prefix dsys/locks/col2/ --keys-only | head -1)
	run -1 env DSYS_TEST_ETCD_LEASE_ID="${key##*/}" dsys-lock acquire col2 --nowait
	keys=$(ctl get --prefix dsys/locks/col2/ --keys-only | grep .)
	[ "$keys" = "$key" ]
	run -0 ctl lease timetolive "${key##*/}"
	[[ $output == *"remaining"* ]]
}

# The acquire sends its txn and its grant together (lib/lock/etcd.c); etcd
# applies and answers them in either order.  DSYS_TEST_ETCD_ACQUIRE makes
# each unusual order happen every time.
acquire_in_order() {   # ORDER NAME: acquire, check the key and the TTL, release
	run --separate-stderr env DSYS_TEST_ETCD_ACQUIRE="$1" dsys-lock acquire "$2" --ttl 20s
	assert_success
	grant=$output
	lease=$(field "$grant" lease)
	fence=$(field "$grant" fence)
	[ "$(field "$grant" ttl_ms)" = 20000 ]
	key="dsys/locks/$2/$(printf %x "0x$lease")"
	run -0 ctl get --prefix "dsys/locks/$2/" --keys-only
	assert_output "$key"
	run -0 ctl get "$key" -w json
	[[ $output == *"\"create_revision\":$fence,"* ]]
	[[ $output == *"\"lease\":$((0x$lease))"* ]]
	run -0 ctl lease timetolive "$lease"
	[[ $output == *"granted with TTL(20s)"* ]]
	run -1 dsys-lock acquire "$2" --nowait
	run -0 dsys-lock release "$2" --token "$(field "$grant" token)"
	run -0 ctl get --prefix "dsys/locks/$2/" --keys-only
	assert_output ""
}

@test "lock etcd: a txn applied before its grant (no lease yet) changes nothing and is sent again once the grant is in" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	acquire_in_order grant-late gl
	# and a held lock is still refused in that order
	run -0 dsys-lock acquire gl2 --ttl 20s
	run -1 env DSYS_TEST_ETCD_ACQUIRE=grant-late dsys-lock acquire gl2 --nowait
	run -0 ctl get --prefix dsys/locks/gl2/ --keys-only
	[ "$(grep -c . <<<"$output")" = 1 ]
}

@test "lock etcd: a txn that makes us the holder before the grant has answered waits for the TTL the grant gives" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	acquire_in_order answer-late al
}

# A gateway proxy that holds keepalives while $DIR/holdka exists, slows
# grants and txns by 0.5 s while $DIR/slow exists, and answers grants
# "request timed out" (never sent on) while $DIR/failgrant exists
# (etcd+json:// only).
slow_proxy() {   # DIR PORT UPSTREAM_PORT
	cat >"$1/proxy.py" <<'EOF2'
import sys, os, time, http.client, http.server, socketserver
d, port, up = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        p = self.path
        if p.endswith("/lease/keepalive"):
            while os.path.exists(d + "/holdka"): time.sleep(0.01)
        if p.endswith(("/kv/txn", "/lease/grant")) and os.path.exists(d + "/slow"):
            time.sleep(0.5)
        if p.endswith("/lease/grant") and os.path.exists(d + "/failgrant"):
            out = b'{"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14}'
            self.send_response(503); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
            return
        c = http.client.HTTPConnection("127.0.0.1", up)
        c.request("POST", p, body=body, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        self.send_response(r.status)
        self.send_header("Content-Type", "application/json")
        if p.endswith("/watch"):
            self.send_header("Transfer-Encoding", "chunked"); self.end_headers()
            while True:
                b = r.read1(65536)
                if not b: break
                self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b)); self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n"); return
        out = r.read()
        self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
EOF2
	"$DSYS_PY" "$1/proxy.py" "$1" "$2" "$3" 3>&- &
	BG+=($!)
	local i
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

@test "lock etcd: a waiter whose lease is revoked while its keepalive hangs queues again once, under one new lease, and gets the lock" {
	etcd_start
	pport=$(free_port)
	slow_proxy "$BATS_TEST_TMPDIR" "$pport" "$ETCD_PORT"
	run -0 dsys-lock acquire m --ttl 30s --store "$ETCD_URL"
	alease=$(field "$output" lease)
	dsys-lock acquire m --ttl 6s --wait 30s --store "etcd+json://127.0.0.1:$pport" \
		>"$BATS_TEST_TMPDIR/c.out" 2>"$BATS_TEST_TMPDIR/c.err" 3>&- &
	cpid=$!
	BG+=($cpid)
	for ((i = 0; i < 100; i++)); do
		[ "$(ctl get --prefix dsys/locks/m/ --keys-only | grep -c .)" = 2 ] && break
		sleep 0.05
	done
	touch "$BATS_TEST_TMPDIR/holdka"
	sleep 2.5   # the waiter's keepalive (every third of 6 s) is now held
	ckey=$(ctl get --prefix dsys/locks/m/ --keys-only | grep . | grep -v "/$(printf %x "0x$alease")\$")
	[ -n "$ckey" ]
	touch "$BATS_TEST_TMPDIR/slow"
	run -0 ctl lease revoke "${ckey##*/}"
	run -0 ctl lease revoke "$alease"
	sleep 0.15
	rm "$BATS_TEST_TMPDIR/holdka"
	st=0
	wait "$cpid" || st=$?
	cat "$BATS_TEST_TMPDIR/c.err" >&2
	[ "$st" = 0 ]
	rm "$BATS_TEST_TMPDIR/slow"
	clease=$(field "$(cat "$BATS_TEST_TMPDIR/c.out")" lease)
	# one key, the waiter's, under the lease it says it holds
	run -0 ctl get --prefix dsys/locks/m/ --keys-only
	assert_output "dsys/locks/m/$(printf %x "0x$clease")"
	# and no other lease of ours left alive (A's and the lost one revoked)
	run -0 ctl lease list
	assert_line --index 0 "found 1 leases"
}

@test "lock etcd: a grant that fails on an id that is someone's lease neither revokes that lease nor deletes its key" {
	etcd_start
	pport=$(free_port)
	slow_proxy "$BATS_TEST_TMPDIR" "$pport" "$ETCD_PORT"
	run -0 ctl lease grant 300
	other=$(awk '{ print $2 }' <<<"$output")
	run -0 ctl put --lease="$other" other/key v
	touch "$BATS_TEST_TMPDIR/failgrant"
	run -3 env DSYS_TEST_ETCD_LEASE_ID="$other" dsys-lock acquire col --store "etcd+json://127.0.0.1:$pport"
	assert_output --partial "request timed out"
	run -0 ctl get other/key --print-value-only
	assert_output v
	run -0 ctl lease timetolive "$other"
	[[ $output == *"remaining"* ]]
	# and our txn's key under that id, if it made one, is gone
	run -0 ctl get --prefix dsys/locks/col/ --keys-only
	assert_output ""
}

@test "lock etcd: a waiter is woken by the watch of the key ahead as soon as the holder releases" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	run --separate-stderr dsys-lock acquire w --ttl 20s
	grant=$output
	dsys-lock acquire w --wait 10s --ttl 20s >"$BATS_TEST_TMPDIR/second" 3>&- &
	waiter=$!
	BG+=("$waiter")
	for ((i = 0; i < 200; i++)); do
		[ "$(ctl get --prefix dsys/locks/w/ --keys-only | grep -c .)" -eq 2 ] && break
		sleep 0.02
	done
	sleep 0.5
	t0=$(now_ms)
	dsys-lock release <<<"$grant" >/dev/null
	wait "$waiter"
	t1=$(now_ms)
	((t1 - t0 < 500))
	[ "$(field "$(cat "$BATS_TEST_TMPDIR/second")" fence)" -gt "$(field "$grant" fence)" ]
	# --wait that runs out takes its key away with it
	run -4 dsys-lock acquire w --wait 300ms
	[ "$(ctl get --prefix dsys/locks/w/ --keys-only | grep -c .)" -eq 1 ]
}

@test "lock etcd: a waiter whose lease is revoked queues again with a new lease, and its token keeps a random half (not the old lease id)" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	run --separate-stderr dsys-lock acquire rq --ttl 20s
	grant=$output
	holder=$(field "$grant" lease)
	dsys-lock acquire rq --wait 15s --ttl 3s >"$BATS_TEST_TMPDIR/second" 3>&- &
	BG+=($!)
	waiter=$!
	old=""
	for ((i = 0; i < 200; i++)); do
		old=$(ctl get --prefix dsys/locks/rq/ --keys-only | grep . | grep -v "/$(printf %x "0x$holder")\$" || true)
		[ -n "$old" ] && break
		sleep 0.02
	done
	[ -n "$old" ]
	run -0 ctl lease revoke "${old##*/}"
	# its keepalive (every second) finds the lease gone: a new key
	new=""
	for ((i = 0; i < 300; i++)); do
		new=$(ctl get --prefix dsys/locks/rq/ --keys-only | grep . | grep -v "/$(printf %x "0x$holder")\$" || true)
		if [[ -n $new && $new != "$old" ]]; then break; fi
		sleep 0.02
	done
	[ "$new" != "$old" ]
	dsys-lock release <<<"$grant" >/dev/null
	wait "$waiter"
	token=$(field "$(cat "$BATS_TEST_TMPDIR/second")" token)
	[ "${token:0:16}" = "$(printf %016x "0x${new##*/}")" ]
	[ "${token:16:16}" != "$(printf %016x "0x${old##*/}")" ]
}

@test "lock etcd: --limit N makes a semaphore: the N lowest create revisions hold" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	run -0 dsys-lock acquire sem --limit 2 --ttl 20s
	a=$output
	run -0 dsys-lock acquire sem --limit 2 --ttl 20s
	run -1 dsys-lock acquire sem --limit 2 --nowait
	run --separate-stderr dsys-lock status sem
	[ "${#lines[@]}" -eq 2 ]
	dsys-lock acquire sem --limit 2 --wait 10s >"$BATS_TEST_TMPDIR/third" 3>&- &
	waiter=$!
	sleep 0.5
	[ ! -s "$BATS_TEST_TMPDIR/third" ]
	dsys-lock release <<<"$a" >/dev/null
	wait "$waiter"
	[ -s "$BATS_TEST_TMPDIR/third" ]
}

@test "lock etcd: a lease revoked from outside stops run's command and exits 5, where etcdctl lock exits 0" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	dsys-lock run rv --ttl 3s -- sh -c 'sleep 100 & wait' 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	holder=$!
	BG+=("$holder")
	wait_held rv
	child=$(pgrep -P "$holder")
	grandchild=$(pgrep -P "$child")
	lease=$(ctl get --prefix dsys/locks/rv/ --keys-only | head -1)
	ctl lease revoke "${lease##*/}"
	t0=$(now_ms)
	st=0
	wait "$holder" || st=$?
	t1=$(now_ms)
	[ "$st" -eq 5 ]
	((t1 - t0 < 2000))   # noticed at the next renewal, a third of the TTL
	grep -q "lost lock 'rv'" "$BATS_TEST_TMPDIR/err"
	pid_gone "$child"
	pid_gone "$grandchild"

	# the anchor: etcdctl lock lets its command run on without the lock,
	# and exits 0
	ctl_bg lock dsys/locks/rv2 -- sh -c "sleep 1.5; touch $BATS_TEST_TMPDIR/ctl-done" >/dev/null 3>&- &
	ctlpid=$!
	BG+=("$ctlpid")
	for ((i = 0; i < 200; i++)); do
		lease=$(ctl get --prefix dsys/locks/rv2/ --keys-only | head -1)
		[ -n "$lease" ] && break
		sleep 0.02
	done
	ctl lease revoke "${lease##*/}"
	st=0
	wait "$ctlpid" || st=$?
	[ "$st" -eq 0 ]
	[ -e "$BATS_TEST_TMPDIR/ctl-done" ]
}

@test "lock etcd: bad input and an unreachable etcd get one clear line, exit 2 or 3, and leave no key" {
	etcd_start
	port=$(free_port)
	run -3 dsys-lock acquire ok --store "etcd://127.0.0.1:$port"
	[[ $output == *"cannot reach etcd://127.0.0.1:$port"* ]]
	[ "${#lines[@]}" -eq 1 ]
	run -3 dsys-lock run ok --store "etcd://127.0.0.1:$port" -- touch "$BATS_TEST_TMPDIR/ran"
	[ ! -e "$BATS_TEST_TMPDIR/ran" ]
	export DSYS_STORE=$ETCD_URL
	long=$(printf 'n%.0s' {1..257})
	run -2 dsys-lock acquire "$long"
	run -2 dsys-lock acquire a/b
	run -2 dsys-lock acquire ok --ttl 0
	run -2 dsys-lock acquire ok --ttl -1s
	run -2 dsys-lock acquire ok --store etcd://
	run -2 dsys-lock release ok --token nothex
	run ctl get --prefix dsys/ --keys-only
	assert_output ''
}

@test "lock etcd: 20 contending runs on a 3-node etcd never overlap across a leader kill, fences rise, locks flow again" {
	etcd_cluster_start 3
	local out=$BATS_TEST_TMPDIR/sections i
	contend_start "$ETCD_CLUSTER_URL" "$out" 3s 90s 0.1
	# once a few sections are done, kill the leader
	for ((i = 0; i < 300; i++)); do [ "$(grep -c end "$out")" -ge 3 ] && break; sleep 0.02; done
	leader=$(etcdctl --endpoints "$ETCD_CLUSTER_ENDPOINTS" endpoint status -w json |
		"$DSYS_PY" -c 'import json,sys; s=json.load(sys.stdin); print([i for i,e in enumerate(s) if e["Status"]["leader"] == e["Status"]["header"]["member_id"]][0])')
	before=$(grep -c end "$out")
	etcd_cluster_kill "$leader"
	local failed=0
	for i in "${PIDS[@]}"; do
		wait "$i" || failed=$((failed + 1))
	done
	# every run either ran its section or exited 5/3 around the kill;
	# whatever ran, ran alone, with rising fences
	"$DSYS_PY" - "$out" <<'EOF'
import sys
lines = [l.split() for l in open(sys.argv[1])]
last_fence, last_end, i = 0, 0, 0
while i < len(lines):
    f1, s, t1 = lines[i]
    assert s == "start", lines[i]
    if i + 1 < len(lines) and lines[i + 1][1] == "end":
        f2, e, t2 = lines[i + 1]
        assert f1 == f2, ("overlap", lines[i], lines[i + 1])
        i += 2
    else:
        t2 = t1   # a section stopped by a loss (exit 5): nothing may follow inside it
        i += 1
    assert int(f1) > last_fence, ("fence did not grow", f1, last_fence)
    assert int(t1) >= last_end, ("overlap in time", lines[i - 1])
    last_fence, last_end = int(f1), int(t2)
EOF
	after=$(grep -c end "$out")
	echo "sections before the kill $before, after $after, runs failed $failed" >&2
	cat "$BATS_TEST_TMPDIR/err" >&2
	((after - before >= 10))   # the locks flowed again after the election
	((failed <= 3))
}

@test "lock etcd: renew --ttl moves the key to a lease of the new TTL (new token and fence), and refuses while others wait" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	run --separate-stderr dsys-lock acquire mv --ttl 5s
	assert_success
	grant=$output
	# the same TTL: a keepalive, nothing changes
	run --separate-stderr dsys-lock renew --ttl 5s <<<"$grant"
	assert_success
	[ "$(field "$output" token)" = "$(field "$grant" token)" ]
	[ "$(field "$output" fence)" = "$(field "$grant" fence)" ]
	# another TTL: a new lease holds the key, whose new create revision is
	# the new fence; the old token and lease are gone
	run --separate-stderr dsys-lock renew --ttl 20s <<<"$grant"
	assert_success
	moved=$output
	[ "$(field "$moved" ttl_ms)" = 20000 ]
	[ "$(field "$moved" token)" != "$(field "$grant" token)" ]
	(($(field "$moved" fence) > $(field "$grant" fence)))
	lease=$(field "$moved" lease)
	[[ $(field "$moved" token) == "$lease"* ]]
	run ctl get --prefix dsys/locks/mv/ --keys-only
	assert_output "dsys/locks/mv/${lease#"${lease%%[!0]*}"}"
	run ctl lease timetolive "$lease" -w json
	[[ $output == *'"granted-ttl":20'* ]]
	run ctl lease timetolive "$(field "$grant" lease)"
	[[ $output == *"already expired"* ]]
	run -1 dsys-lock renew --ttl 10s <<<"$grant"
	run --separate-stderr dsys-lock status mv
	[ "$(field "$output" fence)" = "$(field "$moved" fence)" ]

	# a waiter behind it: moving would hand it the lock, so renew refuses
	dsys-lock acquire mv --wait 30s >"$BATS_TEST_TMPDIR/waiter" 3>&- &
	waiter=$!
	BG+=("$waiter")
	for ((i = 0; i < 200; i++)); do
		[ "$(ctl get --prefix dsys/locks/mv/ --keys-only | grep -c .)" -ge 2 ] && break
		sleep 0.02
	done
	run -1 --separate-stderr dsys-lock renew --ttl 40s <<<"$moved"
	[[ $stderr == *"cannot change on etcd while others wait"* ]]
	run --separate-stderr dsys-lock status mv
	[ "$(field "$output" fence)" = "$(field "$moved" fence)" ]
	kill -0 "$waiter"
	run -0 dsys-lock renew <<<"$moved"   # its own TTL: still a keepalive
	run -0 dsys-lock release <<<"$moved"
	wait "$waiter"
	(($(field "$(cat "$BATS_TEST_TMPDIR/waiter")" fence) > $(field "$moved" fence)))
}
