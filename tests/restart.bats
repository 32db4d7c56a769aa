#!/usr/bin/env bats
# Zero-downtime restarts: --reuse-port, the listener handover, the drained
# line, and examples/zero-downtime-restart.sh under load.

load helpers
bats_require_minimum_version 1.5.0

setup() { dsys_setup; }
teardown() { dsys_teardown; }

# listener_pids PORT: for each listening socket on PORT, the sorted pids
# holding it, one socket a line ("123,456").
listener_pids() {
	ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' >/dev/null || return 0
	ss -Hltnp "sport = :$1" | while read -r line; do
		grep -o 'pid=[0-9]*' <<<"$line" | cut -d= -f2 | sort -un | paste -sd, -
	done
}

@test "restart: a second server on a port in use exits 1 with 'Address already in use', --reuse-port on the first or not" {
	port=$(free_port)
	start_server old dsys-serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	run -1 --separate-stderr dsys-serve --listen "127.0.0.1:$port" --threads 1
	assert_equal "$stderr" "dsys-serve: cannot listen on 127.0.0.1:$port: Address already in use"
	run -1 --separate-stderr dsys-counter serve --listen "127.0.0.1:$port" --threads 1
	[[ "$stderr" == *"Address already in use"* ]]
}

@test "restart: with --reuse-port the new server takes over the old one's listening sockets themselves" {
	port=$(free_port)
	start_server old dsys-serve --listen "127.0.0.1:$port" --reuse-port --threads 2
	old=$SERVER_PID
	start_server new dsys-serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	new=$SERVER_PID
	grep -q "took over 2 listeners on 127.0.0.1:$port from pid $old" "$SERVER_ERR"
	# two loops: one per socket taken, although --threads said 1
	[ "$(jq -r .threads <<<"$SERVER_READY")" = 2 ]
	# the same two sockets, each held by both processes
	run listener_pids "$port"
	assert_output "$(printf '%s,%s\n%s,%s' "$old" "$new" "$old" "$new")"
	stop_server "$old"
	run listener_pids "$port"
	assert_output "$(printf '%s\n%s' "$new" "$new")"
	run curl -sf "http://127.0.0.1:$port/hello"
	assert_success
}

@test "restart: the old server drains, exits 0 and prints how many requests it answered" {
	port=$(free_port)
	start_server old dsys-serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	old=$SERVER_PID
	old_out=$SERVER_OUT
	for i in 1 2 3; do curl -sf "http://127.0.0.1:$port/hello" >/dev/null; done
	start_server new dsys-serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	st=0
	stop_server "$old" || st=$?
	[ "$st" -eq 0 ]
	run jq -c 'select(.event == "drained") | [.pid, .requests]' "$old_out"
	assert_output "[$old,3]"
}

@test "restart: the restart after the restart takes over again (the channel moves to the new server)" {
	port=$(free_port)
	start_server a dsys-counter serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	a=$SERVER_PID
	start_server b dsys-counter serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	stop_server "$a"
	b=$SERVER_PID
	start_server c dsys-counter serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	grep -q "took over 1 listeners on 127.0.0.1:$port from pid $b" "$SERVER_ERR"
	stop_server "$b"
	run curl -sf -XPOST "http://127.0.0.1:$port/incr" -d '{"key":"k"}'
	assert_success
	assert_output '{"key":"k","value":1}'
}

@test "restart: connections waiting in the accept queue when the old server drains are answered, none reset" {
	port=$(free_port)
	start_server old dsys-serve --listen "127.0.0.1:$port" --reuse-port --threads 1 --backlog 64
	old=$SERVER_PID
	start_server new dsys-serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	new=$SERVER_PID
	# neither accepts: 20 connections, each with its request, wait in the queue
	kill -STOP "$old" "$new"
	"$DSYS_PY" - "$port" >"$BATS_TEST_TMPDIR/answers" 2>&1 3>&- <<-'EOF' &
		import socket, sys
		conns = []
		for i in range(20):
		    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
		    s.sendall(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
		    conns.append(s)
		print("queued", flush=True)
		for s in conns:
		    data = b""
		    try:
		        while b"\r\n\r\n" not in data:
		            chunk = s.recv(4096)
		            if not chunk:
		                break
		            data += chunk
		        print(data.split(b"\r\n")[0].decode())
		    except OSError as e:
		        print("error", e)
	EOF
	client=$!
	for ((i = 0; i < 100; i++)); do grep -q queued "$BATS_TEST_TMPDIR/answers" && break; sleep 0.05; done
	# the old one drains first; the new one wakes up after
	kill -TERM "$old"
	kill -CONT "$old"
	sleep 0.2
	kill -CONT "$new"
	wait "$client"
	run grep -c '^HTTP/1.1 200 OK$' "$BATS_TEST_TMPDIR/answers"
	assert_output 20
	st=0
	wait_exit "$old" || st=$?
	[ "$st" -eq 0 ]
}

@test "restart: the old server answers the first request of a connection a client opened before the drain and had not used yet" {
	port=$(free_port)
	start_server old dsys-counter serve --listen "127.0.0.1:$port" --reuse-port --threads 1 --drain-timeout 20s
	old=$SERVER_PID
	old_out=$SERVER_OUT
	# a client's pool: one connection used once, one opened and not used yet
	# (dsys-bench keeps such: it takes the last connection that answered)
	"$DSYS_PY" - "$port" "$BATS_TEST_TMPDIR/go" >"$BATS_TEST_TMPDIR/answers" 2>&1 3>&- <<-'EOF' &
		import os, socket, sys, time
		port, go = int(sys.argv[1]), sys.argv[2]
		req = b"POST /incr HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n{\"key\":\"k\"}"
		def answer(s):
		    data = b""
		    try:
		        while b"\r\n\r\n" not in data:
		            chunk = s.recv(4096)
		            if not chunk:
		                return "closed"
		            data += chunk
		    except OSError as e:
		        return "error %s" % e
		    head = data.split(b"\r\n\r\n")[0].decode().lower().split("\r\n")
		    return head[0] + ("; close" if "connection: close" in head else "")
		used = socket.create_connection(("127.0.0.1", port), timeout=20)
		unused = socket.create_connection(("127.0.0.1", port), timeout=20)
		used.sendall(req)
		print("used:", answer(used), flush=True)
		while not os.path.exists(go):
		    time.sleep(0.02)
		# well after the drain began: longer than its old 1 s grace
		time.sleep(2)
		for name, s in (("unused", unused), ("used", used)):
		    try:
		        s.sendall(req)
		        print(name + ":", answer(s), flush=True)
		    except OSError as e:
		        print(name + ": error", e, flush=True)
	EOF
	client=$!
	for ((i = 0; i < 100; i++)); do grep -q '^used:' "$BATS_TEST_TMPDIR/answers" && break; sleep 0.05; done
	start_server new dsys-counter serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	kill -TERM "$old"
	touch "$BATS_TEST_TMPDIR/go"
	wait "$client"
	run cat "$BATS_TEST_TMPDIR/answers"
	assert_output "$(printf '%s\n' 'used: http/1.1 200 ok' 'unused: http/1.1 200 ok; close' 'used: http/1.1 200 ok; close')"
	st=0
	wait_exit "$old" || st=$?
	[ "$st" -eq 0 ]
	run jq -c 'select(.event == "drained") | .requests' "$old_out"
	assert_output 3
}

@test "restart: HTTP/2 begun during the drain on a connection opened before it gets its first stream answered, then GOAWAY" {
	port=$(free_port)
	start_server old dsys-serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	old=$SERVER_PID
	"$DSYS_PY" - "$port" "$BATS_TEST_TMPDIR/go" >"$BATS_TEST_TMPDIR/frames" 2>&1 3>&- <<-'EOF' &
		import socket, sys, time, struct, os
		port, go = int(sys.argv[1]), sys.argv[2]
		def frame(t, f, sid, payload=b""):
		    return len(payload).to_bytes(3, "big") + bytes([t, f]) + struct.pack(">I", sid) + payload
		s = socket.create_connection(("127.0.0.1", port), timeout=5)
		print("opened", flush=True)
		while not os.path.exists(go):
		    time.sleep(0.02)
		time.sleep(2)
		# GET /hello: :method GET (2), :scheme http (6), :path (4) and :authority
		# (1) as literals without indexing, no Huffman
		hdrs = bytes([0x82, 0x86, 0x04, 6]) + b"/hello" + bytes([0x01, 1]) + b"a"
		s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0) + frame(1, 5, 1, hdrs))
		data = b""
		try:
		    while True:
		        c = s.recv(65536)
		        if not c:
		            break
		        data += c
		except OSError as e:
		    print("error", e)
		i, seen = 0, []
		while i + 9 <= len(data):
		    n, t, f = int.from_bytes(data[i:i+3], "big"), data[i+3], data[i+4]
		    sid = int.from_bytes(data[i+5:i+9], "big") & 0x7fffffff
		    p = data[i+9:i+9+n]
		    if t == 1:
		        seen.append("HEADERS %d %s" % (sid, "200" if p[:1] == b"\x88" else p[:1].hex()))
		    elif t == 0:
		        seen.append("DATA %d %s" % (sid, p.decode(errors="replace").strip()))
		    elif t == 7:
		        seen.append("GOAWAY last=%d code=%d" % (int.from_bytes(p[:4], "big") & 0x7fffffff, int.from_bytes(p[4:8], "big")))
		    i += 9 + n
		print("\n".join(seen) + "\nclosed")
	EOF
	client=$!
	for ((i = 0; i < 100; i++)); do grep -q '^opened' "$BATS_TEST_TMPDIR/frames" && break; sleep 0.05; done
	kill -TERM "$old"
	touch "$BATS_TEST_TMPDIR/go"
	wait "$client"
	# (the GOAWAY may leave before or after the answer's frames)
	run env LC_ALL=C sort "$BATS_TEST_TMPDIR/frames"
	assert_output "$(printf '%s\n' 'DATA 1 Hello from dsys!' 'GOAWAY last=1 code=0' 'HEADERS 1 200' closed opened)"
	st=0
	wait_exit "$old" || st=$?
	[ "$st" -eq 0 ]
}

@test "restart: --reuse-port with no server on the port binds as usual" {
	port=$(free_port)
	start_server only dsys-serve --listen "127.0.0.1:$port" --reuse-port --threads 1
	run grep -c "took over" "$SERVER_ERR"
	assert_output 0
	run curl -sf "http://127.0.0.1:$port/hello"
	assert_success
}

@test "restart: the example restarts dsys-serve under dsys-bench --rate load with 0 errors and 0 lost requests" {
	run --separate-stderr env RATE=2000/s DURATION=3s bash "$BATS_TEST_DIRNAME/../examples/zero-downtime-restart.sh"
	[ "$status" -eq 0 ] || { echo "$output $stderr"; false; }
	run jq -e '.sent == 6000 and .requests == 6000 and .errors == 0 and .lost == 0 and .unaccounted == 0 and .old_answered > 0 and .new_answered > 0' <<<"$output"
	assert_success
}

@test "restart: the example restarts dsys-counter serve under load with 0 errors and 0 lost requests" {
	run --separate-stderr env SERVER=counter RATE=1000/s DURATION=3s bash "$BATS_TEST_DIRNAME/../examples/zero-downtime-restart.sh"
	[ "$status" -eq 0 ] || { echo "$output $stderr"; false; }
	run jq -e '.sent == 3000 and .requests == 3000 and .errors == 0 and .lost == 0 and .unaccounted == 0 and .old_answered > 0 and .new_answered > 0' <<<"$output"
	assert_success
}
