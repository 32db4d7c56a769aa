#!/usr/bin/env bats
# dsys-register on a file: registry: add, list, remove, checks with rise and
# fall, add -- CMD and its exit status, a killed add expiring, watch, and
# every bad-input case.

load helpers
load register_helpers
bats_require_minimum_version 1.5.0
BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-60}

setup() {
	dsys_setup
	unset DSYS_STORE DSYS_REGISTER_TTL
	export DSYS_STORE="file:$(dsys_tmp reg)"
	BG=()
}

teardown() {
	reg_kill_bg
	dsys_teardown
}

@test "register: add prints registered; list shows the instance with addr and url; remove takes it out" {
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 --id a --meta zone=eu --meta tier=1 >"$out" 3>&- &
	BG+=($!)
	wait_for "$out" '"event":"registered"'
	run --separate-stderr dsys-register list web
	assert_success
	"$DSYS_PY" - "$output" <<'EOF2'
import json, sys
lines = sys.argv[1].splitlines()
assert len(lines) == 1, lines
v = json.loads(lines[0])
assert set(v) == {"service", "id", "addr", "url", "meta", "status", "since"}, v
assert v["service"] == "web" and v["id"] == "a" and v["addr"] == "127.0.0.1:8080", v
assert v["url"] == "http://127.0.0.1:8080/" and v["status"] == "passing", v
assert v["meta"] == {"zone": "eu", "tier": "1"}, v
EOF2
	run dsys-register list
	assert_output '{"service":"web","instances":1,"passing":1}'
	# the record is etcd's endpoint-manager value
	"$DSYS_PY" - "${DSYS_STORE#file:}/web/a" <<'EOF2'
import json, sys
v = json.load(open(sys.argv[1]))
assert v["Op"] == 0 and v["Addr"] == "127.0.0.1:8080", v
assert v["Metadata"]["status"] == "passing" and v["Metadata"]["expires_ms"] > 0, v
EOF2
	run dsys-register remove web a
	assert_success
	assert_output '{"event":"removed","service":"web","id":"a"}'
	run -1 dsys-register remove web a
	assert_output --partial "no instance 'a' of service 'web'"
}

@test "register: SIGTERM to add removes the instance and exits 0" {
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 >"$out" 3>&- &
	pid=$!
	BG+=($pid)
	wait_for "$out" '"event":"registered"'
	wait_count web 1
	kill -TERM "$pid"
	st=0
	wait "$pid" || st=$?
	assert_equal "$st" 0
	wait_for "$out" '"event":"deregistered"'
	run dsys-register list web
	assert_output ''
}

@test "register: a killed add disappears within its TTL" {
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 --ttl 1s >"$out" 3>&- &
	pid=$!
	BG+=($pid)
	wait_for "$out" '"event":"registered"'
	sleep 1.2   # heartbeats keep it beyond one TTL
	run dsys-register list web
	assert_output --partial '"service":"web"'
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null || :
	killed=$(date +%s%3N)
	wait_count web 0 3
	gone=$(date +%s%3N)
	[ $((gone - killed)) -le 2000 ]
}

@test "register: a failing check goes critical after --fall, leaves the healthy list, and passes again after --rise" {
	flag=$BATS_TEST_TMPDIR/healthy
	touch "$flag"
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 --check "exec:test -e $flag" \
		--check-interval 50ms --rise 2 --fall 3 >"$out" 3>&- &
	BG+=($!)
	wait_for "$out" '"status":"passing"'
	wait_count web 1
	rm "$flag"
	wait_for "$out" '"status":"critical"'
	wait_count web 0
	run dsys-register list web --all
	assert_output --partial '"status":"critical"'
	touch "$flag"
	wait_count web 1
	# starting -> passing -> critical -> passing, each once
	run grep -c '"event":"status"' "$out"
	assert_output 3
	run grep -o '"status":"[a-z]*","since"' "$out"
	assert_line --index 0 '"status":"starting","since"'
}

@test "register: libcurl is loaded only for an http check, which without it exits 3 naming it; etcd:// needs none" {
	# not linked: a file: run starts without its thirty libraries
	run ldd "$(command -v dsys-register)"
	assert_success
	refute_output --partial libcurl
	export DSYS_LIBCURL=/nonexistent/libcurl.so.4
	run -3 --separate-stderr dsys-register add web --addr 127.0.0.1:8080 --check http://127.0.0.1:1/health
	assert_output ''
	[[ $stderr == *"--check http://127.0.0.1:1/health: cannot load libcurl"* ]]
	[[ $stderr == *"/nonexistent/libcurl.so.4"*"install libcurl4"* ]]
	# the etcd client speaks HTTP/1.1 itself: nothing listens there, and
	# that is what it says
	run -3 --separate-stderr dsys-register list web --store etcd://127.0.0.1:1 --timeout 2s
	[[ $stderr != *libcurl* ]]
	[[ $stderr == *"etcd://127.0.0.1:1"* ]]
	# file: with an exec check needs none
	run -0 dsys-register add web --addr 127.0.0.1:8080 --check exec:true --check-interval 50ms --rise 1 -- sleep 0.3
	assert_line --partial '"event":"registered"'
}

@test "register: add -- CMD registers once the check passes and exits with CMD's status" {
	out=$BATS_TEST_TMPDIR/add.out
	run -7 dsys-register add web --addr 127.0.0.1:8080 --check exec:true --check-interval 50ms \
		--rise 1 -- sh -c 'sleep 0.5; exit 7'
	# the first line is the check passing, and only then the record
	assert_line --index 0 --partial '"event":"status"'
	assert_line --index 1 --partial '"event":"registered"'
	assert_line --index 1 --partial '"status":"passing"'
	assert_line --partial '"event":"deregistered"'
	run dsys-register list web --all
	assert_output ''
}

@test "register: add -- CMD passes a signal's death through as 128+N and forwards SIGTERM to CMD" {
	run -137 dsys-register add web --addr 127.0.0.1:8080 -- sh -c 'kill -KILL $$'
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 -- sleep 30 >"$out" 3>&- &
	pid=$!
	BG+=($pid)
	wait_for "$out" '"event":"registered"'
	kill -TERM "$pid"
	st=0
	wait "$pid" || st=$?
	assert_equal "$st" 143
	run dsys-register list web
	assert_output ''
	run -127 dsys-register add web --addr 127.0.0.1:8080 -- /no/such/command
}

@test "register: a check that never passes keeps add -- CMD unregistered" {
	run -3 dsys-register add web --addr 127.0.0.1:1 --check tcp://127.0.0.1:1 \
		--check-interval 50ms --fall 1 -- sh -c 'sleep 0.4; exit 3'
	refute_output --partial '"event":"registered"'
	assert_output --partial '"status":"critical"'
}

@test "register: watch prints the current set, then up, change and down" {
	dsys-register add web --addr 127.0.0.1:8080 --id a >/dev/null 3>&- &
	BG+=($!)
	wait_count web 1
	w=$BATS_TEST_TMPDIR/watch.out
	dsys-register watch web >"$w" 3>&- &
	wpid=$!
	BG+=($wpid)
	wait_for "$w" '"event":"synced"'
	run head -1 "$w"
	assert_output --partial '"event":"up","service":"web","id":"a"'
	dsys-register add web --addr 127.0.0.1:8081 --id b --ttl 1s >/dev/null 3>&- &
	bpid=$!
	BG+=($bpid)
	wait_for "$w" '"event":"up","service":"web","id":"b"'
	kill -KILL "$bpid"
	wait_for "$w" '"event":"down","service":"web","id":"b"' 3
	run grep '"id":"b"' "$w"
	assert_line --index 1 --partial '"reason":"expired"'
	dsys-register remove web a
	wait_for "$w" '"event":"down","service":"web","id":"a"'
	cat "$w"   # shown when the count below fails
	run grep -c '"event"' "$w"
	assert_output 5
}

@test "register: bad input gets a clear message and exit 2" {
	run -2 dsys-register add web/x --addr 127.0.0.1:80
	assert_output --partial "invalid service 'web/x': contains '/'"
	run -2 dsys-register add web --addr 127.0.0.1:80 --id a/b
	assert_output --partial "contains '/'"
	run -2 dsys-register add web --addr nowhere
	assert_output --partial "expected HOST:PORT"
	run -2 dsys-register add web --addr 127.0.0.1:0
	run -2 dsys-register add web --addr 127.0.0.1:80 --check ftp://x
	assert_output --partial "expected http://HOST:PORT/PATH, tcp://HOST:PORT or exec:COMMAND"
	run -2 dsys-register add web --addr 127.0.0.1:80 --check tcp://nowhere
	run -2 dsys-register add web --addr 127.0.0.1:80 --meta novalue
	run -2 dsys-register add web --addr 127.0.0.1:80 --ttl 0
	run -2 dsys-register add web
	assert_output --partial "missing --addr"
	run -2 dsys-register add web --addr 127.0.0.1:80 --
	run -2 dsys-register add .hidden --addr 127.0.0.1:80
	run -2 dsys-register list web --store mysql://x
	run -2 dsys-register remove web
	run -2 dsys-register watch
	run -2 dsys-register frobnicate
}

@test "register: a registry of 40 records (read through io_uring) lists, renders and watches each one" {
	dir=${DSYS_STORE#file:}/web
	mkdir -p "$dir"
	"$DSYS_PY" - "$dir" <<'EOF2'
import json, os, sys, time
now = int(time.time() * 1000)
for i in range(40):
    meta = {"zone": "z%d" % (i % 3)}
    if i == 5:
        meta["big"] = "x" * 1500   # past a ring slot: read again the plain way
    rec = {"Op": 0, "Addr": f"10.0.0.{i}:80", "Metadata": {"status": "passing", "since_ms": now,
           "meta": meta, "expires_ms": now + (-1000 if i == 7 else 600000)}}
    with open(os.path.join(sys.argv[1], f"i{i}"), "w") as f:
        json.dump(rec, f)
open(os.path.join(sys.argv[1], "junk"), "w").write("not a record")
os.mkdir(os.path.join(sys.argv[1], "adir"))
EOF2
	run --separate-stderr dsys-register list web
	assert_success
	[ "${#lines[@]}" -eq 39 ]
	assert_line --partial '"id":"i5","addr":"10.0.0.5:80"'
	refute_line --partial '"id":"i7"'
	tpl=$BATS_TEST_TMPDIR/t.tpl
	printf '{{range}}{{id}} {{meta.zone}}\n{{end}}' >"$tpl"
	run dsys-register render web --template "$tpl" --out "$BATS_TEST_TMPDIR/out" --once
	assert_success
	run grep -c ' z[012]$' "$BATS_TEST_TMPDIR/out"
	assert_output 39
	# watch: the set in id order, then one rewritten record as a change
	w=$BATS_TEST_TMPDIR/watch.out
	dsys-register watch web >"$w" 3>&- &
	BG+=($!)
	wait_for "$w" '"event":"synced","service":"web","count":39'
	run grep -o '"id":"i[0-9]*"' "$w"
	assert_line --index 0 '"id":"i0"'
	assert_line --index 1 '"id":"i1"'
	assert_line --index 2 '"id":"i10"'
	"$DSYS_PY" - "$dir" <<'EOF2'
import json, os, sys, time
now = int(time.time() * 1000)
rec = {"Op": 0, "Addr": "10.0.0.33:80", "Metadata": {"status": "passing", "meta": {"zone": "moved"},
       "expires_ms": now + 600000}}
with open(os.path.join(sys.argv[1], ".i33.tmp"), "w") as f:
    json.dump(rec, f)
os.rename(os.path.join(sys.argv[1], ".i33.tmp"), os.path.join(sys.argv[1], "i33"))
EOF2
	wait_for "$w" '"event":"change","service":"web","id":"i33".*"zone":"moved"'
	rm "$dir/i34"
	wait_for "$w" '"event":"down","service":"web","id":"i34".*"reason":"removed"'
	run grep -c '"event"' "$w"
	assert_output 42
}

@test "register: list feeds dsys-bench --targets -" {
	start_server serve dsys-serve --listen 127.0.0.1:0
	dsys-register add web --addr "127.0.0.1:$SERVER_PORT" >/dev/null 3>&- &
	BG+=($!)
	wait_count web 1
	run --separate-stderr bash -c 'dsys-register list web | dsys-bench --targets - -c 1 -d 300ms'
	assert_success
	[[ $output == *"\"url\":\"http://127.0.0.1:$SERVER_PORT/\""* ]]
}

@test "register: render --once writes the passing set through a template, checked, then runs --exec" {
	dsys-register add web --addr 127.0.0.1:8080 --id a --meta weight=5 >/dev/null 3>&- &
	BG+=($!)
	dsys-register add web --addr 127.0.0.1:8081 --id b >/dev/null 3>&- &
	BG+=($!)
	wait_count web 2
	tpl=$BATS_TEST_TMPDIR/up.tpl
	out=$BATS_TEST_TMPDIR/up.conf
	printf '%s\n' 'upstream {{service}} {' '{{range}}  server {{addr}} weight={{meta.weight or "1"}};{{if meta.weight}} # weighted{{end}}' '{{end}}}' '# {{count}}' >"$tpl"
	run --separate-stderr dsys-register render web --template "$tpl" --out "$out" --once \
		--check-cmd 'grep -q "server 127.0.0.1:8080" {}' --exec "touch $BATS_TEST_TMPDIR/reloaded"
	assert_success
	assert_output --partial '"event":"rendered","service":"web"'
	assert_output --partial '"instances":2'
	assert_output --partial '"changed":true'
	[ -e "$BATS_TEST_TMPDIR/reloaded" ]
	run cat "$out"
	assert_output - <<'EOF2'
upstream web {
  server 127.0.0.1:8080 weight=5; # weighted
  server 127.0.0.1:8081 weight=1;
}
# 2
EOF2
	# the same set again: unchanged, no --exec
	rm "$BATS_TEST_TMPDIR/reloaded"
	run --separate-stderr dsys-register render web --template "$tpl" --out "$out" --once \
		--exec "touch $BATS_TEST_TMPDIR/reloaded"
	assert_output --partial '"changed":false'
	[ ! -e "$BATS_TEST_TMPDIR/reloaded" ]
}

@test "register: render --once over a FIFO at --out does not hang on it: the render replaces it" {
	dsys-register add web --addr 127.0.0.1:8080 >/dev/null 3>&- &
	BG+=($!)
	wait_count web 1
	tpl=$BATS_TEST_TMPDIR/up.tpl
	out=$BATS_TEST_TMPDIR/up.conf
	echo '{{range}}server {{addr}};{{end}}' >"$tpl"
	mkfifo "$out"
	run --separate-stderr timeout 10 dsys-register render web --template "$tpl" --out "$out" --once
	assert_success
	[ -f "$out" ]
	run cat "$out"
	assert_output 'server 127.0.0.1:8080;'
}

@test "register: render --once leaves an unchanged file alone, and still checks it with --check-cmd" {
	dsys-register add web --addr 127.0.0.1:8080 >/dev/null 3>&- &
	BG+=($!)
	wait_count web 1
	tpl=$BATS_TEST_TMPDIR/up.tpl
	out=$BATS_TEST_TMPDIR/up.conf
	echo '{{range}}server {{addr}};{{end}}' >"$tpl"
	run --separate-stderr dsys-register render web --template "$tpl" --out "$out" --once
	assert_output --partial '"changed":true'
	inode=$(stat -c %i "$out")
	run --separate-stderr dsys-register render web --template "$tpl" --out "$out" --once
	assert_output --partial '"changed":false'
	[ "$(stat -c %i "$out")" = "$inode" ]
	run cat "$out"
	assert_output 'server 127.0.0.1:8080;'
	# the same bytes, but a check to pass: checked, refused, said
	run -1 dsys-register render web --template "$tpl" --out "$out" --once --check-cmd false
	assert_output --partial "refused"
	[ "$(stat -c %i "$out")" = "$inode" ]
	# a file with other bytes of the same size is a change
	echo 'server 127.0.0.1:9999;' >"$out"
	run --separate-stderr dsys-register render web --template "$tpl" --out "$out" --once
	assert_output --partial '"changed":true'
	run cat "$out"
	assert_output 'server 127.0.0.1:8080;'
	run ls "$BATS_TEST_TMPDIR"
	refute_output --partial '.tmp'
	# a directory that is not there: said, exit 1, nothing left behind
	run -1 dsys-register render web --template "$tpl" --out "$BATS_TEST_TMPDIR/none/up.conf" --once
	assert_output --partial "cannot write '$BATS_TEST_TMPDIR/none/up.conf."
	assert_output --partial "No such file or directory"
}

@test "register: render --once keeps the replaced file's permission bits and, as root, its owner and group" {
	dsys-register add web --addr 127.0.0.1:8080 >/dev/null 3>&- &
	BG+=($!)
	wait_count web 1
	tpl=$BATS_TEST_TMPDIR/up.tpl
	out=$BATS_TEST_TMPDIR/up.conf
	echo '{{range}}server {{addr}};{{end}}' >"$tpl"
	echo 'server 127.0.0.1:9999;' >"$out"
	chmod 0640 "$out"
	want="640 $(id -un):$(id -gn)"
	if [ "$(id -u)" = 0 ]; then
		chown nobody:nogroup "$out"
		want="640 nobody:nogroup"
	fi
	inode=$(stat -c %i "$out")
	run --separate-stderr dsys-register render web --template "$tpl" --out "$out" --once
	assert_success
	assert_output --partial '"changed":true'
	[ "$(stat -c %i "$out")" != "$inode" ]
	run stat -c '%a %U:%G' "$out"
	assert_output "$want"
	run cat "$out"
	assert_output 'server 127.0.0.1:8080;'
	# a new file: the usual mode under the umask
	rm "$out"
	(umask 022 && dsys-register render web --template "$tpl" --out "$out" --once >/dev/null)
	run stat -c '%a' "$out"
	assert_output 644
}

@test "register: render keeps the last good file when --check-cmd refuses or --min is not met" {
	dsys-register add web --addr 127.0.0.1:8080 >/dev/null 3>&- &
	BG+=($!)
	wait_count web 1
	tpl=$BATS_TEST_TMPDIR/up.tpl
	out=$BATS_TEST_TMPDIR/up.conf
	echo 'good' >"$out"
	echo '{{range}}server {{addr}};{{end}}' >"$tpl"
	run -1 dsys-register render web --template "$tpl" --out "$out" --once --check-cmd false
	assert_output --partial "refused"
	run cat "$out"
	assert_output good
	run -4 dsys-register render web --template "$tpl" --out "$out" --once --min 2 --timeout 300ms
	assert_output --partial "waited 300 ms for 2 passing instances of 'web'"
	assert_output --partial "found 1"
	run cat "$out"
	assert_output good
	run ls "$BATS_TEST_TMPDIR"
	refute_output --partial '.tmp'
}

@test "register: a template that does not parse is named with its line and column, exit 2" {
	tpl=$BATS_TEST_TMPDIR/bad.tpl
	out=$BATS_TEST_TMPDIR/out
	printf 'a\n  {{range}}{{adr}}{{end}}\n' >"$tpl"
	run -2 dsys-register render web --template "$tpl" --out "$out" --once
	assert_output --partial ":2:14: unknown field 'adr'"
	printf '{{range}}{{addr}}\n' >"$tpl"
	run -2 dsys-register render web --template "$tpl" --out "$out" --once
	assert_output --partial "1:1: range without {{end}}"
	printf '{{addr}}\n' >"$tpl"
	run -2 dsys-register render web --template "$tpl" --out "$out" --once
	assert_output --partial "outside range"
	printf '{{count or}}\n' >"$tpl"
	run -2 dsys-register render web --template "$tpl" --out "$out" --once
	[ ! -e "$out" ]
}

@test "register: render without --once follows the set, debounced, and keeps the file when below --min" {
	tpl=$BATS_TEST_TMPDIR/up.tpl
	out=$BATS_TEST_TMPDIR/up.conf
	r=$BATS_TEST_TMPDIR/render.out
	echo '{{range}}server {{addr}};{{end}}' >"$tpl"
	dsys-register render web --template "$tpl" --out "$out" --wait 20ms:500ms >"$r" 2>"$r.err" 3>&- &
	BG+=($!)
	wait_for "$r.err" 'fewer than --min 1'
	[ ! -e "$out" ]
	dsys-register add web --addr 127.0.0.1:8080 --id a >/dev/null 3>&- &
	apid=$!
	BG+=($apid)
	wait_for "$r" '"instances":1'
	run cat "$out"
	assert_output 'server 127.0.0.1:8080;'
	dsys-register add web --addr 127.0.0.1:8081 --id b >/dev/null 3>&- &
	BG+=($!)
	wait_for "$r" '"instances":2'
	run cat "$out"
	assert_output 'server 127.0.0.1:8080;server 127.0.0.1:8081;'
	kill -TERM "$apid"   # add takes its instance out as it stops
	# the third render (the first one had 1 instance and 23 bytes too)
	for ((i = 0; i < 500; i++)); do
		[ "$(grep -c '"instances":' "$r")" -lt 3 ] || break
		sleep 0.02
	done
	run tail -n 1 "$r"
	assert_output --partial '"instances":1,"bytes":23'
	run cat "$out"
	assert_output 'server 127.0.0.1:8081;'
}

@test "register: a critical instance is removed after --deregister-after, well under a minute, and written again when it passes" {
	flag=$BATS_TEST_TMPDIR/healthy
	touch "$flag"
	out=$BATS_TEST_TMPDIR/add.out
	dsys-register add web --addr 127.0.0.1:8080 --id a --check "exec:test -e $flag" \
		--check-interval 50ms --rise 1 --fall 1 --deregister-after 1500ms >"$out" 3>&- &
	BG+=($!)
	wait_count web 1
	rm "$flag"
	wait_for "$out" '"status":"critical"'
	t0=$(date +%s%3N)
	# critical: still listed with --all until --deregister-after has passed
	run dsys-register list web --all
	assert_output --partial '"status":"critical"'
	wait_for "$out" 'critical for --deregister-after'
	t1=$(date +%s%3N)
	run dsys-register list web --all
	assert_output ''
	# not before its time, and nowhere near Consul's minute
	[ $((t1 - t0)) -ge 1300 ]
	[ $((t1 - t0)) -le 4000 ]
	touch "$flag"
	wait_count web 1
	run dsys-register list web
	assert_output --partial '"id":"a","addr":"127.0.0.1:8080"'
	assert_output --partial '"status":"passing"'
}
