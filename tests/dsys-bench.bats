#!/usr/bin/env bats
# dsys-bench: counts that agree with the server's, exact --requests, the
# achieved --rate, coordinated omission corrected, every kind of failure
# counted, and the exit codes.  Servers: dsys-serve, nginx-light, and a
# small python3 server that misbehaves on purpose (hang, reset, close
# mid-response, 5xx, chunked, Connection: close, body until close).
# Each test starts its own servers on free loopback ports and stops them by
# PID; runs are 1-2 s, but for the coordinated-omission test (10 s).

load helpers
bats_require_minimum_version 1.5.0

BIN=$DSYS_BIN
PIDS=()

# The misbehaving server: MODE decides what every (or every other) request
# gets; it prints "listen PORT" once bound, and /count (any request whose
# target starts with /count) answers the number of requests seen so far.
write_pyserver() {
	cat >"$BATS_TEST_TMPDIR/srv.py" <<'EOF'
import socket, struct, sys, threading
mode = sys.argv[1]
want_body = int(sys.argv[2]) if len(sys.argv) > 2 else 0
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(128)
print("listen %d" % s.getsockname()[1], flush=True)
count = 0
lock = threading.Lock()

def read_req(c, buf):
    while b"\r\n\r\n" not in buf:
        d = c.recv(65536)
        if not d:
            return None, None, b""
        buf += d
    i = buf.index(b"\r\n\r\n") + 4
    head = buf[:i]
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":", 1)[1])
    while len(buf) < i + n:
        d = c.recv(65536)
        if not d:
            return None, None, b""
        buf += d
    return head, buf[i:i + n], buf[i + n:]

def send(c, code, body, extra=b""):
    c.sendall(b"HTTP/1.1 " + code + b"\r\nContent-Length: " + str(len(body)).encode()
              + b"\r\n" + extra + b"\r\n" + body)

def serve(c):
    global count
    buf = b""
    try:
        while True:
            head, body, buf = read_req(c, buf)
            if head is None:
                return
            if head.startswith(b"GET /count"):
                with lock:
                    n = count
                send(c, b"200 OK", str(n).encode())
                continue
            with lock:
                count += 1
                n = count
            if mode == "hang":
                continue
            if mode == "reset" and n % 2 == 0:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
                return
            if mode == "midclose" and n % 2 == 0:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
                c.close()
                return
            if mode == "status":
                send(c, b"503 Service Unavailable" if n % 2 == 0 else b"200 OK", b"ok")
                continue
            if mode == "chunked":
                c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                continue
            if mode == "close":
                send(c, b"200 OK", b"bye", b"Connection: close\r\n")
                c.close()
                return
            if mode == "eof":
                c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
                c.close()
                return
            if mode == "body":
                ok = len(body) == want_body and head.startswith(b"POST ")
                send(c, b"200 OK" if ok else b"422 Unprocessable Content", b"ok")
                continue
            send(c, b"200 OK", b"ok")
    except OSError:
        pass

while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
}

# start_py MODE [ARG]: sets PY_PORT
start_py() {
	write_pyserver
	: >"$BATS_TEST_TMPDIR/py.out"
	"$DSYS_PY" "$BATS_TEST_TMPDIR/srv.py" "$@" >"$BATS_TEST_TMPDIR/py.out" 2>&1 3>&- &
	PIDS+=($!)
	local i
	for ((i = 0; i < 200; i++)); do
		PY_PORT=$(sed -n 's/^listen \([0-9]*\)$/\1/p' "$BATS_TEST_TMPDIR/py.out")
		[ -n "$PY_PORT" ] && return 0
		sleep 0.05
	done
	echo "python server did not start: $(cat "$BATS_TEST_TMPDIR/py.out")" >&2
	return 1
}

py_count() {
	curl -s --max-time 5 "http://127.0.0.1:$PY_PORT/count"
}

# start_serve NAME [ARG]...: dsys-serve on one loop, with ARGs (helpers.bash's
# start_server); sets SERVE_PORT and SERVE_PID
start_serve() {
	local name=$1
	shift
	start_server "serve-$name" "$BIN/dsys-serve" --listen 127.0.0.1:0 --threads 1 "$@" || return 1
	SERVE_PID=$SERVER_PID
	SERVE_PORT=$SERVER_PORT
	PIDS+=("$SERVE_PID")
}

# What dsys-serve counted: every request of every route and status.
serve_count() {
	curl -s --max-time 5 "http://127.0.0.1:$1/metrics" |
		awk '/^http_requests_total[{ ]/ && !/route="\/metrics"/ { n += $NF } END { print n + 0 }'
}

free_port() {
	"$DSYS_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_nginx: one worker on a free port, an access log of one line per
# request; sets NGINX_PORT, NGINX_PID (the master) and NGINX_LOG
start_nginx() {
	local d=$BATS_TEST_TMPDIR/nginx user=
	mkdir -p "$d"
	[ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
	NGINX_PORT=$(free_port)
	NGINX_LOG=$d/access.log
	cat >"$d/nginx.conf" <<EOF
$user
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
    access_log $NGINX_LOG;
    keepalive_requests 1000000;
    client_body_temp_path $d/cb;
    proxy_temp_path $d/px;
    fastcgi_temp_path $d/fc;
    uwsgi_temp_path $d/uw;
    scgi_temp_path $d/sc;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /hello { default_type text/plain; return 200 "Hello from dsys!"; }
    }
}
EOF
	/usr/sbin/nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" -g 'daemon off;' \
		>"$d/out" 2>&1 3>&- &
	NGINX_PID=$!
	PIDS+=($NGINX_PID)
	local i
	for ((i = 0; i < 200; i++)); do
		curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$NGINX_PORT/hello" && break
		sleep 0.05
	done
	# the readiness probes are logged too (a line may land after curl is
	# done): count from here on
	NGINX_BASE=0
	NGINX_BASE=$(nginx_count)
}

# Lines in nginx's access log since start_nginx, once it stopped growing.
nginx_count() {
	local n m i
	n=$(wc -l <"$NGINX_LOG")
	for ((i = 0; i < 20; i++)); do
		sleep 0.05
		m=$(wc -l <"$NGINX_LOG")
		[ "$m" = "$n" ] && break
		n=$m
	done
	echo $((n - NGINX_BASE))
}

teardown() {
	local p
	for p in "${PIDS[@]}"; do
		kill -CONT "$p" 2>/dev/null
		kill "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	dsys_teardown
}

bench() {
	"$BIN/dsys-bench" "$@"
}

@test "bench: the request count equals dsys-serve's count in /metrics" {
	start_serve a
	run --separate-stderr bench -t 2 -c 7 -d 1s "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	req=$(jq -r .requests <<<"$output")
	[ "$req" -gt 100 ]
	assert_equal "$(jq -r '.errors.read + .errors.write + .errors.timeout' <<<"$output")" 0
	assert_equal "$(serve_count "$SERVE_PORT")" "$req"
}

@test "bench: with many requests in flight (answers taken in batches) the count still equals dsys-serve's" {
	start_serve a
	run --separate-stderr bench -t 1 -c 40 --pipeline 2 -d 1s "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	req=$(jq -r .requests <<<"$output")
	[ "$req" -gt 1000 ]
	assert_equal "$(jq -r .sent <<<"$output")" "$req"
	assert_equal "$(jq -r '.errors.read + .errors.write + .errors.timeout' <<<"$output")" 0
	assert_equal "$(serve_count "$SERVE_PORT")" "$req"
	run --separate-stderr bench -t 1 -c 64 --requests 5000 "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 5000
	assert_equal "$(serve_count "$SERVE_PORT")" $((req + 5000))
	# --batch-wait 0 takes every answer at once; the count is as exact
	run --separate-stderr bench -t 1 -c 64 --requests 3000 --batch-wait 0 "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 3000
	assert_equal "$(serve_count "$SERVE_PORT")" $((req + 8000))
}

@test "bench: --batch-wait takes 0 up to 10ms and refuses the rest with exit 2" {
	for v in 1s -1us abc; do
		run --separate-stderr bench --batch-wait "$v" -d 1s http://127.0.0.1:1/
		[ "$status" -eq 2 ]
		[[ "$stderr" == *"--batch-wait"* ]]
	done
}

@test "bench: responses over 1 MiB are read whole, not refused" {
	head -c 2097152 /dev/zero | tr '\0' x >"$BATS_TEST_TMPDIR/big.txt"
	start_serve big --route "GET /big=@$BATS_TEST_TMPDIR/big.txt"
	run --separate-stderr bench -t 1 -c 2 --requests 20 "http://127.0.0.1:$SERVE_PORT/big"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 20
	assert_equal "$(jq -r '.errors.read + .errors.write + .errors.timeout' <<<"$output")" 0
	[ "$(jq -r .bytes <<<"$output")" -ge $((20 * 2097152)) ]
}

@test "bench: the libuv stream path (DSYS_BENCH_IO=uv) counts the same as the io_uring one" {
	start_serve a
	DSYS_BENCH_IO=uv run --separate-stderr bench -t 2 -c 5 --pipeline 2 -d 1s "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	req=$(jq -r .requests <<<"$output")
	[ "$req" -gt 100 ]
	assert_equal "$(jq -r .sent <<<"$output")" "$req"
	assert_equal "$(serve_count "$SERVE_PORT")" "$req"
	start_py reset
	DSYS_BENCH_IO=uv run --separate-stderr bench -t 1 -c 2 --requests 200 "http://127.0.0.1:$PY_PORT/"
	assert_success
	assert_equal $(($(jq -r '.requests + .errors.read' <<<"$output"))) 200
	[ "$(jq -r .errors.read <<<"$output")" -gt 10 ]
	DSYS_BENCH_IO=epoll run bench -d 1s "http://127.0.0.1:$PY_PORT/"
	assert_failure 2
}

@test "bench: the request count equals the lines of nginx's access log" {
	start_nginx
	run --separate-stderr bench -t 2 -c 5 -d 1s "http://127.0.0.1:$NGINX_PORT/hello"
	assert_success
	req=$(jq -r .requests <<<"$output")
	[ "$req" -gt 100 ]
	assert_equal "$(jq -r .sent <<<"$output")" "$req"
	assert_equal "$(nginx_count)" "$req"
	assert_equal "$(jq -r '.status["200"]' <<<"$output")" "$req"
}

@test "bench: --requests N sends exactly N, pipelined over several threads" {
	start_serve a
	run --separate-stderr bench -t 2 -c 5 --pipeline 4 --requests 1237 "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 1237
	assert_equal "$(jq -r .sent <<<"$output")" 1237
	assert_equal "$(serve_count "$SERVE_PORT")" 1237
}

@test "bench: --requests with --rate sends exactly N on the schedule" {
	start_nginx
	run --separate-stderr bench -t 2 -c 4 --rate 2000 --requests 500 "http://127.0.0.1:$NGINX_PORT/hello"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 500
	assert_equal "$(nginx_count)" 500
}

@test "bench: --rate 500 for 2 s sends about 1000 requests (within 5%)" {
	start_nginx
	run --separate-stderr bench -t 2 -c 10 --rate 500 -d 2s "http://127.0.0.1:$NGINX_PORT/hello"
	assert_success
	req=$(jq -r .requests <<<"$output")
	[ "$req" -ge 950 ] && [ "$req" -le 1050 ] || { echo "requests $req"; false; }
	jq -e '.rate == 500 and .latency_uncorrected_us.p50 >= 0 and .send_lag_us.max >= 0' <<<"$output"
	assert_equal "$(nginx_count)" "$req"
}

@test "bench: rates below the thread count work (3/s over 4 threads)" {
	start_nginx
	run --separate-stderr bench -t 4 -c 4 --rate 3 -d 2s "http://127.0.0.1:$NGINX_PORT/hello"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 6
	run --separate-stderr bench -t 2 -c 2 --rate 60/m -d 2500ms "http://127.0.0.1:$NGINX_PORT/hello"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 3
}

@test "bench: a server frozen for 1 s shows in the corrected percentiles, not the uncorrected" {
	start_nginx
	worker=$(pgrep -P "$NGINX_PID" | head -1)
	[ -n "$worker" ]
	(sleep 3; kill -STOP "$worker"; sleep 1; kill -CONT "$worker") 3>&- &
	PIDS+=($!)
	run --separate-stderr bench -t 1 -c 10 --rate 1000 -d 10s "http://127.0.0.1:$NGINX_PORT/hello"
	assert_success
	echo "$output" | jq -c '{requests, latency_us, latency_uncorrected_us}'
	jq -e '.latency_us.p95 >= 400000' <<<"$output"
	jq -e '.latency_us.p99 >= 800000' <<<"$output"
	jq -e '.latency_uncorrected_us.p99 < 200000' <<<"$output"
	jq -e '.send_lag_us.max >= 800000' <<<"$output"
}

@test "bench: a request the server never answers is a timeout, and its connection is replaced" {
	start_py hang
	run --separate-stderr bench -t 1 -c 2 -d 1s --timeout 200ms "http://127.0.0.1:$PY_PORT/"
	assert_success
	timeouts=$(jq -r .errors.timeout <<<"$output")
	[ "$timeouts" -ge 4 ] || { echo "$output"; false; }
	assert_equal "$(jq -r .requests <<<"$output")" 0
	# every request sent was cancelled, and each on a new connection
	assert_equal "$(jq -r .sent <<<"$output")" "$timeouts"
	assert_equal "$(py_count)" "$timeouts"
}

@test "bench: resets are read errors, one per lost request" {
	start_py reset
	run --separate-stderr bench -t 1 -c 2 -d 1s "http://127.0.0.1:$PY_PORT/"
	assert_success
	req=$(jq -r .requests <<<"$output")
	read_err=$(jq -r .errors.read <<<"$output")
	[ "$req" -gt 10 ]
	[ "$read_err" -gt 10 ]
	assert_equal "$(jq -r .sent <<<"$output")" $((req + read_err))
	assert_equal "$(py_count)" $((req + read_err))
}

@test "bench: a close in the middle of a response is a read error" {
	start_py midclose
	run --separate-stderr bench -t 1 -c 2 -d 1s "http://127.0.0.1:$PY_PORT/"
	assert_success
	req=$(jq -r .requests <<<"$output")
	read_err=$(jq -r .errors.read <<<"$output")
	[ "$req" -gt 10 ]
	[ "$read_err" -gt 10 ]
	assert_equal "$(jq -r .sent <<<"$output")" $((req + read_err))
	assert_equal "$(jq -r '.status["200"]' <<<"$output")" "$req"
}

@test "bench: 5xx answers are counted by status, and the run still exits 0" {
	start_py status
	run --separate-stderr bench -t 1 -c 1 --requests 100 "http://127.0.0.1:$PY_PORT/"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 100
	assert_equal "$(jq -r '.errors.status["503"]' <<<"$output")" 50
	assert_equal "$(jq -r '.status["200"]' <<<"$output")" 50
}

@test "bench: chunked responses are framed on a kept-alive connection" {
	start_py chunked
	run --separate-stderr bench -t 1 -c 2 --pipeline 3 --requests 300 "http://127.0.0.1:$PY_PORT/"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 300
	assert_equal "$(jq -r '.errors | .read + .write + .timeout' <<<"$output")" 0
	assert_equal "$(jq -r .connects <<<"$output")" 2
}

@test "bench: Connection: close answers reconnect without errors" {
	start_py close
	run --separate-stderr bench -t 1 -c 2 --requests 50 "http://127.0.0.1:$PY_PORT/"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 50
	assert_equal "$(jq -r '.errors | .read + .write + .timeout' <<<"$output")" 0
	[ "$(jq -r .connects <<<"$output")" -ge 50 ]
}

@test "bench: a body that runs until the close is a complete response" {
	start_py eof
	run --separate-stderr bench -t 1 -c 2 --requests 40 "http://127.0.0.1:$PY_PORT/"
	assert_success
	assert_equal "$(jq -r .requests <<<"$output")" 40
	assert_equal "$(jq -r '.errors | .read + .write + .timeout' <<<"$output")" 0
	assert_equal "$(jq -r .bytes <<<"$output")" $((40 * 51))
}

@test "bench: --method, --header and --body @FILE are sent as given" {
	head -c 3000 /dev/zero | tr '\0' x >"$BATS_TEST_TMPDIR/body"
	start_py body 3000
	run --separate-stderr bench -t 1 -c 2 --requests 20 -m POST -H 'X-Test: yes' \
		--body "@$BATS_TEST_TMPDIR/body" "http://127.0.0.1:$PY_PORT/"
	assert_success
	assert_equal "$(jq -r '.status["200"]' <<<"$output")" 20
	run --separate-stderr bench -t 1 -c 1 --requests 5 -m POST --body short "http://127.0.0.1:$PY_PORT/"
	assert_equal "$(jq -r '.status["422"]' <<<"$output")" 5
}

@test "bench: --warmup runs first and is not counted" {
	start_serve a
	run --separate-stderr bench -t 1 -c 2 --warmup 500ms -d 1s "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	req=$(jq -r .requests <<<"$output")
	[ "$req" -gt 0 ]
	# the server also answered the warm-up's requests
	[ "$(serve_count "$SERVE_PORT")" -gt "$req" ]
	jq -e '.duration_s >= 1 and .duration_s < 1.5' <<<"$output"
}

@test "bench: stdout is one JSON object with every documented field" {
	start_serve a
	run --separate-stderr bench -t 1 -c 2 -d 500ms "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	assert_equal "$(wc -l <<<"$output")" 1
	jq -e '(.requests|type)=="number" and (.duration_s|type)=="number" and (.rps|type)=="number"
		and (.bytes|type)=="number"
		and (.errors|has("connect") and has("read") and has("write") and has("timeout") and has("status"))
		and (.latency_us|has("min") and has("mean") and has("stdev") and has("p50") and has("p90")
		     and has("p99") and has("p999") and has("p9999") and has("max"))
		and (.percentiles|length > 3) and (.percentiles[-1].percentile == 100)
		and .percentiles[-1].latency_us == .latency_us.max' <<<"$output"
}

@test "bench: wrk's command line works unchanged" {
	start_serve a
	run --separate-stderr bench -t1 -c2 -d1s --latency --timeout 1s -H 'X-A: b' "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	[ "$(jq -r .requests <<<"$output")" -gt 0 ]
}

@test "bench: --interval prints interval lines before the result" {
	start_serve a
	run --separate-stderr bench -t 1 -c 2 -d 2100ms --interval 500ms "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	n=$(jq -r 'select(.event=="interval") | .requests' <<<"$output" | wc -l)
	[ "$n" -ge 3 ] || { echo "$output"; false; }
	assert_equal "$(tail -1 <<<"$output" | jq -r .event)" result
	# the intervals add up to no more than the total
	sum=$(jq -s 'map(select(.event=="interval") | .requests) | add' <<<"$output")
	[ "$sum" -le "$(tail -1 <<<"$output" | jq -r .requests)" ]
}

@test "bench: several URLs, and --targets JSON lines, share the connections round-robin" {
	start_serve a
	a=$SERVE_PORT
	start_serve b
	b=$SERVE_PORT
	run --separate-stderr bench -t 1 -c 4 -d 500ms "http://127.0.0.1:$a/hello" "http://127.0.0.1:$b/hello"
	assert_success
	req=$(jq -r .requests <<<"$output")
	ca=$(serve_count "$a")
	cb=$(serve_count "$b")
	[ "$ca" -gt 0 ]
	[ "$cb" -gt 0 ]
	assert_equal $((ca + cb)) "$req"
	printf '{"url":"http://127.0.0.1:%s/hello"}\n{"addr":"127.0.0.1:%s","name":"x"}\n' "$a" "$b" >"$BATS_TEST_TMPDIR/t"
	run --separate-stderr bash -c "'$BIN/dsys-bench' -t 1 -c 2 --requests 100 --targets - <'$BATS_TEST_TMPDIR/t'"
	assert_success
	jq -e '(.urls | length) == 2 and .requests == 100' <<<"$output"
	assert_equal $(($(serve_count "$a") + $(serve_count "$b"))) $((req + 100))
}

@test "bench: --plot writes an SVG, and plot compares saved results" {
	start_serve a
	run --separate-stderr bench -t 1 -c 2 -d 500ms --plot "$BATS_TEST_TMPDIR/a.svg" "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	echo "$output" >"$BATS_TEST_TMPDIR/a.json"
	grep -q '<svg' "$BATS_TEST_TMPDIR/a.svg"
	grep -q '<polyline' "$BATS_TEST_TMPDIR/a.svg"
	bench -t 1 -c 2 -d 300ms "http://127.0.0.1:$SERVE_PORT/hello" >"$BATS_TEST_TMPDIR/b.json"
	run bench plot "$BATS_TEST_TMPDIR/a.json" "$BATS_TEST_TMPDIR/b.json" -o "$BATS_TEST_TMPDIR/cmp.svg"
	assert_success
	assert_equal "$(grep -c '<polyline' "$BATS_TEST_TMPDIR/cmp.svg")" 2
	python3 -c 'import sys, xml.dom.minidom as m; m.parse(sys.argv[1])' "$BATS_TEST_TMPDIR/cmp.svg"
	run bench plot "$BATS_TEST_TMPDIR/nonexistent.json" -o "$BATS_TEST_TMPDIR/x.svg"
	assert_failure 2
	# -o - is stdout, and a full stdout says so as every program does
	run --separate-stderr bash -c "'$BIN/dsys-bench' plot '$BATS_TEST_TMPDIR/a.json' -o - >/dev/full"
	assert_failure 1
	assert_equal "$stderr" "dsys-bench: write error: No space left on device"
	run --separate-stderr bash -c "'$BIN/dsys-bench' plot '$BATS_TEST_TMPDIR/a.json' -o - | head -c 1 >/dev/null; echo \${PIPESTATUS[0]}"
	assert_equal "$output" 0
	assert_equal "$stderr" ""
}

@test "bench: --find-max reports the highest rate that met --slo" {
	start_serve a
	run --separate-stderr bench -t 1 -c 4 -d 300ms --find-max --slo 'p99<1s' --trials 2 "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	[ "$(jq -r 'select(.event=="trial") | .rate' <<<"$output" | wc -l)" -ge 2 ]
	jq -e 'select(.event=="result") | .max_rate > 0' <<<"$output"
	run --separate-stderr bench -t 1 -c 2 -d 300ms --find-max --slo 'p99<0us' --trials 2 "http://127.0.0.1:$SERVE_PORT/hello"
	assert_failure 1
}

@test "bench: --fail-if exits 1 when a term holds, 0 when none does" {
	start_serve a
	run --separate-stderr bench -t 1 -c 2 -d 300ms --fail-if 'p50>0us' "http://127.0.0.1:$SERVE_PORT/hello"
	assert_failure 1
	[ "$(jq -r .requests <<<"$output")" -gt 0 ]
	run --separate-stderr bench -t 1 -c 2 -d 300ms --fail-if 'p99>10s,errors>0' "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
}

@test "bench: bad flags and bad URLs exit 2 with a message" {
	run bench --no-such-flag http://127.0.0.1:1/
	assert_failure 2
	run bench -c 0 http://127.0.0.1:1/
	assert_failure 2
	run bench -d forever http://127.0.0.1:1/
	assert_failure 2
	run bench --rate 0 http://127.0.0.1:1/
	assert_failure 2
	run bench --fail-if 'p99 about 5ms' http://127.0.0.1:1/
	assert_failure 2
	run bench
	assert_failure 2
	assert_output --partial 'no URL'
	run bench https://127.0.0.1/
	assert_failure 2
	assert_output --partial 'only http://'
	run bench 'http://127.0.0.1:99999/'
	assert_failure 2
	run bench --find-max http://127.0.0.1:1/
	assert_failure 2
}

@test "bench: no connection at all exits 3, and promptly" {
	port=$(free_port)
	run --separate-stderr timeout 5 "$BIN/dsys-bench" -c 4 -d 10s "http://127.0.0.1:$port/"
	assert_failure 3
	[ "$(jq -r .errors.connect <<<"$output")" -ge 4 ]
	[[ "$stderr" == *"cannot connect"* ]]
}

@test "bench: --list-options names every option, and --help shows usage" {
	run bench --list-options
	assert_success
	assert_line -- --rate
	assert_line -- --fail-if
	run bench --help
	assert_success
	assert_output --partial 'usage:'
}

# ---------------------------------------------------------------- issue 15

@test "bench: a full stdout is a write error on stderr and exit 1; a closed pipe stays quiet" {
	start_serve a
	run --separate-stderr bash -c "'$BIN/dsys-bench' -t 1 -c 1 -n 10 http://127.0.0.1:$SERVE_PORT/hello >/dev/full"
	assert_failure 1
	assert_equal "$stderr" "dsys-bench: write error: No space left on device"
	run --separate-stderr bash -c "'$BIN/dsys-bench' -t 1 -c 1 -d 500ms -i 10ms http://127.0.0.1:$SERVE_PORT/hello | head -c 1 >/dev/null; echo \${PIPESTATUS[0]}"
	assert_equal "$output" 0
	assert_equal "$stderr" ""
}

@test "bench: on a terminal the result is a summary for a person, and --json keeps the JSON" {
	start_serve a
	url="http://127.0.0.1:$SERVE_PORT/hello"
	run script -qec "'$BIN/dsys-bench' -t 1 -c 2 -n 200 '$url' 2>/dev/null" /dev/null
	assert_success
	assert_line --partial "$url"
	assert_line --regexp '^  requests +200 in '
	assert_line --regexp '^  errors +0'
	assert_line --regexp '^  status +200: 200'
	assert_line --regexp '^  latency +p50 [0-9.]+(us|ms|s) p90 .* p99 .* p99\.9 .* max '
	# the histogram: eight rows of a latency, a bar and a count, 200 in all
	hist=$(grep -E '^ +[0-9.]+(us|ms|s) +#* +[0-9]+.?$' <<<"$output" | tr -d '\r')
	assert_equal "$(wc -l <<<"$hist")" 8
	assert_equal "$(awk '{ n += $NF } END { print n }' <<<"$hist")" 200
	refute_output --partial '"event"'
	run script -qec "'$BIN/dsys-bench' --json -t 1 -c 2 -n 200 '$url' 2>/dev/null" /dev/null
	assert_success
	jq -e '.event == "result" and .requests == 200' <<<"$(tr -d '\r' <<<"$output")"
	# a pipe gets JSON without asking
	run --separate-stderr bench -t 1 -c 2 -n 20 "$url"
	jq -e '.event == "result"' <<<"$output"
}

@test "bench: SIGINT counts the requests still in flight as errors.interrupted" {
	start_py hang
	for io in uring uv; do
		base=$(py_count)
		DSYS_BENCH_IO=$io "$BIN/dsys-bench" -t 1 -c 3 -d 30s -T 30s "http://127.0.0.1:$PY_PORT/" \
			>"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
		pid=$!
		for ((i = 0; i < 100; i++)); do
			[ "$(py_count)" -ge $((base + 3)) ] && break
			sleep 0.05
		done
		[ "$(py_count)" -ge $((base + 3)) ]   # all three requests are in flight
		kill -INT "$pid"
		wait "$pid"
		run jq -c '[.interrupted, .sent, .requests, .errors.interrupted]' "$BATS_TEST_TMPDIR/out"
		assert_output '[true,3,0,3]'
	done
}

@test "bench: an unwritable --plot path is refused before the load starts" {
	start_py ok
	run --separate-stderr timeout 5 "$BIN/dsys-bench" -c 1 -d 10s --plot /nonexistent/dir/x.svg "http://127.0.0.1:$PY_PORT/"
	assert_failure 2
	[[ "$stderr" == *"cannot write '/nonexistent/dir/x.svg'"* ]]
	[ -z "$output" ]
	assert_equal "$(py_count)" 0
	run --separate-stderr timeout 5 "$BIN/dsys-bench" -c 1 -d 10s --plot "$BATS_TEST_TMPDIR" "http://127.0.0.1:$PY_PORT/"
	assert_failure 2
	assert_equal "$(py_count)" 0
}

@test "bench: --trials without --find-max is refused, as --slo is" {
	run --separate-stderr bench --trials 3 http://127.0.0.1:1/
	assert_failure 2
	[[ "$stderr" == *"--trials"*"--find-max"* ]]
	run --separate-stderr bench --slo 'p99<1s' http://127.0.0.1:1/
	assert_failure 2
}

@test "bench: --find-max trial lines give rps rounded to two decimals, as the result does" {
	start_serve a
	run --separate-stderr bench -t 1 -c 2 -d 200ms --find-max --slo 'p99<10s' --trials 1 "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	# at most two digits after the point, read from the text jq would round
	run grep -c '"event":"trial"' <<<"$output"
	[ "$output" -ge 1 ]
	! grep '"event":"trial"' <<<"$output" | grep -qE '"rps":[0-9]+\.[0-9]{3,}'
}

@test "bench: DSYS_BENCH_IO takes auto, as DSYS_IO does, and refuses other words" {
	start_serve a
	DSYS_BENCH_IO=auto run --separate-stderr bench -t 1 -c 1 -n 5 "http://127.0.0.1:$SERVE_PORT/hello"
	assert_success
	jq -e '.requests == 5' <<<"$output"
	DSYS_BENCH_IO=fast run --separate-stderr bench -t 1 -c 1 -n 5 "http://127.0.0.1:$SERVE_PORT/hello"
	assert_failure 2
	[[ "$stderr" == *"expected auto, uring or uv"* ]]
}

@test "bench: a name that does not resolve gives the same shape of result as a refused connection" {
	port=$(free_port)
	run --separate-stderr timeout 30 "$BIN/dsys-bench" -c 2 -d 2s "http://127.0.0.1:$port/"
	assert_failure 3
	refused=$output
	[[ "$stderr" == "dsys-bench: cannot connect to http://127.0.0.1:$port/: "* ]]
	run --separate-stderr timeout 30 "$BIN/dsys-bench" -c 2 -d 2s "http://nosuchhost.invalid/"
	assert_failure 3
	[[ "$stderr" == "dsys-bench: cannot connect to http://nosuchhost.invalid/: the name 'nosuchhost.invalid' did not resolve"* ]]
	shape='[paths | map(tostring) | join(".")] | sort'
	assert_equal "$(jq -c "$shape" <<<"$output")" "$(jq -c "$shape" <<<"$refused")"
	jq -e '.requests == 0 and .connects == 0 and .errors.connect == 2' <<<"$output"
}

@test "bench: bash completion offers no file names for a value, and files only where a file goes" {
	load helpers_completion
	comp=$BATS_TEST_DIRNAME/../completions/bash/dsys-bench
	cd "$BATS_TEST_TMPDIR" && touch afile
	for opt in --batch-wait --trials -c --duration --max-header --fail-if; do
		run bash_complete "$comp" dsys-bench "$opt" ''
		assert_success
		assert_output ''
	done
	run bash_complete "$comp" dsys-bench --plot af
	assert_output afile
	run bash_complete "$comp" dsys-bench --body @af
	assert_output @afile
	run bash_complete "$comp" dsys-bench --js
	assert_output -- --json
	run bash_complete "$comp" dsys-bench plot --title ''
	assert_output ''
	run bash_complete "$comp" dsys-bench plot -o af
	assert_output afile
}

@test "bench: zsh completion offers options, files where a file goes, and a hint for other values" {
	load helpers_completion
	comp=$BATS_TEST_DIRNAME/../completions/zsh/_dsys-bench
	run zsh_complete "$comp" dsys-bench --
	assert_success
	assert_line -- --json
	assert_line -- --batch-wait
	run zsh_complete "$comp" dsys-bench --batch-wait ''
	assert_output '<message:DURATION>'
	run zsh_complete "$comp" dsys-bench -c ''
	assert_output '<message:N>'
	run zsh_complete "$comp" dsys-bench --plot ''
	assert_output '<files>'
	run zsh_complete "$comp" dsys-bench -m ''
	assert_line GET
	run zsh_complete "$comp" dsys-bench ''
	assert_line plot
	assert_line '<urls>'
	run zsh_complete "$comp" dsys-bench plot --title ''
	assert_output '<message:TEXT>'
	run zsh_complete "$comp" dsys-bench plot ''
	assert_output '<files>'
}
