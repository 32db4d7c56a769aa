#!/usr/bin/env bats
# The socket backends of lib/http/server, through dsys-serve: io_uring (the
# default where the kernel allows it, which the rest of the suite runs on)
# and libuv's epoll streams (--io uv, DSYS_IO=uv, and the fallback where
# io_uring is refused).  The libuv path runs the whole of serve.bats and
# the whole conformance table here, so both backends answer the same.
#
# io_uring being unavailable is made real, not simulated in the program:
# strace's fault injection makes io_uring_setup(2) fail with ENOSYS or
# EPERM, as on a kernel without it or with kernel.io_uring_disabled.

bats_require_minimum_version 1.5.0
load helpers

setup() {
	dsys_setup
}

teardown() {
	dsys_teardown
}

# uring_refused ERRNO CMD...: run CMD with every io_uring_setup failing
# with ERRNO.  (LeakSanitizer cannot run under ptrace: in a sanitizer build
# the traced program checks everything but leaks.)
uring_refused() {
	local err=$1
	shift
	command -v strace >/dev/null || fail "strace is not installed (Debian strace)"
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -qq -o /dev/null -e trace=io_uring_setup -e inject=io_uring_setup:error="$err" "$@"
}

@test "serve_io: the ready line says which backend serves" {
	start_server serve dsys-serve --listen 127.0.0.1:0
	run jq -r .io <<<"$SERVER_READY"
	assert_output --regexp '^(uring|uv)$'
	run curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
}

@test "serve_io: --io uv and DSYS_IO=uv serve on libuv streams, and the flag wins over the variable" {
	start_server a dsys-serve --listen 127.0.0.1:0 --io uv
	run jq -r .io <<<"$SERVER_READY"
	assert_output uv
	run curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
	DSYS_IO=uv start_server b dsys-serve --listen 127.0.0.1:0
	run jq -r .io <<<"$SERVER_READY"
	assert_output uv
	DSYS_IO=uring start_server c dsys-serve --listen 127.0.0.1:0 --io uv
	run jq -r .io <<<"$SERVER_READY"
	assert_output uv
}

@test "serve_io: --io bogus and DSYS_IO=bogus are usage errors, exit 2" {
	run -2 --separate-stderr dsys-serve --listen 127.0.0.1:0 --io bogus
	assert_output ''
	[[ $stderr == *"bogus"* ]]
	[[ $stderr == *"expected auto, uring or uv"* ]]
	DSYS_IO=bogus run -2 --separate-stderr dsys-serve --listen 127.0.0.1:0
	[[ $stderr == *"DSYS_IO"* ]]
	run -2 dsys-counter serve --listen 127.0.0.1:0 --io epoll
}

@test "serve_io: --io uring where io_uring is refused says so and exits 3" {
	for err in ENOSYS EPERM; do
		run -3 --separate-stderr uring_refused "$err" dsys-serve --listen 127.0.0.1:0 --io uring
		assert_output ''
		[[ $stderr == "dsys-serve: cannot use io_uring: "* ]]
	done
}

@test "serve_io: --io auto where io_uring is refused falls back to libuv and serves" {
	start_server serve uring_refused EPERM dsys-serve --listen 127.0.0.1:0 --threads 2
	run jq -r .io <<<"$SERVER_READY"
	assert_output uv
	run curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
	# SERVER_PID is strace's: signal the server itself, strace exits with it
	kill -TERM "$(jq .pid <<<"$SERVER_READY")"
	st=0
	stop_server "$SERVER_PID" 0 || st=$?
	[ "$st" -eq 0 ]
}

@test "serve_io: --io uring serves, pipelines and drains on io_uring" {
	start_server serve dsys-serve --listen 127.0.0.1:0 --io uring --threads 2
	run jq -r .io <<<"$SERVER_READY"
	assert_output uring
	run raw_http -n 3 "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\n\r\n'
	assert_line --index 0 'HTTP/1.1 200 OK'
	assert_line 'Hello from dsys!HTTP/1.1 200 OK'
	assert_line '{"status":"ok"}HTTP/1.1 404 Not Found'
	assert_line '{"error":"not found"}'
	st=0
	stop_server "$SERVER_PID" || st=$?
	[ "$st" -eq 0 ]
}

@test "serve_io: dsys-counter serve takes --io and says which in its ready line" {
	start_server counter dsys-counter serve --listen 127.0.0.1:0 --io uv
	run jq -r .io <<<"$SERVER_READY"
	assert_output uv
	run curl -s --max-time 10 -X POST -d '{"key":"k","by":2}' "http://127.0.0.1:$SERVER_PORT/incr"
	assert_success
	[[ $output == *'"value":2'* ]]
}

@test "serve_io: the whole conformance table passes on libuv streams" {
	start_server serve dsys-serve --io uv --listen 127.0.0.1:0 --max-uri-bytes 1024 \
		--max-header-bytes 4096 --max-body-bytes 4096 --header-timeout 1s \
		--route 'POST /echo=posted'
	d=$(dsys_tmp results)
	"$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$SERVER_PORT" \
		--table "$BATS_TEST_DIRNAME/conformance/cases.txt" --results "$d" || true
	pass=$(find "$d" -name '*.pass' | wc -l)
	fails=$(find "$d" -name '*.fail' | sort -V)
	for f in $fails; do cat "$f"; done
	[ -z "$fails" ]
	[ "$pass" -ge 150 ]
	[ "$pass" -eq "$(grep -c '^case ' "$BATS_TEST_DIRNAME/conformance/cases.txt")" ]
}

@test "serve_io: the whole of serve.bats passes on libuv streams (DSYS_IO=uv)" {
	DSYS_IO=uv run bats --tap "$BATS_TEST_DIRNAME/serve.bats" 3>&-
	# the failing tests' TAP lines and diagnostics, when any
	[ "$status" -eq 0 ] || { echo "$output" | grep -v '^ok '; false; }
	[[ $output == *"ok "*"serve: SIGTERM drains"* ]]
}

# slow_reader PORT N: pipeline N /hello requests on one connection, not
# reading for the first 2 s (so the answers back up and the server stops
# reading), then read while sending the rest; print how many answers came.
slow_reader() {
	"$DSYS_PY" - "$1" "$2" <<'PY'
import select, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
data = b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n" * n
s = socket.create_connection(("127.0.0.1", port))
s.setblocking(False)
sent, t0 = 0, time.time()
while sent < len(data) and time.time() - t0 < 2:
    try:
        sent += s.send(data[sent:sent + 65536])
    except BlockingIOError:
        time.sleep(0.01)
got, tail, last = 0, b"", time.time()
mark = b"HTTP/1.1 200 OK"
while got < n and time.time() - last < 10:
    r, w, _ = select.select([s], [s] if sent < len(data) else [], [], 1)
    if w:
        try:
            sent += s.send(data[sent:sent + 65536])
        except BlockingIOError:
            pass
    if r:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        last = time.time()
        b = tail + chunk
        got += b.count(mark) - tail.count(mark)
        tail = b[-(len(mark) - 1):]
print(got)
PY
}

@test "serve_io: a client that pipelines without reading gets every answer, on both backends" {
	for io in uring uv; do
		start_server "s-$io" dsys-serve --listen 127.0.0.1:0 --threads 1 --io "$io"
		run slow_reader "$SERVER_PORT" 60000
		assert_output 60000
		# and the server still answers others
		run curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/hello"
		assert_output 'Hello from dsys!'
	done
}
