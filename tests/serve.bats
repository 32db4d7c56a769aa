#!/usr/bin/env bats
# dsys-serve: the routes, the ready line, the bad-input table of issue 10,
# keep-alive and pipelining, the drain, and the command line.

bats_require_minimum_version 1.5.0
load helpers

setup() {
	dsys_setup
}

teardown() {
	dsys_teardown
}

serve() {
	start_server serve dsys-serve --listen 127.0.0.1:0 "$@"
}

# ---------------------------------------------------------------- start-up

@test "serve: the ready line is one JSON object with event, listen, pid and threads" {
	serve --threads 2
	run jq -e -c '[.event, (.listen | test("^127\\.0\\.0\\.1:[0-9]+$")), .pid, .threads]' <<<"$SERVER_READY"
	assert_success
	assert_output "[\"ready\",true,$SERVER_PID,2]"
	# stdout holds that line and nothing else
	run cat "$SERVER_OUT"
	assert_output "$SERVER_READY"
}

@test "serve: --listen 127.0.0.1:0 picks a free port, a different one for a second server" {
	serve
	first=$SERVER_PORT
	serve
	[ "$first" -gt 0 ]
	[ "$SERVER_PORT" -gt 0 ]
	[ "$first" != "$SERVER_PORT" ]
	run http_get "$first" /hello
	assert_line 'HTTP/1.1 200 OK'
}

@test "serve: DSYS_LISTEN is used when --listen is not given, and --listen wins over it" {
	DSYS_LISTEN=127.0.0.1:0 start_server env dsys-serve
	[ "$SERVER_PORT" -gt 0 ]
	DSYS_LISTEN=127.0.0.1:1 start_server env2 dsys-serve --listen 127.0.0.1:0
	[ "$SERVER_PORT" -gt 1 ]
}

@test "serve: a port already taken is an error on stderr and exit 1" {
	serve
	run --separate-stderr dsys-serve --listen "127.0.0.1:$SERVER_PORT"
	assert_failure 1
	[[ "$stderr" == "dsys-serve: cannot listen on 127.0.0.1:$SERVER_PORT: "* ]]
	[ -z "$output" ]
}

@test "serve: a --listen host that does not resolve says so and exits 1" {
	run --separate-stderr timeout 30 dsys-serve --listen nosuchhost.invalid:0
	assert_failure 1
	assert_equal "$stderr" "dsys-serve: cannot listen on nosuchhost.invalid:0: the name 'nosuchhost.invalid' did not resolve"
	[ -z "$output" ]
}

@test "serve: a ready line that cannot be written is a write error and exit 1" {
	run --separate-stderr timeout 30 bash -c 'dsys-serve --listen 127.0.0.1:0 >/dev/full'
	assert_failure 1
	[[ "$stderr" == *"dsys-serve: write error: No space left on device"* ]]
}

# ---------------------------------------------------------------- routes

@test "serve: GET /hello answers 200 text/plain 'Hello from dsys!'" {
	serve
	run http_get "$SERVER_PORT" /hello
	assert_line 'HTTP/1.1 200 OK'
	assert_line 'Content-Type: text/plain'
	assert_line 'Content-Length: 16'
	assert_line --regexp '^Date: [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT$'
	assert_line 'Hello from dsys!'
}

@test "serve: GET /health answers 200 application/json {\"status\":\"ok\"}" {
	serve
	run curl -s --max-time 10 -w '\n%{http_code} %{content_type}' "http://127.0.0.1:$SERVER_PORT/health"
	assert_output $'{"status":"ok"}\n200 application/json'
}

@test "serve: GET /metrics counts requests by route and code, connections and latency" {
	serve --threads 1
	curl -s -o /dev/null "http://127.0.0.1:$SERVER_PORT/hello"
	curl -s -o /dev/null "http://127.0.0.1:$SERVER_PORT/hello"
	curl -s -o /dev/null "http://127.0.0.1:$SERVER_PORT/no/such/path"
	run curl -s --max-time 10 -D - "http://127.0.0.1:$SERVER_PORT/metrics"
	assert_success
	assert_line --partial 'Content-Type: text/plain; version=0.0.4'
	assert_line 'http_requests_total{route="/hello",code="200"} 2'
	assert_line 'http_requests_total{route="unmatched",code="404"} 1'
	assert_line '# TYPE http_request_duration_seconds histogram'
	assert_line 'http_request_duration_seconds_count 3'
	assert_line 'http_requests_in_flight 1'
	assert_line --regexp '^http_connections_open [1-4]$'
	assert_line 'http_connections_total 4'
	assert_line --regexp '^process_resident_memory_bytes [0-9]'
}

@test "serve: HEAD /hello gets the GET head with Content-Length and no body" {
	serve
	run raw_http -H -n 2 "$SERVER_PORT" 'HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_line --index 0 'HTTP/1.1 200 OK'
	assert_line 'Content-Length: 16'
	refute_output --partial 'Hello from dsys!'
	# the next answer starts right after the empty line: no body in between
	[[ "$output" == *$'Content-Length: 16\n\nHTTP/1.1 200 OK'* ]]
}

@test "serve: --route serves a static body at a method and path" {
	serve --route 'GET /a=alpha' --route 'POST /submit=thanks'
	run curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/a"
	assert_output alpha
	run curl -s --max-time 10 -d 'x=1' "http://127.0.0.1:$SERVER_PORT/submit"
	assert_output thanks
	run curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 200
}

@test "serve: --route @FILE serves the file read at start, typed by its extension or --type" {
	d=$(dsys_tmp files)
	printf '<h1>hi</h1>\n' >"$d/index.html"
	printf 'a,b\n' >"$d/data.bin"
	serve --route "GET /=@$d/index.html" --type text/csv --route "GET /data=@$d/data.bin"
	rm "$d/index.html"   # read once at start: still served
	run curl -s --max-time 10 -w '\n%{content_type}' "http://127.0.0.1:$SERVER_PORT/"
	assert_output $'<h1>hi</h1>\n\ntext/html; charset=utf-8'
	run curl -s --max-time 10 -w '\n%{content_type}' "http://127.0.0.1:$SERVER_PORT/data"
	assert_output $'a,b\n\ntext/csv'
}

@test "serve: a --route for GET /hello replaces the default one" {
	serve --route 'GET /hello=mine'
	run curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output mine
}

@test "serve: --no-default-routes leaves out /hello but keeps /health and /metrics" {
	serve --no-default-routes
	run curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 404
	run curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SERVER_PORT/health"
	assert_output 200
}

@test "serve: an unknown path is a 404 with a JSON body, and the connection stays open" {
	serve
	run raw_http -n 2 "$SERVER_PORT" 'GET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_failure 1
	assert_line --index 0 'HTTP/1.1 404 Not Found'
	assert_line 'Content-Type: application/json'
	assert_line '{"error":"not found"}HTTP/1.1 200 OK'
}

@test "serve: a method the path does not have is a 405 with Allow" {
	serve --route 'PUT /thing=put'
	run raw_http -n 1 "$SERVER_PORT" 'DELETE /hello HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_line --index 0 'HTTP/1.1 405 Method Not Allowed'
	assert_line 'Allow: GET, HEAD, OPTIONS'
	assert_line --partial '{"error":"method not allowed"}'
	run raw_http -n 1 "$SERVER_PORT" 'GET /thing HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_line --index 0 'HTTP/1.1 405 Method Not Allowed'
	assert_line 'Allow: PUT, OPTIONS'
}

# ---------------------------------------------------------------- bad input

# bad REQUEST STATUS: the request gets STATUS with a JSON error body and
# "Connection: close", and the server closes the connection after it.
bad() {
	run raw_http "$SERVER_PORT" "$1"
	assert_success   # closed by the server
	assert_line --index 0 --regexp "^HTTP/1.1 $2 "
	assert_line 'Connection: close'
	assert_line 'Content-Type: application/json'
	assert_line --regexp '^\{"error":"[^"]+"\}$'
}

@test "serve: a malformed request line is a 400 and a close" {
	serve
	bad 'GET /hello\r\nHost: a\r\n\r\n' 400
	bad 'GET  /hello HTTP/1.1\r\nHost: a\r\n\r\n' 400
	bad 'G(T /hello HTTP/1.1\r\nHost: a\r\n\r\n' 400
}

@test "serve: bad header syntax is a 400 and a close" {
	serve
	bad 'GET /hello HTTP/1.1\r\nHost : a\r\n\r\n' 400
	bad 'GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n' 400
	bad 'GET /hello HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n' 400
	bad 'GET /hello HTTP/1.1\nHost: a\n\n' 400
}

@test "serve: Content-Length with Transfer-Encoding is a 400 and a close" {
	serve
	bad 'POST /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' 400
}

@test "serve: two different Content-Length values are a 400 and a close" {
	serve
	bad 'POST /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd' 400
}

@test "serve: an HTTP/1.1 request without Host, or with two, is a 400 and a close" {
	serve
	bad 'GET /hello HTTP/1.1\r\n\r\n' 400
	bad 'GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n' 400
}

@test "serve: a target over --max-uri-bytes is a 414 and a close" {
	serve --max-uri-bytes 100
	long=$(printf 'a%.0s' {1..200})
	bad "GET /$long HTTP/1.1\r\nHost: a\r\n\r\n" 414
	run curl -s --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 200
}

@test "serve: --max-uri-bytes above the default read block: a long target gets its 431 or 414, not a 408" {
	# the head limit stays 8k: a 40 KiB target within --max-uri-bytes makes
	# the head too large (431), a 70 KiB one is over --max-uri-bytes (414);
	# the server must hold enough of either to decide
	serve --max-uri-bytes 64k
	mid=$(head -c 40960 /dev/zero | tr '\0' a)
	long=$(head -c 71680 /dev/zero | tr '\0' a)
	bad "GET /$mid HTTP/1.1\r\nHost: a\r\n\r\n" 431
	bad "GET /$long HTTP/1.1\r\nHost: a\r\n\r\n" 414
}

@test "serve: with --max-uri-bytes 64k --max-header-bytes 64k a 40 KiB target is served, a 70 KiB one is a 414" {
	mid=$(head -c 40960 /dev/zero | tr '\0' a)
	long=$(head -c 71680 /dev/zero | tr '\0' a)
	serve --max-uri-bytes 64k --max-header-bytes 64k --route "GET /$mid=found"
	run raw_http -n 2 "$SERVER_PORT" "GET /$mid HTTP/1.1\r\nHost: a\r\n\r\nGET /b$mid HTTP/1.1\r\nHost: a\r\n\r\n"
	assert_line --index 0 'HTTP/1.1 200 OK'
	assert_line 'foundHTTP/1.1 404 Not Found'
	bad "GET /$long HTTP/1.1\r\nHost: a\r\n\r\n" 414
}

@test "serve: an HTTP major version other than 1 is a 505 and a close" {
	serve
	bad 'GET /hello HTTP/2.0\r\nHost: a\r\n\r\n' 505
	bad 'GET /hello HTTP/3.1\r\nHost: a\r\n\r\n' 505
}

@test "serve: a Transfer-Encoding other than chunked is a 501 and a close" {
	serve
	bad 'POST /hello HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n' 501
}

@test "serve: a head over --max-header-bytes is a 431 and a close" {
	serve --max-header-bytes 1k
	big=$(printf 'x%.0s' {1..2000})
	bad "GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: $big\r\n\r\n" 431
}

@test "serve: a body over --max-body-bytes is a 413 and a close, declared or chunked" {
	serve --max-body-bytes 10 --route 'POST /echo=ok'
	bad 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n01234567890' 413
	bad 'POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n' 413
	run raw_http -n 1 "$SERVER_PORT" 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789'
	assert_line --index 0 'HTTP/1.1 200 OK'
}

@test "serve: a head not complete within --header-timeout is a 408 and a close" {
	serve --header-timeout 300ms
	run raw_http -w 20 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n'
	assert_success
	assert_line --index 0 'HTTP/1.1 408 Request Timeout'
	assert_line 'Connection: close'
	assert_line '{"error":"request timed out"}'
}

@test "serve: a body not complete within --body-timeout is a 408 and a close" {
	serve --body-timeout 300ms --route 'POST /echo=ok'
	run raw_http -w 20 "$SERVER_PORT" 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234'
	assert_success
	assert_line --index 0 'HTTP/1.1 408 Request Timeout'
}

@test "serve: connections over --max-connections are closed at once and counted" {
	serve --max-connections 2 --threads 1   # one accept queue: accepted in connection order
	# two connections held open by this shell
	exec 5<>"/dev/tcp/127.0.0.1/$SERVER_PORT"
	exec 6<>"/dev/tcp/127.0.0.1/$SERVER_PORT"
	# the third is closed without an answer
	run raw_http -w 20 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_success
	assert_output ''
	exec 5>&- 6>&-
	# once they are gone, the counter shows the rejection
	for ((i = 0; i < 200; i++)); do
		n=$(metric "$SERVER_PORT" 'http_connections_rejected_total{reason="limit"}') && [ "$n" -ge 1 ] && break
		sleep 0.05
	done
	[ "$n" -ge 1 ]
}

@test "serve: the server keeps serving others after bad input" {
	serve
	bad 'BAD\r\n\r\n' 400
	run curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
}

# ---------------------------------------------------------------- connections

@test "serve: keep-alive: two requests one after the other on one connection" {
	serve
	run raw_http -a -n 2 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n' 'GET /health HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_failure 1   # still open
	assert_line 'Hello from dsys!HTTP/1.1 200 OK'
	assert_line '{"status":"ok"}'
	refute_line 'Connection: close'
}

@test "serve: pipelining: a burst of requests is answered in order" {
	serve
	req='GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n'
	run raw_http -n 3 "$SERVER_PORT" "$req"
	assert_line --index 0 'HTTP/1.1 200 OK'
	[ "$(grep -o 'HTTP/1.1 [0-9]' <<<"$output" | wc -l)" -eq 3 ]
	[[ "$output" == *'{"status":"ok"}HTTP/1.1 404 Not Found'*'{"error":"not found"}HTTP/1.1 200 OK'*'Hello from dsys!' ]]
}

@test "serve: pipelined answers that come late still leave in request order" {
	serve --delay 200ms
	run raw_http -n 3 -w 20 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\n'
	[[ "$output" == 'HTTP/1.1 200 OK'*'Hello from dsys!HTTP/1.1 200 OK'*'{"status":"ok"}HTTP/1.1 404 Not Found'*'{"error":"not found"}' ]]
}

# big_answers PORT PATH SIZE: on one keep-alive connection, ask for PATH
# once, then again, then twice pipelined, twice more; read each answer whole
# (Content-Length framing) before sending on, and print one line per answer:
# "STEP STATUS LENGTH" and whether the body held SIZE bytes of 'x'.
big_answers() {
	"$DSYS_PY" - "$@" <<'PY'
import socket, sys
port, path, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(('127.0.0.1', port))
s.settimeout(10)
pending = b''
def answer():
    global pending
    while b'\r\n\r\n' not in pending:
        d = s.recv(65536)
        if not d: raise SystemExit('closed inside a head')
        pending += d
    head, _, rest = pending.partition(b'\r\n\r\n')
    lines = head.decode('latin-1').split('\r\n')
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(':')
        if k.strip().lower() == 'content-length': length = int(v)
    while len(rest) < length:
        d = s.recv(1 << 20)
        if not d: raise SystemExit('closed inside a body')
        rest += d
    body, pending = rest[:length], rest[length:]
    whole = 'whole' if body == b'x' * size else 'wrong'
    return '%s %d %s' % (lines[0], length, whole)
req = ('GET %s HTTP/1.1\r\nHost: a\r\n\r\n' % path).encode()
try:
    for step, n in (('first', 1), ('second', 1), ('pipelined', 2), ('pipelined-again', 2)):
        s.sendall(req * n)
        for _ in range(n):
            print(step, answer(), flush=True)
except socket.timeout:
    print('timed out', flush=True)
PY
}

@test "serve: one keep-alive connection gets 2 MiB answers one after another and pipelined" {
	d=$(dsys_tmp big)
	head -c 2097152 /dev/zero | tr '\0' x >"$d/big.txt"
	serve --threads 1 --route "GET /big=@$d/big.txt"
	run big_answers "$SERVER_PORT" /big 2097152
	assert_success
	assert_output - <<'OUT'
first HTTP/1.1 200 OK 2097152 whole
second HTTP/1.1 200 OK 2097152 whole
pipelined HTTP/1.1 200 OK 2097152 whole
pipelined HTTP/1.1 200 OK 2097152 whole
pipelined-again HTTP/1.1 200 OK 2097152 whole
pipelined-again HTTP/1.1 200 OK 2097152 whole
OUT
	# and the server goes on serving
	run raw_http -n 1 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_line 'Hello from dsys!'
}

@test "serve: Connection: close is honoured: the answer says so and the server closes" {
	serve
	run raw_http "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_success
	assert_line 'Connection: close'
	[ "$(grep -o 'HTTP/1.1 [0-9]' <<<"$output" | wc -l)" -eq 1 ]
}

@test "serve: HTTP/1.0 closes after the answer unless it asks for keep-alive" {
	serve
	run raw_http "$SERVER_PORT" 'GET /hello HTTP/1.0\r\n\r\n'
	assert_success
	assert_line 'Connection: close'
	run raw_http -n 1 "$SERVER_PORT" 'GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'
	assert_failure 1
	assert_line 'Connection: keep-alive'
}

@test "serve: a request split across many writes is answered once it is whole" {
	serve
	run raw_http -n 1 -p 0.05 "$SERVER_PORT" 'GE' 'T /hel' 'lo HTTP/1.1\r' '\nHost: a\r\n' '\r\n'
	assert_line --index 0 'HTTP/1.1 200 OK'
	assert_line 'Hello from dsys!'
}

@test "serve: a chunked request body is read and answered" {
	serve --route 'POST /echo=ok'
	run raw_http -n 1 "$SERVER_PORT" 'POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'
	assert_line --index 0 'HTTP/1.1 200 OK'
	assert_line 'ok'
}

@test "serve: Expect: 100-continue gets 100 Continue before the body is sent" {
	serve --route 'POST /echo=ok'
	run raw_http -n 1 "$SERVER_PORT" 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n'
	assert_output 'HTTP/1.1 100 Continue'
	run raw_http -a -n 2 "$SERVER_PORT" 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n' 'abc'
	assert_line --index 0 'HTTP/1.1 100 Continue'
	assert_line 'HTTP/1.1 200 OK'
}

@test "serve: an idle keep-alive connection is closed after --idle-timeout" {
	serve --idle-timeout 200ms
	run raw_http -w 20 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_success   # closed by the server, not by our 20 s wait
	assert_line 'Hello from dsys!'
	refute_line 'Connection: close'
}

@test "serve: --threads 2 serves on both loops with one port" {
	serve --threads 2
	for i in 1 2 3 4 5 6; do
		run curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/hello"
		assert_output 'Hello from dsys!'
	done
}

# ---------------------------------------------------------------- drain

@test "serve: SIGTERM on an idle server exits 0" {
	serve
	st=0
	stop_server "$SERVER_PID" || st=$?
	[ "$st" -eq 0 ]
	grep -q '"msg":"drained"' "$SERVER_ERR"
}

@test "serve: SIGTERM drains: a request in flight is answered, then the server exits 0" {
	serve --delay 1s
	d=$(dsys_tmp drain)
	raw_http -w 30 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n' >"$d/answer" 3>&- &
	client=$!
	# the request is in flight once the server counts it (the scrape is the other one)
	for ((i = 0; i < 400; i++)); do
		n=$(metric "$SERVER_PORT" http_requests_in_flight) && [ "$n" -ge 2 ] && break
		sleep 0.02
	done
	[ "$n" -ge 2 ]
	st=0
	stop_server "$SERVER_PID" || st=$?
	[ "$st" -eq 0 ]
	wait "$client" || true
	run cat "$d/answer"
	assert_line --index 0 'HTTP/1.1 200 OK'
	assert_line 'Connection: close'
	assert_line 'Hello from dsys!'
}

# Open a keep-alive client that sends one /hello, wait until METRIC (a
# gauge of /metrics, which counts the scrape's own connection or request
# too) reaches 2, SIGTERM the server and check it exits 0; $cst is then the
# client's exit status (0: the server closed the connection).
drain_with_client() {
	d=$(dsys_tmp drain)
	raw_http -w 30 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n' >"$d/answer" 3>&- &
	client=$!
	for ((i = 0; i < 400; i++)); do
		n=$(metric "$SERVER_PORT" "$1") && [ "$n" -ge 2 ] && break
		sleep 0.02
	done
	[ "$n" -ge 2 ]
	st=0
	stop_server "$SERVER_PID" || st=$?
	[ "$st" -eq 0 ]
	cst=0
	wait "$client" || cst=$?
}

@test "serve: SIGTERM closes idle keep-alive connections and new connections are refused" {
	serve
	drain_with_client http_connections_open
	[ "$cst" -eq 0 ]   # closed by the server
	run raw_http "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_failure 2
}

@test "serve: --drain-timeout bounds the drain when a request takes longer" {
	serve --delay 60s --drain-timeout 300ms
	drain_with_client http_requests_in_flight
	[ "$cst" -eq 0 ]   # the connection was closed, not left hanging
}

# ---------------------------------------------------------------- command line

@test "serve: --help prints usage and every option, exit 0" {
	run dsys-serve --help
	assert_success
	assert_line --index 0 'usage: dsys-serve [OPTION]...'
	for o in $(dsys-serve --list-options); do
		assert_output --partial -- "$o"
	done
}

@test "serve: --version prints the name and version, exit 0" {
	run dsys-serve --version
	assert_success
	assert_output --regexp '^dsys-serve [0-9]+\.[0-9]+'
}

@test "serve: an unknown flag, a bad value or an operand is a usage error, exit 2" {
	run --separate-stderr dsys-serve --no-such-flag
	assert_failure 2
	[[ "$stderr" == *"unknown option '--no-such-flag'"* ]]
	run --separate-stderr dsys-serve --threads 0
	assert_failure 2
	[[ "$stderr" == *"invalid value '0' for --threads"* ]]
	run --separate-stderr dsys-serve --listen nowhere
	assert_failure 2
	run --separate-stderr dsys-serve --header-timeout soon
	assert_failure 2
	run --separate-stderr dsys-serve --max-body-bytes 1X
	assert_failure 2
	run --separate-stderr dsys-serve extra
	assert_failure 2
	[ -z "$output" ]
}

@test "serve: a malformed --route or an unreadable @FILE is a usage error, exit 2" {
	run --separate-stderr dsys-serve --route 'GET /x'
	assert_failure 2
	[[ "$stderr" == *"invalid value 'GET /x' for --route"* ]]
	run --separate-stderr dsys-serve --route 'GET x=y'
	assert_failure 2
	run --separate-stderr dsys-serve --route 'GET /x=@/no/such/file'
	assert_failure 2
	[[ "$stderr" == *"cannot read '/no/such/file': No such file or directory"* ]]
	run --separate-stderr dsys-serve --route 'GET /x=a' --route 'GET /x=b'
	assert_failure 2
}

@test "serve: a bad DSYS_LISTEN is a usage error naming the variable" {
	DSYS_LISTEN=nowhere run --separate-stderr dsys-serve
	assert_failure 2
	[[ "$stderr" == *"in DSYS_LISTEN"* ]]
}

@test "serve: every option of --list-options is documented in the man page" {
	page="$BATS_TEST_DIRNAME/../man/man1/dsys-serve.1"
	[ -f "$page" ]
	for o in $(dsys-serve --list-options); do
		grep -qE "Fl -${o#--}( |$)" "$page" || { echo "$o is not in $page"; false; }
	done
}

@test "serve: the man page's first example runs and prints the greeting" {
	page="$BATS_TEST_DIRNAME/../man/man1/dsys-serve.1"
	example=$(awk '/^\.Sh EXAMPLES/ { ex = 1 } ex && /^\.Ed/ { exit } ex && lit { print } ex && /^\.Bd -literal/ { lit = 1 }' "$page")
	[[ "$example" == *'dsys-serve --listen 127.0.0.1:0'* ]]
	cd "$(dsys_tmp example)"
	run --separate-stderr timeout 30 bash -c "set -m; $example" 3>&-
	assert_success
	assert_output 'Hello from dsys!'
}

@test "serve: the man page is mandoc-lint clean" {
	run mandoc -T lint -W warning "$BATS_TEST_DIRNAME/../man/man1/dsys-serve.1"
	assert_success
	assert_output ''
}

@test "serve: the bash completion offers the program's options" {
	load helpers_completion
	run bash_complete "$BATS_TEST_DIRNAME/../completions/bash/dsys-serve" dsys-serve --max-b
	assert_success
	assert_output '--max-body-bytes'
}

@test "serve: bash completes --io with auto, uring and uv, and never offers files for a value" {
	load helpers_completion
	comp=$BATS_TEST_DIRNAME/../completions/bash/dsys-serve
	cd "$BATS_TEST_TMPDIR" && touch afile
	run bash_complete "$comp" dsys-serve --io ''
	assert_success
	assert_equal "$(sort <<<"$output" | tr '\n' ' ')" "auto uring uv "
	run bash_complete "$comp" dsys-serve --io u
	assert_equal "$(sort <<<"$output" | tr '\n' ' ')" "uring uv "
	for opt in --threads -t --listen --delay --max-body-bytes; do
		run bash_complete "$comp" dsys-serve "$opt" ''
		assert_success
		assert_output ''
	done
	run bash_complete "$comp" dsys-serve --route 'GET /x=@af'
	assert_output 'GET /x=@afile'
	run bash_complete "$comp" dsys-serve ''
	assert_output ''
}

@test "serve: every value the completions offer for --io is one dsys-serve takes" {
	load helpers_completion
	run bash_complete "$BATS_TEST_DIRNAME/../completions/bash/dsys-serve" dsys-serve --io ''
	[ -n "$output" ]
	for v in $output; do
		run dsys-serve --io "$v" --version
		assert_success
	done
	run dsys-serve --io epoll --version
	assert_failure 2
}

@test "serve: zsh completes options, --io's values, and no files for a value" {
	load helpers_completion
	comp=$BATS_TEST_DIRNAME/../completions/zsh/_dsys-serve
	run zsh_complete "$comp" dsys-serve --max-b
	assert_success
	assert_line -- --max-body-bytes
	assert_line -- --io
	run zsh_complete "$comp" dsys-serve --io ''
	assert_success
	assert_equal "$(sort <<<"$output" | tr '\n' ' ')" "auto uring uv "
	run zsh_complete "$comp" dsys-serve -t ''
	assert_output '<message:N>'
	run zsh_complete "$comp" dsys-serve --listen ''
	assert_output '<message:HOST:PORT>'
	run zsh_complete "$comp" dsys-serve --route 'GET /x=@'
	assert_output '<files>'
	run zsh_complete "$comp" dsys-serve ''
	assert_output ''
}
