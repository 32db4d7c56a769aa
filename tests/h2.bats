#!/usr/bin/env bats
# HTTP/2 (h2c with prior knowledge) and gRPC in lib/http/server, through
# dsys-serve and dsys-counter serve: third-party clients (curl, nghttp,
# python3-grpcio) on both socket backends, and our own raw-frame cases
# (tests/h2_raw.py) for what a hostile or broken client sends.

bats_require_minimum_version 1.5.0
load helpers

setup() {
	dsys_setup
	H2RAW="$BATS_TEST_DIRNAME/h2_raw.py"
}

teardown() {
	dsys_teardown
}

# grpc_call PORT PATH HEXREQ [TIMEOUT_S]: a unary call through grpcio with
# raw bytes; prints "OK <hex of the answer>" or "<StatusCode.NAME> <details>".
grpc_call() {
	"$DSYS_PY" - "$@" <<'PY'
import sys, grpc
port, path, req = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 10
ch = grpc.insecure_channel("127.0.0.1:" + port)
call = ch.unary_unary(path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
try:
    print("OK", call(req, timeout=timeout).hex())
except grpc.RpcError as e:
    print(e.code(), e.details())
PY
}

# h2raw PORT CASE: one case of tests/h2_raw.py; its JSON in $output.
h2raw() {
	run --separate-stderr timeout 30 "$DSYS_PY" "$H2RAW" "$@"
	assert_success
}

# big_body BYTES: random bytes in $BATS_TEST_TMPDIR/big.bin, their sha256
# in $want
big_body() {
	head -c "$1" /dev/urandom >"$BATS_TEST_TMPDIR/big.bin"
	want=$(sha256sum <"$BATS_TEST_TMPDIR/big.bin" | cut -d' ' -f1)
}

# serve_big NAME IO: dsys-serve on socket backend IO, GET /big answering
# big.bin
serve_big() {
	start_server "$1" dsys-serve --listen 127.0.0.1:0 --threads 1 --io "$2" \
		--route "GET /big=@$BATS_TEST_TMPDIR/big.bin"
}

@test "h2: curl --http2-prior-knowledge gets /hello over h2c on both socket backends" {
	for io in uring uv; do
		start_server "s$io" dsys-serve --listen 127.0.0.1:0 --threads 1 --io "$io"
		run curl -s --max-time 10 --http2-prior-knowledge -o /dev/null \
			-w '%{http_version} %{http_code}' "http://127.0.0.1:$SERVER_PORT/hello"
		assert_output '2 200'
		run curl -s --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/hello"
		assert_output 'Hello from dsys!'
		# HTTP/1.1 on the same port, unchanged
		run curl -s --max-time 10 --http1.1 -o /dev/null -w '%{http_version} %{http_code}' \
			"http://127.0.0.1:$SERVER_PORT/hello"
		assert_output '1.1 200'
	done
}

@test "h2: a 2 MiB body arrives whole over h2c, also through windows smaller than the body" {
	big_body 2097152
	for io in uring uv; do
		serve_big "b$io" "$io"
		run curl -s --max-time 20 --http2-prior-knowledge -o "$BATS_TEST_TMPDIR/got.$io" \
			-w '%{size_download}' "http://127.0.0.1:$SERVER_PORT/big"
		assert_success
		assert_output 2097152
		run sha256sum <"$BATS_TEST_TMPDIR/got.$io"
		assert_output "$want  -"
		# nghttp: a 1 KiB stream window and a 64 KiB connection window
		run bash -c "nghttp -w 10 -W 16 http://127.0.0.1:$SERVER_PORT/big | sha256sum"
		assert_output "$want  -"
	done
}

@test "h2: a body past the write backlog bound goes on when the socket takes each batch whole" {
	# Every window open and a 16 MiB receive buffer: the client sends
	# nothing after its request, so only the server can carry the answer on
	# past each 1 MiB batch (the uv backend's in-place write leaves no
	# write to end; before the fix it stopped at 1048576 bytes)
	big_body 8388608
	for io in uv uring; do
		serve_big "w$io" "$io"
		h2raw "$SERVER_PORT" wide-open /big
		run jq -r '"\(.bytes) \(.ended) \(.sha256)"' <<<"$output"
		assert_output "8388608 true $want"
	done
}

@test "h2: nghttp sends 100 streams on one connection and every one is answered" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	run bash -c "nghttp -n -s -m 100 http://127.0.0.1:$SERVER_PORT/hello 2>&1 | grep -c ' 200 '"
	assert_output 100
	run metric "$SERVER_PORT" http2_streams_total
	[ "${output%.*}" -ge 100 ]
	run metric "$SERVER_PORT" http2_connections_total
	[ "${output%.*}" -ge 1 ]
}

@test "h2: /metrics and a POST body come over h2c as over HTTP/1.1" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 --route 'POST /echo=ok'
	run curl -s --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
	run curl -s --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/metrics"
	assert_output --partial 'http_requests_total'
	run curl -s --max-time 10 --http2-prior-knowledge -d 'some body' "http://127.0.0.1:$SERVER_PORT/echo"
	assert_output 'ok'
	run curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
		"http://127.0.0.1:$SERVER_PORT/nope"
	assert_output '404'
}

@test "h2: a bad preface is answered as HTTP/1.1, with 400, and the server goes on" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	h2raw "$SERVER_PORT" bad-preface
	run jq -r .reply <<<"$output"
	assert_output 'HTTP/1.1 400 Bad Request'
	run curl -s --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
}

@test "h2: SETTINGS come first, PING is answered with its data, unknown frames are ignored" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	h2raw "$SERVER_PORT" settings-and-ping
	out=$output
	run jq -r .first_type <<<"$out"
	assert_output 4
	run jq -r '.frames[] | select(.type == 6) | "\(.flags) \(.data)"' <<<"$out"
	assert_output "1 $(printf abcdefgh | od -An -tx1 | tr -d ' \n')"
	h2raw "$SERVER_PORT" unknown-frame
	out=$output
	run jq -r '[.frames[] | select(.type == 6 and .flags == 1)] | length' <<<"$out"
	assert_output 1
	run jq -r '[.frames[] | select(.type == 7)] | length' <<<"$out"
	assert_output 0
}

@test "h2: protocol errors close the connection with GOAWAY and the right code" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	# a first frame that is not SETTINGS: PROTOCOL_ERROR (1)
	h2raw "$SERVER_PORT" no-settings-first
	run jq -r '.frames[] | select(.type == 7) | .error' <<<"$output"
	assert_output 1
	# a window over 2^31-1: FLOW_CONTROL_ERROR (3)
	h2raw "$SERVER_PORT" window-overflow
	run jq -r '.frames[] | select(.type == 7) | .error' <<<"$output"
	assert_output 3
	# DATA on stream 0: PROTOCOL_ERROR
	h2raw "$SERVER_PORT" data-on-stream-0
	run jq -r '.frames[] | select(.type == 7) | .error' <<<"$output"
	assert_output 1
	run curl -s --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
}

# h2hostile PORT CASE: tests/h2_raw.py's hostile CASE; prints the first
# GOAWAY or RST_STREAM as "TYPE SID ERROR", and "served" when a stream
# after a stream error was answered
h2hostile() {
	local out
	out=$(timeout 30 "$DSYS_PY" "$H2RAW" "$1" "$2") || return 1
	jq -r '(.first | if . then "\(.type) \(.sid) \(.error)" else "none" end), (if .served then "served" else empty end)' <<<"$out"
}

@test "h2: each connection error gets GOAWAY with the RFC 9113 code, each stream error RST_STREAM and the connection goes on" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	local PROTOCOL=1 FLOW_CONTROL=3 STREAM_CLOSED=5 FRAME_SIZE=6 COMPRESSION=9 CALM=11
	local cases=(
		"window-zero:7 0 $PROTOCOL"
		"window-zero-stream:3 1 $PROTOCOL served"
		"window-overflow-stream:3 1 $FLOW_CONTROL served"
		"continuation-alone:7 0 $PROTOCOL"
		"frame-inside-block:7 0 $PROTOCOL"
		"data-idle:7 0 $PROTOCOL"
		"even-stream:7 0 $PROTOCOL"
		"stream-id-back:7 0 $PROTOCOL"
		"frame-too-big:7 0 $FRAME_SIZE"
		"initial-window-too-big:7 0 $FLOW_CONTROL"
		"max-frame-size-small:7 0 $PROTOCOL"
		"settings-odd-length:7 0 $FRAME_SIZE"
		"push-promise:7 0 $PROTOCOL"
		"ping-short:7 0 $FRAME_SIZE"
		"bad-padding:7 0 $PROTOCOL"
		"continuation-flood:7 0 $CALM"
		"bad-hpack:7 0 $COMPRESSION"
	)
	local c got
	for c in "${cases[@]}"; do
		got=$(h2hostile "$SERVER_PORT" "${c%%:*}" | tr '\n' ' ')
		assert_equal "${c%%:*}:${got% }" "$c"
	done
	run curl -s --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
}

@test "h2: requests reset while a late handler (--delay) holds them are routed and dropped, and the rest are answered" {
	# the handler reads each request after its stream went: the request's
	# bytes must have gone with the exchange, not with the stream (a reused
	# stream's buffer would route the next request's path; valgrind.bats
	# and make check's ASan see the read itself)
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 --delay 200ms --route 'GET /x=X'
	h2raw "$SERVER_PORT" rst-delayed
	out=$output
	assert_equal "$(jq -c .ended <<<"$out")" "$(jq -nc '[range(3; 101; 4)]')"
	assert_equal "$(jq -c .bodies <<<"$out")" '["Hello from dsys!"]'
	assert_equal "$(jq -c .frames <<<"$out")" '[]'
	run curl -s --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/x"
	assert_output X
}

@test "h2: DATA after END_STREAM on a stream still answering is STREAM_CLOSED on that stream" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 --delay 1s
	run h2hostile "$SERVER_PORT" data-half-closed
	assert_output '3 1 5'
}

@test "h2: a SETTINGS_INITIAL_WINDOW_SIZE change mid-stream moves the stream's window: DATA waits at 0, then goes as the window allows" {
	for io in uring uv; do
		start_server "w$io" dsys-serve --listen 127.0.0.1:0 --threads 1 --io "$io"
		h2raw "$SERVER_PORT" window-change
		assert_equal "$(jq -c .before <<<"$output")" '[1]'
		assert_equal "$(jq -c .after_3 <<<"$output")" '[3]'
		assert_equal "$(jq -r .rest <<<"$output")" 'lo from dsys!'
	done
}

@test "h2: frames cut anywhere across reads (a request a byte a write, padded DATA) are put together and answered" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 --route 'POST /echo=ok'
	h2raw "$SERVER_PORT" split
	out=$output
	run jq -r .answered <<<"$out"
	assert_output true
	run jq -r '[.frames[] | select(.type == 7)] | length' <<<"$out"
	assert_output 0
}

# The cache of the last header block (lib/http/server_h2.c, h2_hc_replay):
# blocks built representation by representation (tests/h2_raw.py's
# hpack_ops), all on one connection; static table: 1 :authority, 2 :method
# GET, 4 :path, 6 :scheme http; 62 is the newest entry of the dynamic table.
h2blocks() {
	h2raw "$SERVER_PORT" blocks "$1"
	jq -c .answers <<<"$output"
}

@test "h2: header blocks sent again byte for byte (a never-indexed Huffman :path, indexed fields) are each answered for their own path" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 --route 'GET /a=A' --route 'GET /b=B'
	local a='[["idx",2],["idx",6],["never",4,"/a",true],["noidx",1,"x"]]'
	local b='[["idx",2],["idx",6],["never",4,"/b",true],["noidx",1,"x"]]'
	local hello='[["idx",2],["idx",6],["never",4,"/hello",true],["noidx",1,"x"]]'
	run h2blocks "[$a,$a,$b,$b,$b,$a,$hello,$hello]"
	assert_output '["A","A","B","B","B","A","Hello from dsys!","Hello from dsys!"]'
	# a repeated block is checked as a decoded one is: a bad one is reset each time
	local bad='[["idx",2],["idx",6],["never",4,"/a"],["noidx",1,"x"],["noidx","Bad","1"]]'
	run h2blocks "[$bad,$bad,$a]"
	assert_output '["rst 1","rst 1","A"]'
}

@test "h2: a block that adds to the dynamic table between two identical blocks makes the second see the new entry" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 --route 'GET /a=A' --route 'GET /b=B'
	# 62 is :path /a, then (a literal with incremental indexing) :path /b
	local add_a='[["idx",2],["idx",6],["inc",4,"/a"],["noidx",1,"x"]]'
	local add_b='[["idx",2],["idx",6],["inc",4,"/b"],["noidx",1,"x"]]'
	local e62='[["idx",2],["idx",6],["idx",62],["noidx",1,"x"]]'
	run h2blocks "[$add_a,$e62,$e62,$add_b,$e62,$e62]"
	assert_output '["A","A","A","B","B","B"]'
	# a block that adds an entry, sent twice, adds it twice: 63 is then
	# the second /b (a replay of the first would leave /a there)
	local e63='[["idx",2],["idx",6],["idx",63],["noidx",1,"x"]]'
	run h2blocks "[$add_a,$add_b,$add_b,$e63]"
	assert_output '["A","B","B","B"]'
}

@test "h2: blocks with a dynamic table size update are decoded each time, and answered for what they say" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 --route 'GET /a=A' --route 'GET /b=B'
	local add_a='[["idx",2],["idx",6],["inc",4,"/a"],["noidx",1,"x"]]'
	local add_b='[["idx",2],["idx",6],["inc",4,"/b"],["noidx",1,"x"]]'
	local s62='[["size",4096],["idx",2],["idx",6],["idx",62],["noidx",1,"x"]]'
	local s0='[["size",0],["size",4096],["idx",2],["idx",6],["never",4,"/b"],["noidx",1,"x"]]'
	run h2blocks "[$add_a,$s62,$s62,$add_b,$s62,$s62,$s0,$s0]"
	assert_output '["A","A","A","B","B","B","B","B"]'
	# the size update to 0 emptied the table: 62 is no entry now
	# (COMPRESSION_ERROR ends the connection, the answer to the first too)
	run h2blocks "[$s0,$s0,[[\"idx\",62]]]"
	assert_output '["goaway 9","goaway 9","goaway 9"]'
}

@test "h2: an answer's header block after the client's SETTINGS_HEADER_TABLE_SIZE change opens with a table size update, repeated answers or not" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	h2raw "$SERVER_PORT" table-size-change
	# 0x88 (:status 200, indexed), then 0x20: a size update to 0
	assert_equal "$(jq -c .first_bytes <<<"$output")" '["88","88","88","20"]'
}

@test "h2: answers alternating on one connection each carry their own status, content-type and content-length (the plain answer's cached block)" {
	# /a and /c differ in content-type only, /a and /l in length only,
	# /missing in all three; HEAD has GET's fields.  nghttp sends them all
	# on one connection (a ?N each, as it drops repeated URLs).
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 \
		--route 'GET /a=AAAA' --route 'GET /l=AAAAA' -T text/html --route 'GET /c=CCCC'
	local u="http://127.0.0.1:$SERVER_PORT" urls=() p i=0 fields
	# "[ 0.003] recv (stream_id=13) content-type: text/plain" -> one line a stream
	fields='$3 == "recv" && $4 ~ /^\(stream_id=/ { id = $4; gsub(/[^0-9]/, "", id); f[id] = f[id] " " $6 }
		END { for (k in f) print k f[k] }'
	for p in /a /a /c /a /l /l /a /missing /a /hello /a; do urls+=("$u$p?$((i += 1))"); done
	run --separate-stderr bash -c 'nghttp -v "$@" | awk "$0" | sort -n | cut -d" " -f2-' "$fields" "${urls[@]}"
	assert_success
	assert_output "$(printf '%s\n' '200 text/plain 4' '200 text/plain 4' '200 text/html 4' \
		'200 text/plain 4' '200 text/plain 5' '200 text/plain 5' '200 text/plain 4' \
		'404 application/json 21' '200 text/plain 4' '200 text/plain 16' '200 text/plain 4')"
	run --separate-stderr bash -c 'nghttp -v -H ":method: HEAD" "$@" | awk "$0" | sort -n | cut -d" " -f2-' \
		"$fields" "$u/a?1" "$u/c?2" "$u/a?3" "$u/l?4" "$u/a?5"
	assert_success
	assert_output "$(printf '%s\n' '200 text/plain 4' '200 text/html 4' '200 text/plain 4' \
		'200 text/plain 5' '200 text/plain 4')"
}

@test "h2: plain answers one after another on one connection, HEADERS from the cached block and DATA written with it, each carry their frames and body whole" {
	# the first two are encoded (the first adds to the encoder's table)
	# and their DATA sent by the send pass; from the third, nothing queued
	# before them, the cached block and the body go into c->out in one
	# piece (h2_write_cached_data)
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	h2raw "$SERVER_PORT" one-by-one 4
	run jq -r '.answers[]' <<<"$output"
	assert_output "$(printf '1/4 0/1 Hello from dsys!\n%.0s' 1 2 3 4)"
}

@test "h2: a stream reset by the client is forgotten and the next stream is answered" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	h2raw "$SERVER_PORT" rst-stream
	run jq -r .answered_3 <<<"$output"
	assert_output true
}

@test "h2: more streams than SETTINGS_MAX_CONCURRENT_STREAMS are refused, and a rapid-reset flood ends in GOAWAY" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	h2raw "$SERVER_PORT" too-many-streams
	out=$output
	# the first 128 are taken (streams 1 to 255), stream 257 is refused
	# (RST_STREAM REFUSED_STREAM) and the connection goes on
	run jq -r '.frames[0] | "\(.type) \(.sid) \(.error)"' <<<"$out"
	assert_output '3 257 7'
	h2raw "$SERVER_PORT" rapid-reset
	out=$output
	run jq -r .goaway <<<"$out"
	assert_output true
	run curl -s --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
}

@test "h2: a header block over --max-header-bytes gets 431 on its stream" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	h2raw "$SERVER_PORT" big-header
	# :status 431 as a literal of the static table's :status (index 8)
	run jq -r .status_block <<<"$output"
	assert_output --regexp '^48033433315f'
}

@test "h2: a request that does not end within --body-timeout has its stream reset (CANCEL)" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 --body-timeout 1s --io uv
	h2raw "$SERVER_PORT" incomplete-request
	run jq -r '.frames[] | select(.type == 3) | "\(.sid) \(.error)"' <<<"$output"
	assert_output '1 8'
}

@test "h2: a body over --max-body-bytes gets 413 at once, and a request left open is reset at --body-timeout" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 --max-body-bytes 1k --body-timeout 1s
	h2raw "$SERVER_PORT" big-body-left-open
	out=$output
	# :status 413 as a literal of the static table's :status (index 8)
	run jq -r .status_block <<<"$out"
	assert_output --regexp '^4803343133'
	run jq -r '.frames[] | select(.type == 3) | "\(.sid) \(.error)"' <<<"$out"
	assert_output '1 8'
}

@test "h2: SIGTERM sends GOAWAY (NO_ERROR) to an open h2c connection and the server exits 0" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	"$DSYS_PY" "$H2RAW" "$SERVER_PORT" drain >"$BATS_TEST_TMPDIR/drain.out" 2>&1 3>&- &
	client=$!
	for _ in $(seq 100); do grep -q ready "$BATS_TEST_TMPDIR/drain.out" && break; sleep 0.05; done
	run grep -c ready "$BATS_TEST_TMPDIR/drain.out"
	assert_output 1
	st=0
	stop_server "$SERVER_PID" || st=$?
	DSYS_SERVER_PIDS=()
	[ "$st" -eq 0 ]
	wait "$client"
	run jq -r 'select(.frames) | .frames[] | select(.type == 7) | "\(.last) \(.error)"' "$BATS_TEST_TMPDIR/drain.out"
	assert_output '1 0'
}

@test "grpc: grpc.health.v1.Health/Check answers SERVING on dsys-serve, both backends" {
	for io in uring uv; do
		start_server "g$io" dsys-serve --listen 127.0.0.1:0 --threads 1 --io "$io"
		run grpc_call "$SERVER_PORT" /grpc.health.v1.Health/Check ''
		assert_output 'OK 0801'
	done
}

@test "grpc: Health/Check on dsys-counter serve answers SERVING too" {
	start_server c dsys-counter serve --listen 127.0.0.1:0 --threads 1
	run grpc_call "$SERVER_PORT" /grpc.health.v1.Health/Check ''
	assert_output 'OK 0801'
}

@test "grpc: a named service is NOT_FOUND, an unknown method UNIMPLEMENTED, a bad message INVALID_ARGUMENT" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	# HealthCheckRequest{service: "foo"}
	run grpc_call "$SERVER_PORT" /grpc.health.v1.Health/Check 0a03666f6f
	assert_output 'StatusCode.NOT_FOUND unknown service'
	run grpc_call "$SERVER_PORT" /no.such.Service/Method ''
	assert_output --regexp '^StatusCode.UNIMPLEMENTED'
	# field 1 as a string whose length runs past the end
	run grpc_call "$SERVER_PORT" /grpc.health.v1.Health/Check 0a09
	assert_output --regexp '^StatusCode.INVALID_ARGUMENT'
}

@test "grpc: grpc-timeout ends a call the handler answers too late with DEADLINE_EXCEEDED, from the server" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1 --delay 3s
	start=$(date +%s%N)
	# nghttp prints the trailers it receives; the server's, not a client-side deadline
	run bash -c "printf '\0\0\0\0\0' >'$BATS_TEST_TMPDIR/empty.msg'; nghttp -v -t 10 -H 'content-type: application/grpc' -H 'te: trailers' -H 'grpc-timeout: 300m' -d '$BATS_TEST_TMPDIR/empty.msg' http://127.0.0.1:$SERVER_PORT/dsys.Slow/Call"
	end=$(date +%s%N)
	assert_output --partial 'grpc-status: 4'
	[ $(((end - start) / 1000000)) -lt 2500 ]
	# the late answer is dropped, and the server goes on
	sleep 3
	run grpc_call "$SERVER_PORT" /grpc.health.v1.Health/Check ''
	assert_output 'OK 0801'
}

@test "grpc: UserService/GetUser answers a user, NOT_FOUND, and INVALID_ARGUMENT for a bad id or message" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	# UserRequest{user_id: "7"} -> UserResponse{name: "user-7", age: 25}
	run grpc_call "$SERVER_PORT" /UserService/GetUser 0a0137
	assert_output "OK 0a06$(printf user-7 | od -An -tx1 | tr -d ' \n')1019"
	run grpc_call "$SERVER_PORT" /UserService/GetUser 0a0130
	assert_output 'StatusCode.NOT_FOUND no such user'
	run grpc_call "$SERVER_PORT" /UserService/GetUser 0a03616263
	assert_output 'StatusCode.INVALID_ARGUMENT user_id is not a number'
	run grpc_call "$SERVER_PORT" /UserService/GetUser 0aff
	assert_output 'StatusCode.INVALID_ARGUMENT malformed UserRequest'
	# --no-default-routes leaves it out: UNIMPLEMENTED
	start_server n dsys-serve --listen 127.0.0.1:0 --threads 1 --no-default-routes
	run grpc_call "$SERVER_PORT" /UserService/GetUser 0a0137
	assert_output --regexp '^StatusCode.UNIMPLEMENTED'
}

@test "grpc: /metrics counts calls by service, method and grpc-status, unknown methods under one label" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	run grpc_call "$SERVER_PORT" /UserService/GetUser 0a0137
	assert_output --partial OK
	run grpc_call "$SERVER_PORT" /UserService/GetUser 0a0137
	run grpc_call "$SERVER_PORT" /UserService/GetUser 0a0130
	run grpc_call "$SERVER_PORT" /grpc.health.v1.Health/Check ''
	for i in 1 2 3; do run grpc_call "$SERVER_PORT" "/scan.Probe$i/Method" ''; done
	run curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/metrics"
	assert_success
	assert_line 'grpc_server_handled_total{grpc_service="UserService",grpc_method="GetUser",grpc_code="OK"} 2'
	assert_line 'grpc_server_handled_total{grpc_service="UserService",grpc_method="GetUser",grpc_code="NotFound"} 1'
	assert_line 'grpc_server_handled_total{grpc_service="grpc.health.v1.Health",grpc_method="Check",grpc_code="OK"} 1'
	assert_line 'grpc_server_handled_total{grpc_service="unknown",grpc_method="unknown",grpc_code="Unimplemented"} 3'
	refute_output --partial 'scan.Probe'
	# promtool accepts the exposition
	run bash -c "curl -s --max-time 10 http://127.0.0.1:$SERVER_PORT/metrics | promtool check metrics"
	refute_output --partial 'error'
}

# grpc_watch PORT HEXREQ: stream Health/Watch; prints each message in hex,
# then "END OK" or "END <code> <details>".
grpc_watch() {
	"$DSYS_PY" - "$@" <<'PY'
import sys, grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
w = ch.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=lambda b: b, response_deserializer=lambda b: b)
try:
    for m in w(bytes.fromhex(sys.argv[2]), timeout=20):
        print(m.hex(), flush=True)
    print("END OK", flush=True)
except grpc.RpcError as e:
    print("END", e.code(), e.details(), flush=True)
PY
}

@test "grpc: Health/Watch streams SERVING, then NOT_SERVING when the server drains, and ends OK" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	grpc_watch "$SERVER_PORT" '' >"$BATS_TEST_TMPDIR/watch.out" 2>&1 3>&- &
	client=$!
	for _ in $(seq 100); do grep -q 0801 "$BATS_TEST_TMPDIR/watch.out" && break; sleep 0.05; done
	run cat "$BATS_TEST_TMPDIR/watch.out"
	assert_output 0801
	st=0
	stop_server "$SERVER_PID" || st=$?
	DSYS_SERVER_PIDS=()
	[ "$st" -eq 0 ]
	wait "$client"
	run cat "$BATS_TEST_TMPDIR/watch.out"
	assert_output "$(printf '0801\n0802\nEND OK')"
}

@test "grpc: Health/Watch of an unknown service says SERVICE_UNKNOWN and keeps watching" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	run timeout 3 "$DSYS_PY" -c '
import sys, grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
w = ch.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=lambda b: b, response_deserializer=lambda b: b)
it = w(bytes.fromhex("0a03666f6f"), timeout=1)
print(next(it).hex(), flush=True)
try:
    next(it)
except grpc.RpcError as e:
    print(e.code())' "$SERVER_PORT"
	assert_output "$(printf '0803\nStatusCode.DEADLINE_EXCEEDED')"
}

@test "grpc: UserService/ListUsers streams 10000 messages through the client's window, and a cancelled call ends cleanly" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	run "$DSYS_PY" - "$SERVER_PORT" <<'PY'
import sys, grpc
ch = grpc.insecure_channel("127.0.0.1:" + sys.argv[1])
w = ch.unary_stream("/UserService/ListUsers", request_serializer=lambda b: b, response_deserializer=lambda b: b)
# UserListRequest{first: 5, count: 3}
print(" ".join(m.hex() for m in w(bytes.fromhex("08051003"), timeout=10)))
# {first: 1, count: 10000}: about 178 KB, over the 64 KiB initial window
ms = list(w(bytes.fromhex("0801109027"[:6] + "904e"), timeout=30))
print(len(ms), ms[-1].hex())
# count over the limit: OUT_OF_RANGE, before any message
try:
    list(w(bytes.fromhex("080110a09c01"), timeout=10))
except grpc.RpcError as e:
    print(e.code())
# cancel after the first message
it = w(bytes.fromhex("0801109027"[:6] + "904e"), timeout=30)
next(it)
it.cancel()
print("cancelled")
PY
	assert_line --index 0 "0a06757365722d351017 0a06757365722d361018 0a06757365722d371019"
	assert_line --index 1 "10000 0a0a757365722d3130303030103a"
	assert_line --index 2 "StatusCode.OUT_OF_RANGE"
	assert_line --index 3 "cancelled"
	# and the server goes on
	run grpc_call "$SERVER_PORT" /grpc.health.v1.Health/Check ''
	assert_output 'OK 0801'
}

@test "h2: a streamed answer over HTTP/1.1 arrives chunked, each message as it is sent" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	# one framed UserListRequest{first: 5, count: 3}
	printf '\0\0\0\0\004\010\005\020\003' >"$BATS_TEST_TMPDIR/req.bin"
	run bash -c "curl -s --http1.1 -D - -o '$BATS_TEST_TMPDIR/body.bin' -H 'content-type: application/grpc' --data-binary @'$BATS_TEST_TMPDIR/req.bin' http://127.0.0.1:$SERVER_PORT/UserService/ListUsers | tr -d '\r'"
	assert_line 'Transfer-Encoding: chunked'
	assert_line 'Content-Type: application/grpc'
	refute_line --partial 'Content-Length'
	run bash -c "od -An -tx1 '$BATS_TEST_TMPDIR/body.bin' | tr -d ' \n'"
	assert_output "000000000a0a06757365722d351017000000000a0a06757365722d361018000000000a0a06757365722d371019"
}

# h2fields PORT SPEC: tests/h2_raw.py's fields case; $output its JSON
h2fields() {
	echo "case: $2"
	h2raw "$1" fields "$2"
}

@test "h2: malformed requests are reset PROTOCOL_ERROR and the connection goes on serving" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	local m='[":method","GET"]' sc='[":scheme","http"]' p='[":path","/hello"]' a='[":authority","x"]'
	local cases=(
		"{\"headers\":[$m,$sc,$p]}"                                   # no :authority nor host
		"{\"headers\":[$m,$p,$a]}"                                    # no :scheme
		"{\"headers\":[$sc,$p,$a]}"                                   # no :method
		"{\"headers\":[$m,$sc,$a]}"                                   # no :path
		"{\"headers\":[$m,$sc,$p,$a,[\":foo\",\"x\"]]}"               # unknown pseudo-header
		"{\"headers\":[$m,$sc,$p,$a,[\":status\",\"200\"]]}"          # a response's
		"{\"headers\":[$m,$sc,$p,$a,$m]}"                             # duplicated
		"{\"headers\":[$m,$sc,$p,[\"host\",\"x\"],$a]}"               # after a regular field
		"{\"headers\":[$m,$sc,[\":path\",\"\"],$a]}"                  # empty
		"{\"headers\":[$m,$sc,[\":path\",\"hello\"],$a]}"             # not origin-form
		"{\"headers\":[$m,$sc,[\":path\",\"/a b\"],$a]}"              # a space in :path
		"{\"headers\":[[\":method\",\"G(T\"],$sc,$p,$a]}"             # not a token
		"{\"headers\":[$m,[\":scheme\",\"1http\"],$p,$a]}"            # not a scheme
		"{\"headers\":[$m,$sc,$p,[\":authority\",\"a/b\"]]}"          # a path in :authority
		"{\"headers\":[$m,$sc,$p,[\":authority\",\"http://\"]]}"      # a scheme and nothing
		"{\"headers\":[$m,$sc,$p,[\":authority\",\"http://a/b\"]]}"   # ... and a path
		"{\"headers\":[$m,$sc,$p,[\":authority\",\"ftp://a\"]]}"      # another scheme
		"{\"headers\":[$m,$sc,$p,[\":authority\",\"a b\"]]}"
		"{\"headers\":[$m,$sc,$p,[\"host\",\"a/b\"]]}"
		"{\"headers\":[$m,$sc,$p,[\"host\",\"a\"],[\"host\",\"b\"]]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"X-Up\",\"1\"]]}"               # uppercase name
		"{\"headers\":[$m,$sc,$p,$a,[\"x@y\",\"1\"]]}"                # not a token
		"{\"headers\":[$m,$sc,$p,$a,[\"x-v\",\"a\\r\\nb\"]]}"         # CR LF in a value
		"{\"headers\":[$m,$sc,$p,$a,[\"x-v\",\" a\"]]}"               # leading whitespace
		"{\"headers\":[$m,$sc,$p,$a,[\"connection\",\"close\"]]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"keep-alive\",\"5\"]]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"proxy-connection\",\"x\"]]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"transfer-encoding\",\"chunked\"]]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"upgrade\",\"h2c\"]]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"te\",\"gzip\"]]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"content-length\",\"x1\"]]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"content-length\",\"1\"],[\"content-length\",\"1\"]],\"data\":[\"a\"]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"content-length\",\"3\"]],\"data\":[\"ab\"]}"         # short
		"{\"headers\":[$m,$sc,$p,$a,[\"content-length\",\"1\"]],\"data\":[\"ab\"]}"         # long
		"{\"headers\":[$m,$sc,$p,$a,[\"content-length\",\"2\"]]}"                           # none
		"{\"headers\":[$m,$sc,$p,$a],\"data\":[\"ab\"],\"trailers\":[[\":path\",\"/\"]]}"   # pseudo in trailers
		"{\"headers\":[$m,$sc,$p,$a],\"data\":[\"ab\"],\"trailers\":[[\"X-T\",\"1\"]]}"
		"{\"headers\":[$m,$sc,$p,$a],\"data\":[\"ab\"],\"trailers\":[[\"x-t\",\"1\"]],\"trailers_end\":false}"
		"{\"headers\":[[\":method\",\"CONNECT\"],$sc,$a]}"              # CONNECT with :scheme
		"{\"headers\":[[\":method\",\"CONNECT\"]]}"                     # ... without :authority
	)
	local c
	for c in "${cases[@]}"; do
		h2fields "$SERVER_PORT" "$c"
		assert_equal "$(jq -r .stream1 <<<"$output")" "rst 1"
		assert_equal "$(jq -r .stream3 <<<"$output")" true
		assert_equal "$(jq -r .goaway <<<"$output")" false
	done
}

@test "h2: an :authority with an http:// or https:// prefix (grpc-go dialing a URL) is served, as are host, te: trailers, content-length and trailers" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	local m='[":method","GET"]' sc='[":scheme","http"]' p='[":path","/hello"]' a='[":authority","x"]'
	local cases=(
		"{\"headers\":[$m,$sc,$p,[\":authority\",\"http://127.0.0.1:2379\"]]}"
		"{\"headers\":[$m,$sc,$p,[\":authority\",\"HTTPS://[::1]:443\"]]}"
		"{\"headers\":[$m,$sc,$p,[\":authority\",\"u@x:1\"]]}"
		"{\"headers\":[$m,$sc,$p,[\"host\",\"x:80\"]]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"te\",\"Trailers\"],[\"x-v\",\"a\\tb\"]]}"
		"{\"headers\":[$m,$sc,$p,$a,[\"content-length\",\"2\"]],\"data\":[\"a\",\"b\"]}"
		"{\"headers\":[$m,$sc,$p,$a],\"data\":[\"ab\"],\"trailers\":[[\"x-t\",\"1\"]]}"
		"{\"headers\":[[\":method\",\"OPTIONS\"],$sc,[\":path\",\"*\"],$a]}"
	)
	local c
	for c in "${cases[@]}"; do
		h2fields "$SERVER_PORT" "$c"
		run jq -r .stream1 <<<"$output"
		assert_output --regexp '^status '
		refute_output --partial rst
	done
	# the third-party way: grpcio told to send the authority grpc-go sends
	run "$DSYS_PY" - "$SERVER_PORT" <<'PY'
import sys, grpc
port = sys.argv[1]
ch = grpc.insecure_channel("127.0.0.1:" + port,
                           options=[("grpc.default_authority", "http://127.0.0.1:" + port)])
call = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                      response_deserializer=lambda b: b)
try:
    print("OK", call(b"", timeout=10).hex())
except grpc.RpcError as e:
    print(e.code(), e.details())
PY
	assert_output 'OK 0801'
}

@test "h2: a :path with a query routes by the part before '?', decoded or replayed" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	# one connection, the same block three times: the first is decoded,
	# the others replayed from the connection's cache (h2_hc_replay)
	run bash -c "nghttp -n -s -m 3 'http://127.0.0.1:$SERVER_PORT/hello?a=b?c' 2>&1 | grep -c ' 200 '"
	assert_output 3
	run curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_version} %{http_code}' \
		"http://127.0.0.1:$SERVER_PORT/hello?"
	assert_output '2 200'
	run curl -s --max-time 10 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
		"http://127.0.0.1:$SERVER_PORT/nope?hello"
	assert_output '404'
}

@test "h2: 300 streams on one connection, past the 128 open at once, are each answered: a stream taken again from the spares starts clean and every one is freed, with and without --delay" {
	# h2_stream_new sets a spare's fields one by one; an answer given
	# inside the handler is freed at the frame's end, one given later
	# through the send pass: a field left from the last request, or a
	# stream left behind, would hold one of the 128 places until the
	# rest are refused
	for delay in 0 20ms; do
		start_server "d$delay" dsys-serve --listen 127.0.0.1:0 --threads 1 --delay "$delay"
		run bash -c "nghttp -n -s -m 300 http://127.0.0.1:$SERVER_PORT/hello 2>&1 | grep -c ' 200 '"
		assert_output 300
		run bash -c "nghttp -n -s -m 300 'http://127.0.0.1:$SERVER_PORT/hello?x' 2>&1 | grep -c ' 200 '"
		assert_output 300
	done
}

@test "h2: a request's latency in /metrics runs from its own pass (one clock reading per pass): two requests 1.5 s apart both take under 1 s" {
	start_server s dsys-serve --listen 127.0.0.1:0 --threads 1
	run curl -s --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
	sleep 1.5
	run curl -s --max-time 10 --http2-prior-knowledge "http://127.0.0.1:$SERVER_PORT/hello"
	assert_output 'Hello from dsys!'
	# both figures from one /metrics: each fetch is a request counted too
	curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/metrics" >"$BATS_TEST_TMPDIR/m.txt"
	run awk '$1 == "http_request_duration_seconds_count" { n = $2 }
		$1 == "http_request_duration_seconds_bucket{le=\"1\"}" { u = $2 }
		END { print n, u }' "$BATS_TEST_TMPDIR/m.txt"
	assert_output '2 2'
}
