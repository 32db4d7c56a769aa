#!/usr/bin/env bats
# GENERATED from tests/conformance/cases.txt by tests/conformance/gen.py:
# edit the table, then run `python3 tests/conformance/gen.py`.
#
# The raw-socket conformance suite of dsys-serve, grouped as RFC 9112 groups
# its rules.  Each test is one case: exact request bytes (possibly in several
# writes), the statuses expected in order, and whether the server must close
# the connection afterwards; tests/conformance/send.py plays it and prints
# the transcript when it does not match.  One server serves the whole file.

setup_file() {
	local bin=${DSYS_BIN:-$BATS_TEST_DIRNAME/../build/bin}
	local dir=$BATS_FILE_TMPDIR
	CONF_PY=/usr/bin/python3
	[ -x "$CONF_PY" ] || CONF_PY=python3
	export CONF_PY
	"$bin/dsys-serve" --listen 127.0.0.1:0 --max-uri-bytes 1024 \
		--max-header-bytes 4096 --max-body-bytes 4096 --header-timeout 1s \
		--route 'POST /echo=posted' >"$dir/serve.out" 2>"$dir/serve.err" 3>&- &
	echo $! >"$dir/serve.pid"
	local i port=
	for ((i = 0; i < 200; i++)); do
		port=$(sed -n 's/.*"event":"ready".*"listen":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$dir/serve.out")
		[ -n "$port" ] && break
		kill -0 "$(cat "$dir/serve.pid")" 2>/dev/null || break
		sleep 0.05
	done
	if [ -z "$port" ]; then
		echo "dsys-serve did not print its ready line:" >&2
		cat "$dir/serve.out" "$dir/serve.err" >&2
		return 1
	fi
	export CONF_PORT=$port
}

teardown_file() {
	local pid
	pid=$(cat "$BATS_FILE_TMPDIR/serve.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
}

# conf: play the case on stdin against the server; send.py prints what
# was expected, what happened and the transcript when they differ.
conf() {
	"$CONF_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$CONF_PORT"
}

@test "conformance: the generated tests match tests/conformance/cases.txt" {
	"$CONF_PY" "$BATS_TEST_DIRNAME/conformance/gen.py" --check
}

@test "conformance: line endings: a request whose lines all end in CRLF is answered and the connection stays open" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
body 1 Hello from dsys!
header 1 content-length: 16
CASE
}

@test "conformance: line endings: a bare LF ending the request line is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: line endings: a bare LF ending a field line is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: line endings: a bare LF as the empty line that ends the head is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\n
expect 400 close
CASE
}

@test "conformance: line endings: a head whose every line ends in a bare LF is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\nHost: a\n\n
expect 400 close
CASE
}

@test "conformance: line endings: a bare CR ending the request line is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\rHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: line endings: a bare CR inside a field value is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n
expect 400 close
CASE
}

@test "conformance: line endings: a bare CR inside the request target is a 400 and a close" {
	conf <<'CASE'
send GET /hel\rlo HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: line endings: a bare CR before the empty line's CRLF is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\r\n
expect 400 close
CASE
}

@test "conformance: line endings: a line ending in LF CR instead of CR LF is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\n\rHost: a\n\r\n\r
expect 400 close
CASE
}

@test "conformance: line endings: an empty line before the request line is a 400 and a close (the strict choice)" {
	conf <<'CASE'
send \r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: line endings: a bare LF before the request line is a 400 and a close" {
	conf <<'CASE'
send \nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: line endings: an extra CRLF after a complete request is a 400 for the next request and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 400 close
CASE
}

@test "conformance: line endings: a head split between a CR and its LF is answered as if it came whole" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r
send \nHost: a\r\n\r\n
expect 200 open
CASE
}

@test "conformance: line endings: a head split inside its final CRLF CRLF is answered as if it came whole" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r
send \n
expect 200 open
CASE
}

@test "conformance: line endings: a request sent one byte per write is answered" {
	conf <<'CASE'
pause 5
trickle GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
CASE
}

@test "conformance: line endings: CR and LF bytes inside a Content-Length body are data, not line endings" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\n\r\r\n
expect 200 open
body 1 posted
CASE
}

@test "conformance: line endings: an error answer says Connection: close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\nHost: a\r\n\r\n
expect 400 close
header 1 connection: close
CASE
}

@test "conformance: request line: a request line with two spaces after the method is a 400 and a close" {
	conf <<'CASE'
send GET  /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a request line with two spaces before the version is a 400 and a close" {
	conf <<'CASE'
send GET /hello  HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a tab between method and target is a 400 and a close" {
	conf <<'CASE'
send GET\t/hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a space after the version is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\x20\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a space before the method is a 400 and a close" {
	conf <<'CASE'
send \x20GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a request line without a version (HTTP/0.9) is a 400 and a close" {
	conf <<'CASE'
send GET /hello\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a request line of the method alone is a 400 and a close" {
	conf <<'CASE'
send GET\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a request line without a target is a 400 and a close" {
	conf <<'CASE'
send GET HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a lowercase protocol name is a 400 and a close" {
	conf <<'CASE'
send GET /hello http/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a version with two minor digits is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.10\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a version without a minor digit is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a version without its dot is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/11\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a version with trailing junk is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1x\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a target with a space inside is a 400 and a close" {
	conf <<'CASE'
send GET /hel lo HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: HTTP/2.0 in a request line is a 505 and a close" {
	conf <<'CASE'
send GET /hello HTTP/2.0\r\nHost: a\r\n\r\n
expect 505 close
CASE
}

@test "conformance: request line: HTTP/0.9 written out as a version is a 505 and a close" {
	conf <<'CASE'
send GET /hello HTTP/0.9\r\nHost: a\r\n\r\n
expect 505 close
CASE
}

@test "conformance: request line: HTTP/3.1 is a 505 and a close" {
	conf <<'CASE'
send GET /hello HTTP/3.1\r\nHost: a\r\n\r\n
expect 505 close
CASE
}

@test "conformance: request line: HTTP/1.2 is answered as HTTP/1.1" {
	conf <<'CASE'
send GET /hello HTTP/1.2\r\nHost: a\r\n\r\n
expect 200 open
body 1 Hello from dsys!
CASE
}

@test "conformance: request line: a method with a character that is not a token character is a 400 and a close" {
	conf <<'CASE'
send GE(T /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a method with a NUL is a 400 and a close" {
	conf <<'CASE'
send GE\0T /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a NUL in the target is a 400 and a close" {
	conf <<'CASE'
send GET /hel\0lo HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a DEL in the target is a 400 and a close" {
	conf <<'CASE'
send GET /hel\x7flo HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a raw byte above 0x7f in the target is a 400 and a close" {
	conf <<'CASE'
send GET /hel\xfflo HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a fragment in the target is a 400 and a close" {
	conf <<'CASE'
send GET /hello#top HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a target that is neither origin-form nor absolute-form is a 400 and a close" {
	conf <<'CASE'
send GET hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: request line: a query string does not change the route" {
	conf <<'CASE'
send GET /hello?name=x&y=%20 HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
body 1 Hello from dsys!
CASE
}

@test "conformance: request line: an empty query string does not change the route" {
	conf <<'CASE'
send GET /hello? HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
body 1 Hello from dsys!
CASE
}

@test "conformance: request line: an absolute-form target is routed by its path" {
	conf <<'CASE'
send GET http://a/hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
body 1 Hello from dsys!
CASE
}

@test "conformance: request line: an unknown path is a 404 with a JSON body and the connection stays open" {
	conf <<'CASE'
send GET /nope HTTP/1.1\r\nHost: a\r\n\r\n
expect 404 open
header 1 content-type: ~json
CASE
}

@test "conformance: request line: a path with a trailing slash is another path" {
	conf <<'CASE'
send GET /hello/ HTTP/1.1\r\nHost: a\r\n\r\n
expect 404 open
CASE
}

@test "conformance: request line: a method the route does not have is a 405 with Allow and the connection stays open" {
	conf <<'CASE'
send POST /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n
expect 405 open
header 1 allow: ~GET
CASE
}

@test "conformance: request line: a method on a POST-only route is a 405 whose Allow names POST" {
	conf <<'CASE'
send DELETE /echo HTTP/1.1\r\nHost: a\r\n\r\n
expect 405 open
header 1 allow: ~POST
CASE
}

@test "conformance: request line: methods are case-sensitive: get is not GET" {
	conf <<'CASE'
send get /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 405 open
header 1 allow: ~GET
CASE
}

@test "conformance: request line: an unknown method that is a valid token is a 405 with Allow" {
	conf <<'CASE'
send BREW /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 405 open
header 1 allow
CASE
}

@test "conformance: request line: a request line that is only a CRLF after a valid request is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n\r\n
expect 200 400 close
CASE
}

@test "conformance: request line: a request line of garbage bytes is a 400 and a close" {
	conf <<'CASE'
send \x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Host: an HTTP/1.1 request without Host is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Host: an HTTP/1.1 request with two Host fields is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Host: an HTTP/1.1 request with two equal Host fields is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Host: a Host field whose value is a list is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a, b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Host: a Host value with a space inside is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Host: a Host value with a slash is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a/b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Host: an empty Host value is accepted" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost:\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Host: a Host value with a port is accepted" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: example.com:8080\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Host: an IPv6 literal Host is accepted" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Host: the Host field name is matched case-insensitively" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nhOsT: a\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Host: an HTTP/1.0 request without Host is answered" {
	conf <<'CASE'
send GET /hello HTTP/1.0\r\n\r\n
expect 200 close
body 1 Hello from dsys!
CASE
}

@test "conformance: Host: a Host field hidden by a space before its colon is a 400, not a missing Host" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost : a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Host: a Host value with surrounding whitespace is accepted" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: \t a \t\r\n\r\n
expect 200 open
CASE
}

@test "conformance: field syntax: a space between a field name and its colon is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a tab between a field name and its colon is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: an obs-fold continuation line starting with a space is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: an obs-fold continuation line starting with a tab is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: whitespace before the first field line is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\n Host: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a field line of whitespace only is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n \r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a field line without a colon is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a field line with an empty name is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a field name with a parenthesis is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a field name with a space inside is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a field name with a NUL is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX\0A: b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a field name with a UTF-8 letter is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-\xc3\xa4: b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a NUL in a field value is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a control character 0x01 in a field value is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a DEL in a field value is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a vertical tab in a field value is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\x0bc\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a NUL in the Host value is a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\0b\r\n\r\n
expect 400 close
CASE
}

@test "conformance: field syntax: a tab inside a field value is accepted" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\tc\r\n\r\n
expect 200 open
CASE
}

@test "conformance: field syntax: obs-text bytes above 0x7f in a field value are accepted" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9 \xc3\xa4\r\n\r\n
expect 200 open
CASE
}

@test "conformance: field syntax: an empty field value is accepted" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A:\r\n\r\n
expect 200 open
CASE
}

@test "conformance: field syntax: a field value without a space after the colon is accepted" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A:b\r\n\r\n
expect 200 open
CASE
}

@test "conformance: field syntax: a colon inside a field value is part of the value" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b:c: d\r\n\r\n
expect 200 open
CASE
}

@test "conformance: field syntax: every token character is accepted in a field name" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: b\r\n\r\n
expect 200 open
CASE
}

@test "conformance: field syntax: a repeated unknown field is accepted" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-A: 2\r\nx-a: 3\r\n\r\n
expect 200 open
CASE
}

@test "conformance: field syntax: a bad field line after a good request in the same write ends the connection after the good answer" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n
expect 200 400 close
CASE
}

@test "conformance: Content-Length: a POST with a Content-Length body is answered and the connection stays open" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello
expect 200 open
body 1 posted
CASE
}

@test "conformance: Content-Length: a Content-Length of zero is an empty body" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Content-Length: a POST with neither Content-Length nor Transfer-Encoding has an empty body" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 200 open
body 2 Hello from dsys!
CASE
}

@test "conformance: Content-Length: a Content-Length with leading zeros is a decimal number" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nhello
expect 200 open
CASE
}

@test "conformance: Content-Length: a Content-Length with trailing whitespace is accepted" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5 \t\r\n\r\nhello
expect 200 open
CASE
}

@test "conformance: Content-Length: a negative Content-Length is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nhello
expect 400 close
CASE
}

@test "conformance: Content-Length: a Content-Length with a plus sign is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello
expect 400 close
CASE
}

@test "conformance: Content-Length: a hexadecimal Content-Length is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello
expect 400 close
CASE
}

@test "conformance: Content-Length: a Content-Length with a space between digits is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\nhello
expect 400 close
CASE
}

@test "conformance: Content-Length: an empty Content-Length is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\nhello
expect 400 close
CASE
}

@test "conformance: Content-Length: a Content-Length that is not a number is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: five\r\n\r\nhello
expect 400 close
CASE
}

@test "conformance: Content-Length: a Content-Length in exponent notation is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5e0\r\n\r\nhello
expect 400 close
CASE
}

@test "conformance: Content-Length: a Content-Length past 64 bits is refused and the connection closed" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551621\r\n\r\nhello
expect 400|413 close
CASE
}

@test "conformance: Content-Length: two equal Content-Length fields are one" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello
expect 200 open
CASE
}

@test "conformance: Content-Length: a Content-Length list of equal values is one value" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello
expect 200 open
CASE
}

@test "conformance: Content-Length: two differing Content-Length fields are a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!
expect 400 close
CASE
}

@test "conformance: Content-Length: a Content-Length list of differing values is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!
expect 400 close
CASE
}

@test "conformance: Content-Length: an empty second Content-Length field is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length:\r\n\r\nhello
expect 400 close
CASE
}

@test "conformance: Content-Length: a Content-Length list with an empty member is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\nhello
expect 400 close
CASE
}

@test "conformance: Content-Length: a body on a GET is read and skipped, and the next request is answered" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /health HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 200 open
body 1 Hello from dsys!
header 2 content-type: ~json
CASE
}

@test "conformance: Content-Length: bytes after a Content-Length body are the next request, and garbage there is a 400" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nhello\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 400 close
CASE
}

@test "conformance: Content-Length: a body that arrives in pieces is read whole" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhel
send lo wo
send rld
expect 200 open
CASE
}

@test "conformance: Content-Length: a Content-Length body on an HTTP/1.0 request is read, and the connection closes" {
	conf <<'CASE'
send POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello
expect 200 close
CASE
}

@test "conformance: Content-Length: the Content-Length field name is matched case-insensitively" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 5\r\n\r\nhelloGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunked body of one chunk is answered and the connection stays open" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n
expect 200 open
body 1 posted
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunked body of several chunks is answered" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: an empty chunked body is the last chunk alone" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: chunk sizes in upper- and lowercase hex are read alike" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunk size with leading zeros is accepted" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n000\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension with a value is ignored" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension without a value is ignored" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\r\nhello\r\n0;last\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension with a quoted value is ignored" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a="b; c"\r\nhello\r\n0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: trailer fields after the last chunk are read and the next request answered" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunked body split at every framing boundary is read whole" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5
send \r
send \nhel
send lo\r
send \n0\r\n
send \r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunked body sent one byte per write is read whole" {
	conf <<'CASE'
pause 5
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n
trickle 3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: the Transfer-Encoding value is matched case-insensitively" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n5\r\nhello\r\n0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: whitespace around the Transfer-Encoding value is accepted" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\t chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunked GET is read and the next request answered" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 200 open
CASE
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding gzip is a 501 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n
expect 501 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding gzip, chunked is a 501 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n
expect 501 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding identity is a 501 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n
expect 501 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding xchunked is a 501 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n
expect 501 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding in an HTTP/1.0 request is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunk size that is not hex is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\ng\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: an empty chunk-size line is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a negative chunk size is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunk size with a 0x prefix is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a space before the chunk size is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\x205\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunk size of 17 hex digits is refused and the connection closed" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n
expect 400|413 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a chunk-size line ending in a bare LF is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: chunk data ending in a bare LF is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: chunk data ending in a bare CR is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: chunk data longer than its size is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a last chunk ending in a bare LF is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a bare LF ending the chunked body is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a bare CR inside a chunk extension is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\rc\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a bare LF inside a chunk extension is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a trailer field with a space before its colon is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: an obs-fold in a trailer is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a trailer line ending in a bare LF is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\n\r\n
expect 400 close
CASE
}

@test "conformance: Transfer-Encoding and chunked: a request line where the empty line after the last chunk should be is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: Content-Length with Transfer-Encoding is a 400 and a close, and the hidden request is not answered" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: Transfer-Encoding before Content-Length is a 400 and a close as well" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 35\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: Content-Length: 0 with Transfer-Encoding is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: an unknown Transfer-Encoding with Content-Length is refused and the connection closed" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\nhello
expect 400|501 close
CASE
}

@test "conformance: smuggling pairs: a Transfer-Encoding with a space before its colon is a 400 and a close, hiding nothing" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a Transfer-Encoding folded onto the next line is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a Transfer-Encoding with a vertical tab before its value is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n\r\nhello
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a Transfer-Encoding with a NUL after chunked is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\0\r\n\r\n5\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a second Transfer-Encoding field after chunked is refused and the connection closed" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n
expect 400|501 close
CASE
}

@test "conformance: smuggling pairs: a quoted chunked value is not chunked and is refused" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "chunked"\r\n\r\n5\r\nhello\r\n0\r\n\r\n
expect 400|501 close
CASE
}

@test "conformance: smuggling pairs: differing duplicate Content-Length hiding a request is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a Content-Length with a space before its colon is a 400 and a close, hiding nothing" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length : 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a Content-Length folded onto the next line is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a request inside a Content-Length body is data and is not answered" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
body 1 posted
CASE
}

@test "conformance: smuggling pairs: a request inside a chunk is data and is not answered" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n23\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: smuggling pairs: a request inside a chunk extension is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\nhello\r\n0\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a request after a 400 is never answered" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a request after a 501 is never answered" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 501 close
CASE
}

@test "conformance: smuggling pairs: a request after a 505 is never answered" {
	conf <<'CASE'
send GET /hello HTTP/2.0\r\nHost: a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 505 close
CASE
}

@test "conformance: smuggling pairs: a request after a bare-LF request is never answered" {
	conf <<'CASE'
send GET /hello HTTP/1.1\nHost: a\n\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a chunked HTTP/1.0 request hiding a request is a 400 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 400 close
CASE
}

@test "conformance: smuggling pairs: a chunk size that overflows 64 bits does not wrap into a short chunk" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n
expect 400|413 close
CASE
}

@test "conformance: smuggling pairs: a chunk whose size covers a last chunk and a request reads both as data" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2f\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: limits: a target of exactly --max-uri-bytes is served" {
	conf <<'CASE'
send GET /\{1023*a} HTTP/1.1\r\nHost: a\r\n\r\n
expect 404 open
CASE
}

@test "conformance: limits: a target one byte over --max-uri-bytes is a 414 and a close" {
	conf <<'CASE'
send GET /\{1024*a} HTTP/1.1\r\nHost: a\r\n\r\n
expect 414 close
CASE
}

@test "conformance: limits: a query string counts toward --max-uri-bytes" {
	conf <<'CASE'
send GET /hello?\{1100*q} HTTP/1.1\r\nHost: a\r\n\r\n
expect 414 close
CASE
}

@test "conformance: limits: a long target is refused before its request line ends" {
	conf <<'CASE'
send GET /\{2000*a}
expect 414 close
CASE
}

@test "conformance: limits: a head over --max-header-bytes is a 431 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: \{5000*b}\r\n\r\n
expect 431 close
CASE
}

@test "conformance: limits: a head over --max-header-bytes is refused before it ends" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: \{5000*b}
expect 431 close
CASE
}

@test "conformance: limits: many short fields over --max-header-bytes are a 431 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\{50*X-Field: \{90*f}\r\n}\r\n
expect 431 close
CASE
}

@test "conformance: limits: a head under --max-header-bytes is served" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: \{3500*b}\r\n\r\n
expect 200 open
CASE
}

@test "conformance: limits: a hundred fields are a 431 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\{100*X-A: b\r\n}\r\n
expect 431 close
CASE
}

@test "conformance: limits: forty fields are served" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\{40*X-A: b\r\n}\r\n
expect 200 open
CASE
}

@test "conformance: limits: a body of exactly --max-body-bytes is served" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n\{4096*z}
expect 200 open
CASE
}

@test "conformance: limits: a Content-Length over --max-body-bytes is a 413 before the body is sent" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4097\r\n\r\n
expect 413 close
CASE
}

@test "conformance: limits: a Content-Length body over --max-body-bytes is a 413 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4097\r\n\r\n\{4097*z}
expect 413 close
CASE
}

@test "conformance: limits: a chunked body of exactly --max-body-bytes is served" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n\{4096*z}\r\n0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: limits: a chunk over --max-body-bytes is a 413 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\n\{4097*z}\r\n0\r\n\r\n
expect 413 close
CASE
}

@test "conformance: limits: chunks that together exceed --max-body-bytes are a 413 and a close" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n\{2048*z}\r\n801\r\n\{2049*z}\r\n0\r\n\r\n
expect 413 close
CASE
}

@test "conformance: limits: a head that stops arriving is a 408 after --header-timeout and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n
expect 408 close
CASE
}

@test "conformance: limits: a request line that stops arriving is a 408 after --header-timeout and a close" {
	conf <<'CASE'
send GET /hel
expect 408 close
CASE
}

@test "conformance: pipelining order: two requests in one write get two answers in order" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 200 open
body 1 Hello from dsys!
header 2 content-type: ~json
CASE
}

@test "conformance: pipelining order: ten requests in one write get ten answers" {
	conf <<'CASE'
send \{10*GET /hello HTTP/1.1\r\nHost: a\r\n\r\n}
expect 200*10 open
CASE
}

@test "conformance: pipelining order: fifty requests in one write get fifty answers" {
	conf <<'CASE'
send \{50*GET /hello HTTP/1.1\r\nHost: a\r\n\r\n}
expect 200*50 open
CASE
}

@test "conformance: pipelining order: answers to different routes keep the order of the requests" {
	conf <<'CASE'
send GET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\nPOST /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx
expect 404 200 405 200 200 open
body 2 Hello from dsys!
header 4 content-type: ~json
body 5 posted
CASE
}

@test "conformance: pipelining order: a bad request in the middle of a pipeline gets the earlier answers, then a 400 and a close" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost : a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 200 400 close
CASE
}

@test "conformance: pipelining order: a 414 in the middle of a pipeline ends it after the earlier answers" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /\{1100*a} HTTP/1.1\r\nHost: a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 414 close
CASE
}

@test "conformance: pipelining order: a 413 in the middle of a pipeline ends it after the earlier answers" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 413 close
CASE
}

@test "conformance: pipelining order: a 404 in a pipeline does not end it" {
	conf <<'CASE'
send GET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 404 200 open
CASE
}

@test "conformance: pipelining order: a 405 in a pipeline does not end it" {
	conf <<'CASE'
send DELETE /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 405 200 open
CASE
}

@test "conformance: pipelining order: bodies in a pipeline are skipped, not read as requests" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 200 200 open
body 3 Hello from dsys!
CASE
}

@test "conformance: pipelining order: a pipeline split at odd places across writes is answered in order" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /he
send alth HTTP/1.1\r\nHo
send st: a\r\n\r\nGET /nope HTTP/1.1\r
send \nHost: a\r\n\r\n
expect 200 200 404 open
CASE
}

@test "conformance: pipelining order: a request with Connection: close in a pipeline is the last one answered" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 200 close
CASE
}

@test "conformance: pipelining order: an HTTP/1.0 request in a pipeline is the last one answered" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 200 close
CASE
}

@test "conformance: pipelining order: a client that half-closes after a pipeline still gets every answer" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
shut
expect 200 200 200 close
CASE
}

@test "conformance: pipelining order: a client that half-closes after one request still gets its answer" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
shut
expect 200 close
body 1 Hello from dsys!
CASE
}

@test "conformance: connection management: an HTTP/1.1 request keeps the connection open by default" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
CASE
}

@test "conformance: connection management: an HTTP/1.1 request with Connection: close is answered and the connection closed" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n
expect 200 close
header 1 connection: ~close
CASE
}

@test "conformance: connection management: the Connection close option is matched case-insensitively" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n
expect 200 close
CASE
}

@test "conformance: connection management: close among other Connection options closes" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n
expect 200 close
CASE
}

@test "conformance: connection management: close in a second Connection field closes" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: x-foo\r\nConnection: close\r\n\r\n
expect 200 close
CASE
}

@test "conformance: connection management: an HTTP/1.0 request closes the connection by default" {
	conf <<'CASE'
send GET /hello HTTP/1.0\r\n\r\n
expect 200 close
CASE
}

@test "conformance: connection management: an HTTP/1.0 request with Connection: keep-alive keeps it open" {
	conf <<'CASE'
send GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n
expect 200 open
header 1 connection: ~keep-alive
CASE
}

@test "conformance: connection management: an HTTP/1.0 keep-alive is matched case-insensitively" {
	conf <<'CASE'
send GET /hello HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n
expect 200 open
CASE
}

@test "conformance: connection management: an HTTP/1.0 request with Connection: close closes" {
	conf <<'CASE'
send GET /hello HTTP/1.0\r\nConnection: close\r\n\r\n
expect 200 close
CASE
}

@test "conformance: connection management: an HTTP/1.1 request with Connection: keep-alive stays open" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n
expect 200 open
CASE
}

@test "conformance: connection management: an answer to HTTP/1.0 is framed without chunked coding" {
	conf <<'CASE'
send GET /hello HTTP/1.0\r\n\r\n
expect 200 close
noheader 1 transfer-encoding
body 1 Hello from dsys!
CASE
}

@test "conformance: connection management: a 404 keeps an HTTP/1.1 connection open" {
	conf <<'CASE'
send GET /nope HTTP/1.1\r\nHost: a\r\n\r\n
expect 404 open
CASE
}

@test "conformance: connection management: an answer carries a Date field" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
header 1 date: ~GMT
CASE
}

@test "conformance: HEAD/204/304: HEAD gets the headers of GET and no body" {
	conf <<'CASE'
send HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n
head 1
expect 200 open
header 1 content-length: 16
header 1 content-type: ~text/plain
CASE
}

@test "conformance: HEAD/204/304: HEAD then GET in one write: the GET's body is the first body on the wire" {
	conf <<'CASE'
send HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
head 1
expect 200 200 open
header 1 content-length: 16
body 2 Hello from dsys!
CASE
}

@test "conformance: HEAD/204/304: GET, HEAD, GET in one write are answered in order with one body each for the GETs" {
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nHEAD /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
head 2
expect 200 200 200 open
body 1 Hello from dsys!
header 2 content-length: 16
body 3 Hello from dsys!
CASE
}

@test "conformance: HEAD/204/304: HEAD of a JSON route gets its Content-Type and Content-Length and no body" {
	conf <<'CASE'
send HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n
head 1
expect 200 open
header 1 content-type: ~json
header 1 content-length
CASE
}

@test "conformance: HEAD/204/304: HEAD of an unknown path is a 404 without a body" {
	conf <<'CASE'
send HEAD /nope HTTP/1.1\r\nHost: a\r\n\r\n
head 1
expect 404 open
CASE
}

@test "conformance: HEAD/204/304: HEAD of a POST-only route is a 405 without a body" {
	conf <<'CASE'
send HEAD /echo HTTP/1.1\r\nHost: a\r\n\r\n
head 1
expect 405 open
header 1 allow: ~POST
CASE
}

@test "conformance: HEAD/204/304: HEAD over HTTP/1.0 closes after the headers" {
	conf <<'CASE'
send HEAD /hello HTTP/1.0\r\n\r\n
head 1
expect 200 close
header 1 content-length: 16
CASE
}

@test "conformance: HEAD/204/304: HEAD of /metrics gets no body" {
	conf <<'CASE'
send HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n
head 1
expect 200 open
CASE
}

@test "conformance: HEAD/204/304: the Allow of a GET route names HEAD too" {
	conf <<'CASE'
send PUT /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n
expect 405 open
header 1 allow: ~HEAD
CASE
}

@test "conformance: Expect: 100-continue: Expect: 100-continue gets a 100 before the body is sent, then the answer" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n
await
send hello
expect 100 200 open
body 2 posted
CASE
}

@test "conformance: Expect: 100-continue: Expect: 100-continue is matched case-insensitively" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n
await
send hello
expect 100 200 open
CASE
}

@test "conformance: Expect: 100-continue: Expect: 100-continue with a chunked body gets a 100 first" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n
await
send 5\r\nhello\r\n0\r\n\r\n
expect 100 200 open
CASE
}

@test "conformance: Expect: 100-continue: Expect: 100-continue with a body over the limit gets a 413 and no 100" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n
expect 413 close
CASE
}

@test "conformance: Expect: 100-continue: Expect: 100-continue in HTTP/1.0 is ignored: no 100" {
	conf <<'CASE'
send POST /echo HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello
expect 200 close
CASE
}

@test "conformance: Expect: 100-continue: a pipelined request after an Expect: 100-continue request is answered in order" {
	conf <<'CASE'
send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n
await
send helloGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 100 200 200 open
body 3 Hello from dsys!
CASE
}

@test "conformance: the server is still running and serving after every case" {
	kill -0 "$(cat "$BATS_FILE_TMPDIR/serve.pid")"
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
CASE
}
