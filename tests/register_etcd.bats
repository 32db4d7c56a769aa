#!/usr/bin/env bats
# dsys-register on etcd:// against a real etcd-server 3.4 member
# (tests/etcd_helpers.bash): the endpoint-manager layout read by etcdctl and
# by python3-etcd3, leases that expire a killed add, watch with revisions
# and --since, and registering again after etcd lost its data.

load helpers
load etcd_helpers
load register_helpers
bats_require_minimum_version 1.5.0
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-90}

setup_file() {
	etcd_require
}

setup() {
	dsys_setup
	etcd_reset
	export DSYS_LOG_LEVEL=warn
	unset DSYS_STORE DSYS_REGISTER_TTL
	BG=()
}

teardown() {
	reg_kill_bg
	dsys_teardown
	etcd_teardown
}

@test "register etcd: add writes etcd's endpoint-manager key and value, read by etcdctl and python3-etcd3" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 --id a --meta zone=eu >"$out" 3>&- &
	BG+=($!)
	wait_for "$out" '"event":"registered"'
	run ctl get --prefix dsys/services/web/ --keys-only
	assert_output 'dsys/services/web/a'
	run "$DSYS_PY" - "$ETCD_PORT" <<'EOF2'
import json, sys, etcd3
c = etcd3.client(host="127.0.0.1", port=int(sys.argv[1]))
vals = [(json.loads(v), m.key.decode()) for v, m in c.get_prefix("dsys/services/web/")]
assert len(vals) == 1, vals
v, key = vals[0]
assert key == "dsys/services/web/a", key
assert v["Op"] == 0 and v["Addr"] == "127.0.0.1:8080", v
assert v["Metadata"]["status"] == "passing" and v["Metadata"]["meta"] == {"zone": "eu"}, v
print("ok")
EOF2
	assert_output ok
	run dsys-register list web
	assert_output --partial '"addr":"127.0.0.1:8080","url":"http://127.0.0.1:8080/"'
	run dsys-register list
	assert_output '{"service":"web","instances":1,"passing":1}'
	run dsys-register remove web a
	assert_success
	run ctl get --prefix dsys/services/ --keys-only
	assert_output ''
}

@test "register etcd: a killed add disappears within its TTL, and add -- CMD keeps CMD's status" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 --ttl 2s >"$out" 3>&- &
	pid=$!
	BG+=($pid)
	wait_for "$out" '"event":"registered"'
	sleep 2.5   # keepalive holds it beyond one TTL
	run dsys-register list web
	assert_output --partial '"service":"web"'
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || :
	killed=$(date +%s%3N)
	wait_count web 0 4
	gone=$(date +%s%3N)
	# within the TTL (2 s) and 1 s
	[ $((gone - killed)) -le 3000 ]
	run -9 dsys-register add web --addr 127.0.0.1:8080 -- sh -c 'sleep 0.3; exit 9'
	assert_line --index 0 --partial '"event":"registered"'
	assert_line --index 1 --partial '"event":"deregistered"'
	# a CMD gone before its record is confirmed: both lines or neither
	run -4 dsys-register add web --addr 127.0.0.1:8080 -- sh -c 'exit 4'
	assert_equal "$(grep -c '"event":"registered"' <<<"$output")" \
		"$(grep -c '"event":"deregistered"' <<<"$output")"
	run ctl get --prefix dsys/services/ --keys-only
	assert_output ''
}

@test "register etcd: a failing check goes critical and leaves the healthy list" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	flag=$BATS_TEST_TMPDIR/healthy
	touch "$flag"
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 --check "exec:test -e $flag" \
		--check-interval 50ms --rise 1 --fall 2 >"$out" 3>&- &
	BG+=($!)
	wait_count web 1
	rm "$flag"
	wait_count web 0
	run dsys-register list web --all
	assert_output --partial '"status":"critical"'
}

@test "register etcd: watch prints up and down with revisions, and --since resumes without a lost or repeated event" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	w=$BATS_TEST_TMPDIR/watch.out
	dsys-register watch web >"$w" 3>&- &
	wpid=$!
	BG+=($wpid)
	wait_for "$w" '"event":"synced"'
	dsys-register add web --addr 127.0.0.1:8080 --id a -- sleep 0.3 >/dev/null
	wait_for "$w" '"event":"down","service":"web","id":"a"'
	kill "$wpid"
	rev=$("$DSYS_PY" -c 'import json,sys; print([json.loads(l) for l in open(sys.argv[1])][-1]["revision"])' "$w")
	# while no watch runs: b comes and goes, c comes
	dsys-register add web --addr 127.0.0.1:8081 --id b -- sleep 0.3 >/dev/null
	dsys-register add web --addr 127.0.0.1:8082 --id c >/dev/null 3>&- &
	BG+=($!)
	wait_count web 1
	w2=$BATS_TEST_TMPDIR/watch2.out
	dsys-register watch web --since "$rev" >"$w2" 3>&- &
	BG+=($!)
	wait_for "$w2" '"id":"c"'
	run grep -o '"event":"[a-z]*","service":"web","id":"[a-z]"' "$w2"
	assert_output - <<'EOF2'
"event":"up","service":"web","id":"b"
"event":"down","service":"web","id":"b"
"event":"up","service":"web","id":"c"
EOF2
}

@test "register etcd: add registers again by itself after etcd comes back without its data" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 --ttl 2s >"$out" 2>"$BATS_TEST_TMPDIR/add.err" 3>&- &
	BG+=($!)
	wait_for "$out" '"event":"registered"'
	etcd_kill
	rm -rf "$ETCD_DIR/data"
	etcd_restart
	wait_count web 1 10
}

@test "register etcd: an unreachable store exits 3" {
	port=$(etcd_free_ports 1)
	run -3 dsys-register list web --store "etcd://127.0.0.1:$port"
	assert_output --partial "cannot reach"
	run -3 dsys-register add web --addr 127.0.0.1:80 --store "etcd://127.0.0.1:$port"
	run -2 dsys-register watch web --since 5 --store file:/tmp
}

@test "register etcd: on a 3-node cluster, an instance stays registered across a leader kill and watch sees a later add" {
	etcd_cluster_start 3
	export DSYS_STORE=$ETCD_CLUSTER_URL
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 --id a --ttl 3s >"$out" 3>&- &
	BG+=($!)
	wait_for "$out" '"event":"registered"'
	w=$BATS_TEST_TMPDIR/watch.out
	dsys-register watch web >"$w" 3>&- &
	BG+=($!)
	wait_for "$w" '"event":"synced"'
	leader=$(etcdctl --endpoints "$ETCD_CLUSTER_ENDPOINTS" endpoint status -w json |
		"$DSYS_PY" -c 'import json,sys; s=json.load(sys.stdin); print([i for i,e in enumerate(s) if e["Status"]["leader"] == e["Status"]["header"]["member_id"]][0])')
	etcd_cluster_kill "$leader"
	# beyond the TTL: the keepalive went on through the new leader
	sleep 4
	wait_count web 1 10
	dsys-register add web --addr 127.0.0.1:8081 --id b >/dev/null 3>&- &
	BG+=($!)
	wait_for "$w" '"event":"up","service":"web","id":"b"' 15
	run grep -c '"event":"down"' "$w"
	assert_output 0
}

@test "register etcd: render follows the set on etcd's watch" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	tpl=$BATS_TEST_TMPDIR/up.tpl
	out=$BATS_TEST_TMPDIR/up.conf
	r=$BATS_TEST_TMPDIR/render.out
	echo '{{range}}server {{addr}};{{end}}' >"$tpl"
	dsys-register add web --addr 127.0.0.1:8080 --id a >/dev/null 3>&- &
	BG+=($!)
	wait_count web 1
	run --separate-stderr dsys-register render web --template "$tpl" --out "$out" --once
	assert_success
	run cat "$out"
	assert_output 'server 127.0.0.1:8080;'
	dsys-register render web --template "$tpl" --out "$out" --wait 20ms:500ms >"$r" 2>/dev/null 3>&- &
	BG+=($!)
	wait_for "$r" '"changed":false'
	dsys-register add web --addr 127.0.0.1:8081 --id b >/dev/null 3>&- &
	BG+=($!)
	wait_for "$r" '"instances":2'
	run cat "$out"
	assert_output 'server 127.0.0.1:8080;server 127.0.0.1:8081;'
}

@test "register etcd: what python3-etcd3 writes in the endpoint-manager layout, list and watch read; its lease revoked, watch says down" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	w=$BATS_TEST_TMPDIR/watch.out
	dsys-register watch web >"$w" 3>&- &
	BG+=($!)
	wait_for "$w" '"event":"synced"'
	# as grpc-go's endpoints.Manager writes: key TARGET/ADDR, Metadata its own
	run "$DSYS_PY" - "$ETCD_PORT" "$BATS_TEST_TMPDIR/lease" <<'EOF2'
import json, sys, etcd3
c = etcd3.client(host="127.0.0.1", port=int(sys.argv[1]))
l = c.lease(30)
c.put("dsys/services/web/127.0.0.1:9000",
      json.dumps({"Op": 0, "Addr": "127.0.0.1:9000", "Metadata": None}), lease=l)
c.put("dsys/services/web/127.0.0.1:9001", json.dumps({"Op": 0, "Addr": "127.0.0.1:9001"}), lease=l)
open(sys.argv[2], "w").write(str(l.id))
print("ok")
EOF2
	assert_output ok
	wait_for "$w" '"event":"up","service":"web","id":"127.0.0.1:9001"'
	run dsys-register list web
	assert_line --index 0 --partial '"id":"127.0.0.1:9000","addr":"127.0.0.1:9000","url":"http://127.0.0.1:9000/"'
	assert_line --index 1 --partial '"id":"127.0.0.1:9001","addr":"127.0.0.1:9001"'
	assert_line --index 1 --partial '"status":"passing","since":null}'
	[ "${#lines[@]}" -eq 2 ]
	run "$DSYS_PY" - "$ETCD_PORT" "$(cat "$BATS_TEST_TMPDIR/lease")" <<'EOF2'
import sys, etcd3
etcd3.client(host="127.0.0.1", port=int(sys.argv[1])).revoke_lease(int(sys.argv[2]))
EOF2
	assert_success
	wait_for "$w" '"event":"down","service":"web","id":"127.0.0.1:9001"'
	run grep -c '"event":"down"' "$w"
	assert_output 2
	run dsys-register list web
	assert_output ''
}

@test "register etcd: a running watch resumes after etcd restarts, with no event lost or repeated" {
	etcd_start
	export DSYS_STORE=$ETCD_URL
	w=$BATS_TEST_TMPDIR/watch.out
	dsys-register watch web >"$w" 2>"$BATS_TEST_TMPDIR/watch.err" 3>&- &
	wpid=$!
	BG+=($wpid)
	wait_for "$w" '"event":"synced"'
	dsys-register add web --addr 127.0.0.1:8080 --id a --ttl 30s >/dev/null 3>&- &
	BG+=($!)
	wait_for "$w" '"event":"up","service":"web","id":"a"'
	etcd_stop
	etcd_restart
	dsys-register add web --addr 127.0.0.1:8081 --id b --ttl 30s >/dev/null 3>&- &
	BG+=($!)
	wait_for "$w" '"event":"up","service":"web","id":"b"' 20
	# x comes and goes after the restart, while the same watch runs
	ctl put dsys/services/web/x "$(printf '{"Op":0,"Addr":"127.0.0.1:8082"}')" >/dev/null
	ctl del dsys/services/web/x >/dev/null
	wait_for "$w" '"event":"down","service":"web","id":"x"'
	kill -0 "$wpid"
	run grep -o '"event":"[a-z]*","service":"web","id":"[a-z]"' "$w"
	assert_output - <<'EOF2'
"event":"up","service":"web","id":"a"
"event":"up","service":"web","id":"b"
"event":"up","service":"web","id":"x"
"event":"down","service":"web","id":"x"
EOF2
}
