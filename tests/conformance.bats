#!/usr/bin/env bats
# GENERATED from tests/conformance/cases.txt by tests/conformance/gen.py:
# edit the table, then run `python3 tests/conformance/gen.py`.
#
# The raw-socket conformance suite of dsys-serve, grouped as RFC 9112 groups
# its rules.  Each test is one case: exact request bytes (possibly in several
# writes), the statuses expected in order, and whether the server must close
# the connection afterwards.  One server serves the whole file; setup_file
# plays every case through tests/conformance/send.py, and each test shows
# its case's transcript when it did not match.

bats_require_minimum_version 1.5.0     # run -1, run -2

# helpers.bash is loaded in setup_file only: loaded at the top it would be
# sourced again, with bats-support and bats-assert, for each of the hundreds
# of tests, which triples the file's run time.
setup_file() {
	load helpers
	local dir=$BATS_FILE_TMPDIR ready
	export DSYS_PY
	"$DSYS_BIN/dsys-serve" --listen 127.0.0.1:0 --max-uri-bytes 1024 \
		--max-header-bytes 4096 --max-body-bytes 4096 --header-timeout 1s \
		--route 'POST /echo=posted' >"$dir/serve.out" 2>"$dir/serve.err" 3>&- &
	echo $! >"$dir/serve.pid"
	ready=$(wait_ready "$dir/serve.out" "$(cat "$dir/serve.pid")") || return 1
	CONF_PORT=$(ready_port "$ready")
	export CONF_PORT
	# Every case, in table order, on its own connection; one result file each.
	mkdir -p "$dir/results"
	"$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$CONF_PORT" \
		--table "$BATS_TEST_DIRNAME/conformance/cases.txt" --results "$dir/results" || true
}

teardown_file() {
	kill_server "$(cat "$BATS_FILE_TMPDIR/serve.pid")"
}

# conf_result N: case N of the table (from 1) passed in setup_file; when it
# did not, what was expected, what happened and the transcript.
conf_result() {
	local r=$BATS_FILE_TMPDIR/results/$1
	if [ -e "$r.pass" ]; then
		return 0
	elif [ -e "$r.fail" ]; then
		cat "$r.fail"
	else
		echo "case $1 was not played (did send.py fail? see setup_file)"
	fi
	return 1
}

# conf: play the case on stdin now.
conf() {
	"$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$CONF_PORT"
}

@test "conformance: the generated tests match tests/conformance/cases.txt" {
	"$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/gen.py" --check
}

@test "conformance: line endings: a request whose lines all end in CRLF is answered and the connection stays open" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	# header 1 content-length: 16
	conf_result 1
}

@test "conformance: line endings: a bare LF ending the request line is a 400 and a close" {
	# send GET /hello HTTP/1.1\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 2
}

@test "conformance: line endings: a bare LF ending a field line is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n
	# expect 400 close
	conf_result 3
}

@test "conformance: line endings: a bare LF as the empty line that ends the head is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\n
	# expect 400 close
	conf_result 4
}

@test "conformance: line endings: a head whose every line ends in a bare LF is a 400 and a close" {
	# send GET /hello HTTP/1.1\nHost: a\n\n
	# expect 400 close
	conf_result 5
}

@test "conformance: line endings: a bare CR ending the request line is a 400 and a close" {
	# send GET /hello HTTP/1.1\rHost: a\r\n\r\n
	# expect 400 close
	conf_result 6
}

@test "conformance: line endings: a bare CR inside a field value is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n
	# expect 400 close
	conf_result 7
}

@test "conformance: line endings: a bare CR inside the request target is a 400 and a close" {
	# send GET /hel\rlo HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 8
}

@test "conformance: line endings: a bare CR before the empty line's CRLF is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\r\n
	# expect 400 close
	conf_result 9
}

@test "conformance: line endings: a line ending in LF CR instead of CR LF is a 400 and a close" {
	# send GET /hello HTTP/1.1\n\rHost: a\n\r\n\r
	# expect 400 close
	conf_result 10
}

@test "conformance: line endings: an empty line before the request line is skipped, as RFC 9112 2.2 says a server SHOULD" {
	# send \r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 11
}

@test "conformance: line endings: a bare LF before the request line is skipped too" {
	# send \nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	conf_result 12
}

@test "conformance: line endings: eight empty lines before the request line are skipped" {
	# send \{8*\r\n}GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	conf_result 13
}

@test "conformance: line endings: a ninth empty line before the request line is a 400 and a close" {
	# send \{9*\r\n}GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 14
}

@test "conformance: line endings: a bare CR before the request line is a 400 and a close" {
	# send \rGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 15
}

@test "conformance: line endings: an extra CRLF after a complete request is skipped before the next one" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	conf_result 16
}

@test "conformance: line endings: a CRLF after a POST body, as some clients send, is skipped before the next request" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	# body 1 posted
	# body 2 Hello from dsys!
	conf_result 17
}

@test "conformance: line endings: an empty line inside the fields still ends the head: what follows is the next request" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nX-Late: 1\r\n\r\n
	# expect 200 400 close
	conf_result 18
}

@test "conformance: line endings: a head split between a CR and its LF is answered as if it came whole" {
	# send GET /hello HTTP/1.1\r
	# send \nHost: a\r\n\r\n
	# expect 200 open
	conf_result 19
}

@test "conformance: line endings: a head split inside its final CRLF CRLF is answered as if it came whole" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r
	# send \n
	# expect 200 open
	conf_result 20
}

@test "conformance: line endings: a request sent one byte per write is answered" {
	# pause 1
	# trickle GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	conf_result 21
}

@test "conformance: line endings: CR and LF bytes inside a Content-Length body are data, not line endings" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\n\r\r\n
	# expect 200 open
	# body 1 posted
	conf_result 22
}

@test "conformance: line endings: an error answer says Connection: close and has a JSON body" {
	# send GET /hello HTTP/1.1\nHost: a\r\n\r\n
	# expect 400 close
	# header 1 connection: close
	# header 1 content-type: ~json
	conf_result 23
}

@test "conformance: request line: a request line with two spaces after the method is a 400 and a close" {
	# send GET  /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 24
}

@test "conformance: request line: a request line with two spaces before the version is a 400 and a close" {
	# send GET /hello  HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 25
}

@test "conformance: request line: a tab between method and target is a 400 and a close" {
	# send GET\t/hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 26
}

@test "conformance: request line: a space after the version is a 400 and a close" {
	# send GET /hello HTTP/1.1\x20\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 27
}

@test "conformance: request line: a space before the method is a 400 and a close" {
	# send \x20GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 28
}

@test "conformance: request line: a request line without a version (HTTP/0.9) is a 400 and a close" {
	# send GET /hello\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 29
}

@test "conformance: request line: a request line of the method alone is a 400 and a close" {
	# send GET\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 30
}

@test "conformance: request line: a request line without a target is a 400 and a close" {
	# send GET HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 31
}

@test "conformance: request line: a lowercase protocol name is a 400 and a close" {
	# send GET /hello http/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 32
}

@test "conformance: request line: a version with two minor digits is a 400 and a close" {
	# send GET /hello HTTP/1.10\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 33
}

@test "conformance: request line: a version without a minor digit is a 400 and a close" {
	# send GET /hello HTTP/1.\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 34
}

@test "conformance: request line: a version without its dot is a 400 and a close" {
	# send GET /hello HTTP/11\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 35
}

@test "conformance: request line: a version with trailing junk is a 400 and a close" {
	# send GET /hello HTTP/1.1x\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 36
}

@test "conformance: request line: a target with a space inside is a 400 and a close" {
	# send GET /hel lo HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 37
}

@test "conformance: request line: HTTP/2.0 in a request line is a 505 and a close" {
	# send GET /hello HTTP/2.0\r\nHost: a\r\n\r\n
	# expect 505 close
	# header 1 content-type: ~json
	conf_result 38
}

@test "conformance: request line: HTTP/0.9 written out as a version is a 505 and a close" {
	# send GET /hello HTTP/0.9\r\nHost: a\r\n\r\n
	# expect 505 close
	conf_result 39
}

@test "conformance: request line: HTTP/3.1 is a 505 and a close" {
	# send GET /hello HTTP/3.1\r\nHost: a\r\n\r\n
	# expect 505 close
	conf_result 40
}

@test "conformance: request line: HTTP/1.2 is answered as HTTP/1.1" {
	# send GET /hello HTTP/1.2\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 41
}

@test "conformance: request line: a method with a character that is not a token character is a 400 and a close" {
	# send GE(T /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 42
}

@test "conformance: request line: a method with a NUL is a 400 and a close" {
	# send GE\0T /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 43
}

@test "conformance: request line: a NUL in the target is a 400 and a close" {
	# send GET /hel\0lo HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 44
}

@test "conformance: request line: a DEL in the target is a 400 and a close" {
	# send GET /hel\x7flo HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 45
}

@test "conformance: request line: a raw byte above 0x7f in the target is a 400 and a close" {
	# send GET /hel\xfflo HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 46
}

@test "conformance: request line: a fragment in the target is a 400 and a close" {
	# send GET /hello#top HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 47
}

@test "conformance: request line: a target that is neither origin-form nor absolute-form is a 400 and a close" {
	# send GET hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 48
}

@test "conformance: request line: an asterisk target on a GET is a 400 and a close" {
	# send GET * HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 49
}

@test "conformance: request line: an Upgrade: h2c request is answered over HTTP/1.1" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 50
}

@test "conformance: request line: a query string does not change the route" {
	# send GET /hello?name=x&y=%20 HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 51
}

@test "conformance: request line: an empty query string does not change the route" {
	# send GET /hello? HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 52
}

@test "conformance: request line: an absolute-form target with an uppercase scheme is routed by its path" {
	# send GET HTTP://a/hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 53
}

@test "conformance: request line: an absolute-form target is routed by its path" {
	# send GET http://a/hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 54
}

@test "conformance: request line: an unknown path is a 404 with a JSON body and the connection stays open" {
	# send GET /nope HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 404 open
	# header 1 content-type: ~json
	conf_result 55
}

@test "conformance: request line: a path with a trailing slash is another path" {
	# send GET /hello/ HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 404 open
	conf_result 56
}

@test "conformance: request line: a method the route does not have is a 405 with Allow and the connection stays open" {
	# send POST /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n
	# expect 405 open
	# header 1 allow: ~GET
	conf_result 57
}

@test "conformance: request line: a method on a POST-only route is a 405 whose Allow names POST" {
	# send DELETE /echo HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 405 open
	# header 1 allow: ~POST
	conf_result 58
}

@test "conformance: request line: methods are case-sensitive: get is not GET" {
	# send get /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 405 open
	# header 1 allow: ~GET
	conf_result 59
}

@test "conformance: request line: an unknown method that is a valid token is a 405 with Allow" {
	# send BREW /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 405 open
	# header 1 allow
	conf_result 60
}

@test "conformance: request line: a CRLF alone after a valid request is an empty line: the server waits for a request, then the header timeout's 408 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n\r\n
	# expect 200 408 close
	conf_result 61
}

@test "conformance: request line: a request line of garbage bytes is a 400 and a close" {
	# send \x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n
	# expect 400 close
	conf_result 62
}

@test "conformance: request line: a second question mark inside the query is part of the query" {
	# send GET /hello?a=b?c HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 63
}

@test "conformance: request line: an absolute-form target with a query and no path is parsed: a 404, not a 400" {
	# send GET http://a?x=1 HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 404 open
	conf_result 64
}

@test "conformance: request line: an absolute-form http target with an empty host is a 400 and a close" {
	# send GET http:///hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 65
}

@test "conformance: request line: an absolute-form http target with only a port for its host is a 400 and a close" {
	# send GET http://:80/hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 66
}

@test "conformance: request line: userinfo in an absolute-form target is a 400 and a close (the strict choice)" {
	# send GET http://user:pw@a/hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 67
}

@test "conformance: request line: a double quote in the target is a 400 and a close" {
	# send GET /hel"lo" HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 68
}

@test "conformance: request line: a vertical bar in the query is a 400 and a close" {
	# send GET /hello?a=| HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 69
}

@test "conformance: request line: a CONNECT target without a port is a 400 and a close" {
	# send CONNECT a.example HTTP/1.1\r\nHost: a.example\r\n\r\n
	# expect 400 close
	conf_result 70
}

@test "conformance: request line: a CONNECT with an origin-form target is a 400 and a close" {
	# send CONNECT /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 71
}

@test "conformance: request line: an asterisk target on a method other than OPTIONS is a 400 and a close" {
	# send M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 72
}

@test "conformance: request line: a method of 33 token characters is refused and the connection closed" {
	# send \{33*A} /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 73
}

@test "conformance: request line: a method made of every token character is parsed: a 405 or 501, not a 400" {
	# send !#$%&'*+-.^_`|~Az09 /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 405 open
	conf_result 74
}

@test "conformance: request line: a version whose major number is huge is refused and the connection closed" {
	# send GET / HTTP/4294967295.255\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 75
}

@test "conformance: request line: a bare LF as the separator before the version is a 400 and a close" {
	# send GET /hello\nHTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 76
}

@test "conformance: Host: an HTTP/1.1 request without Host is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\n\r\n
	# expect 400 close
	conf_result 77
}

@test "conformance: Host: an HTTP/1.1 request with two Host fields is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n
	# expect 400 close
	conf_result 78
}

@test "conformance: Host: an HTTP/1.1 request with two equal Host fields is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 79
}

@test "conformance: Host: two Host fields named in different case are two Host fields" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n
	# expect 400 close
	conf_result 80
}

@test "conformance: Host: a Host field whose value is a list is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a, b\r\n\r\n
	# expect 400 close
	conf_result 81
}

@test "conformance: Host: a Host value with a space inside is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a b\r\n\r\n
	# expect 400 close
	conf_result 82
}

@test "conformance: Host: a Host value with a slash is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a/b\r\n\r\n
	# expect 400 close
	conf_result 83
}

@test "conformance: Host: a Host value with a port that is not a number is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a:http\r\n\r\n
	# expect 400 close
	conf_result 84
}

@test "conformance: Host: an empty Host value is accepted" {
	# send GET /hello HTTP/1.1\r\nHost:\r\n\r\n
	# expect 200 open
	conf_result 85
}

@test "conformance: Host: a Host value with a port is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: example.com:8080\r\n\r\n
	# expect 200 open
	conf_result 86
}

@test "conformance: Host: an IPv6 literal Host is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n
	# expect 200 open
	conf_result 87
}

@test "conformance: Host: the Host field name is matched case-insensitively" {
	# send GET /hello HTTP/1.1\r\nhOsT: a\r\n\r\n
	# expect 200 open
	conf_result 88
}

@test "conformance: Host: an absolute-form target does not stand in for a missing Host" {
	# send GET http://a/hello HTTP/1.1\r\n\r\n
	# expect 400 close
	conf_result 89
}

@test "conformance: Host: an HTTP/1.0 request without Host is answered" {
	# send GET /hello HTTP/1.0\r\n\r\n
	# expect 200 close
	# body 1 Hello from dsys!
	conf_result 90
}

@test "conformance: Host: a Host field hidden by a space before its colon is a 400, not a missing Host" {
	# send GET /hello HTTP/1.1\r\nHost : a\r\n\r\n
	# expect 400 close
	conf_result 91
}

@test "conformance: Host: a Host value with surrounding whitespace is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: \t a \t\r\n\r\n
	# expect 200 open
	conf_result 92
}

@test "conformance: Host: a Host with userinfo is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: user@a\r\n\r\n
	# expect 400 close
	conf_result 93
}

@test "conformance: Host: a Host reg-name with sub-delimiters is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: 0.0.0.0=5000\r\n\r\n
	# expect 200 open
	conf_result 94
}

@test "conformance: Host: a Host with an unclosed IPv6 bracket is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: [::1\r\n\r\n
	# expect 400 close
	conf_result 95
}

@test "conformance: Host: a Host with bytes after its IPv6 literal is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: [::1]x\r\n\r\n
	# expect 400 close
	conf_result 96
}

@test "conformance: Host: a Host with two ports is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a:1:2\r\n\r\n
	# expect 400 close
	conf_result 97
}

@test "conformance: Host: an empty Host field and a second Host field are two Host fields" {
	# send GET /hello HTTP/1.1\r\nHost:\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 98
}

@test "conformance: Host: a Host IPv6 literal with an embedded IPv4 address is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: [::ffff:192.0.2.1]:8080\r\n\r\n
	# expect 200 open
	conf_result 99
}

@test "conformance: Host: a Host IPv6 literal of eight groups is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: [2001:db8:0:0:0:0:2:1]\r\n\r\n
	# expect 200 open
	conf_result 100
}

@test "conformance: Host: a Host IPvFuture literal is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n\r\n
	# expect 200 open
	conf_result 101
}

@test "conformance: Host: a Host IPv6 literal of letters that are not hex digits is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: [zzzz]\r\n\r\n
	# expect 400 close
	conf_result 102
}

@test "conformance: Host: a Host IPv6 literal with two double colons is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: [::1::2]\r\n\r\n
	# expect 400 close
	conf_result 103
}

@test "conformance: Host: a Host IPv6 literal of nine groups is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8:9]\r\n\r\n
	# expect 400 close
	conf_result 104
}

@test "conformance: Host: a Host IPv6 literal with a five-digit group is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: [12345::1]\r\n\r\n
	# expect 400 close
	conf_result 105
}

@test "conformance: Host: a Host IPv6 literal with an IPv4 part over 255 is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: [::ffff:1.2.3.999]\r\n\r\n
	# expect 400 close
	conf_result 106
}

@test "conformance: Host: a Host IPvFuture literal without a version is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: [v.x]\r\n\r\n
	# expect 400 close
	conf_result 107
}

@test "conformance: Host: an absolute-form target whose IPv6 literal is not an address is a 400 and a close" {
	# send GET http://[g::1]/hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 108
}

@test "conformance: field syntax: a space between a field name and its colon is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n
	# expect 400 close
	conf_result 109
}

@test "conformance: field syntax: a tab between a field name and its colon is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n
	# expect 400 close
	conf_result 110
}

@test "conformance: field syntax: an obs-fold continuation line starting with a space is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n
	# expect 400 close
	conf_result 111
}

@test "conformance: field syntax: an obs-fold continuation line starting with a tab is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n
	# expect 400 close
	conf_result 112
}

@test "conformance: field syntax: whitespace before the first field line is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\n Host: a\r\n\r\n
	# expect 400 close
	conf_result 113
}

@test "conformance: field syntax: a field line of whitespace only is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n \r\n\r\n
	# expect 400 close
	conf_result 114
}

@test "conformance: field syntax: a field line without a colon is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n
	# expect 400 close
	conf_result 115
}

@test "conformance: field syntax: a field line with an empty name is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n
	# expect 400 close
	conf_result 116
}

@test "conformance: field syntax: a field name with a parenthesis is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n
	# expect 400 close
	conf_result 117
}

@test "conformance: field syntax: a field name with a space inside is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n
	# expect 400 close
	conf_result 118
}

@test "conformance: field syntax: a field name with a NUL is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX\0A: b\r\n\r\n
	# expect 400 close
	conf_result 119
}

@test "conformance: field syntax: a field name with a UTF-8 letter is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-\xc3\xa4: b\r\n\r\n
	# expect 400 close
	conf_result 120
}

@test "conformance: field syntax: a NUL in a field value is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n
	# expect 400 close
	conf_result 121
}

@test "conformance: field syntax: a control character 0x01 in a field value is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n
	# expect 400 close
	conf_result 122
}

@test "conformance: field syntax: a DEL in a field value is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n
	# expect 400 close
	conf_result 123
}

@test "conformance: field syntax: a vertical tab in a field value is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\x0bc\r\n\r\n
	# expect 400 close
	conf_result 124
}

@test "conformance: field syntax: a NUL in the Host value is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\0b\r\n\r\n
	# expect 400 close
	conf_result 125
}

@test "conformance: field syntax: a tab inside a field value is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b\tc\r\n\r\n
	# expect 200 open
	conf_result 126
}

@test "conformance: field syntax: obs-text bytes above 0x7f in a field value are accepted" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: caf\xe9 \xc3\xa4\r\n\r\n
	# expect 200 open
	conf_result 127
}

@test "conformance: field syntax: an empty field value is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A:\r\n\r\n
	# expect 200 open
	conf_result 128
}

@test "conformance: field syntax: a field value without a space after the colon is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A:b\r\n\r\n
	# expect 200 open
	conf_result 129
}

@test "conformance: field syntax: a colon inside a field value is part of the value" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: b:c: d\r\n\r\n
	# expect 200 open
	conf_result 130
}

@test "conformance: field syntax: every token character is accepted in a field name" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: b\r\n\r\n
	# expect 200 open
	conf_result 131
}

@test "conformance: field syntax: a repeated unknown field is accepted" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-A: 2\r\nx-a: 3\r\n\r\n
	# expect 200 open
	conf_result 132
}

@test "conformance: field syntax: a bad field line after a good request in the same write ends the connection after the good answer" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n
	# expect 200 400 close
	conf_result 133
}

@test "conformance: field syntax: a form feed in a field value is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-A: \x0c\r\n\r\n
	# expect 400 close
	conf_result 134
}

@test "conformance: field syntax: a field line of a lone colon is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n:\r\nX-A: b\r\n\r\n
	# expect 400 close
	conf_result 135
}

@test "conformance: field syntax: an obs-text byte (0x85) between a field name and its colon is a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length\x85: 5\r\n\r\nhello
	# expect 400 close
	conf_result 136
}

@test "conformance: field syntax: a field name split over two lines is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-\r\nEncoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n
	# expect 400 close
	conf_result 137
}

@test "conformance: Content-Length: a POST with a Content-Length body is answered and the connection stays open" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello
	# expect 200 open
	# body 1 posted
	conf_result 138
}

@test "conformance: Content-Length: a Content-Length of zero is an empty body" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n
	# expect 200 open
	conf_result 139
}

@test "conformance: Content-Length: a POST with neither Content-Length nor Transfer-Encoding has an empty body" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	# body 2 Hello from dsys!
	conf_result 140
}

@test "conformance: Content-Length: a Content-Length with leading zeros is a decimal number" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nhello
	# expect 200 open
	conf_result 141
}

@test "conformance: Content-Length: a Content-Length with trailing whitespace is accepted" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5 \t\r\n\r\nhello
	# expect 200 open
	conf_result 142
}

@test "conformance: Content-Length: a negative Content-Length is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nhello
	# expect 400 close
	conf_result 143
}

@test "conformance: Content-Length: a Content-Length with a plus sign is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello
	# expect 400 close
	conf_result 144
}

@test "conformance: Content-Length: a hexadecimal Content-Length is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello
	# expect 400 close
	conf_result 145
}

@test "conformance: Content-Length: a Content-Length with a space between digits is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\nhello
	# expect 400 close
	conf_result 146
}

@test "conformance: Content-Length: an empty Content-Length is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\nhello
	# expect 400 close
	conf_result 147
}

@test "conformance: Content-Length: a Content-Length that is not a number is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: five\r\n\r\nhello
	# expect 400 close
	conf_result 148
}

@test "conformance: Content-Length: a Content-Length in exponent notation is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5e0\r\n\r\nhello
	# expect 400 close
	conf_result 149
}

@test "conformance: Content-Length: a Content-Length past 64 bits is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551621\r\n\r\nhello
	# expect 400 close
	conf_result 150
}

@test "conformance: Content-Length: two equal Content-Length fields are one" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello
	# expect 200 open
	conf_result 151
}

@test "conformance: Content-Length: a Content-Length list of equal values is one value" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello
	# expect 200 open
	conf_result 152
}

@test "conformance: Content-Length: two differing Content-Length fields are a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!
	# expect 400 close
	conf_result 153
}

@test "conformance: Content-Length: a Content-Length list of differing values is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!
	# expect 400 close
	conf_result 154
}

@test "conformance: Content-Length: an empty second Content-Length field is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length:\r\n\r\nhello
	# expect 400 close
	conf_result 155
}

@test "conformance: Content-Length: a Content-Length list with an empty member is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\nhello
	# expect 400 close
	conf_result 156
}

@test "conformance: Content-Length: a body on a GET is read and skipped, and the next request is answered" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /health HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	# body 1 Hello from dsys!
	# header 2 content-type: ~json
	conf_result 157
}

@test "conformance: Content-Length: bytes after a Content-Length body are the next request, and garbage there is a 400" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nhello\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 400 close
	conf_result 158
}

@test "conformance: Content-Length: a body that arrives in pieces is read whole" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhel
	# send lo wo
	# send rld
	# expect 200 open
	conf_result 159
}

@test "conformance: Content-Length: a Content-Length body on an HTTP/1.0 request is read, and the connection closes" {
	# send POST /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello
	# expect 200 close
	conf_result 160
}

@test "conformance: Content-Length: the Content-Length field name is matched case-insensitively" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 5\r\n\r\nhelloGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	conf_result 161
}

@test "conformance: Content-Length: an empty Content-Length before a real one is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length:\r\nContent-Length: 5\r\n\r\nhello
	# expect 400 close
	conf_result 162
}

@test "conformance: Content-Length: a Content-Length with an underscore is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1_0\r\n\r\n0123456789
	# expect 400 close
	conf_result 163
}

@test "conformance: Content-Length: a field named Content-Length-X does not frame the body" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length-X: 5\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	# body 2 Hello from dsys!
	conf_result 164
}

@test "conformance: Transfer-Encoding and chunked: a chunked body of one chunk is answered and the connection stays open" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 200 open
	# body 1 posted
	conf_result 165
}

@test "conformance: Transfer-Encoding and chunked: a chunked body of several chunks is answered" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n
	# expect 200 open
	conf_result 166
}

@test "conformance: Transfer-Encoding and chunked: an empty chunked body is the last chunk alone" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n
	# expect 200 open
	conf_result 167
}

@test "conformance: Transfer-Encoding and chunked: chunk sizes in upper- and lowercase hex are read alike" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n
	# expect 200 open
	conf_result 168
}

@test "conformance: Transfer-Encoding and chunked: a chunk size with leading zeros is accepted" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n000\r\n\r\n
	# expect 200 open
	conf_result 169
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension with a value is ignored" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n
	# expect 200 open
	conf_result 170
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension without a value is ignored" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext\r\nhello\r\n0;last\r\n\r\n
	# expect 200 open
	conf_result 171
}

@test "conformance: Transfer-Encoding and chunked: whitespace before a chunk extension's semicolon and around its equals sign is accepted" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a = b\r\nhello\r\n0\r\n\r\n
	# expect 200 open
	conf_result 172
}

@test "conformance: Transfer-Encoding and chunked: a chunk size with a hundred leading zeros is still five" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\{100*0}5\r\nhello\r\n0\r\n\r\n
	# expect 200 open
	conf_result 173
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension with a quoted value is ignored" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a="b; c"\r\nhello\r\n0\r\n\r\n
	# expect 200 open
	conf_result 174
}

@test "conformance: Transfer-Encoding and chunked: trailer fields after the last chunk are read and the next request answered" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	conf_result 175
}

@test "conformance: Transfer-Encoding and chunked: a chunked body split at every framing boundary is read whole" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5
	# send \r
	# send \nhel
	# send lo\r
	# send \n0\r\n
	# send \r\n
	# expect 200 open
	conf_result 176
}

@test "conformance: Transfer-Encoding and chunked: a chunked body sent one byte per write is read whole" {
	# pause 1
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n
	# trickle 3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n
	# expect 200 open
	conf_result 177
}

@test "conformance: Transfer-Encoding and chunked: the Transfer-Encoding value is matched case-insensitively" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 200 open
	conf_result 178
}

@test "conformance: Transfer-Encoding and chunked: whitespace around the Transfer-Encoding value is accepted" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\t chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 200 open
	conf_result 179
}

@test "conformance: Transfer-Encoding and chunked: a chunked GET is read and the next request answered" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	conf_result 180
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding gzip is a 501 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n
	# expect 501 close
	# header 1 content-type: ~json
	conf_result 181
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding gzip, chunked is a 501 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 501 close
	conf_result 182
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding identity is a 501 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n
	# expect 501 close
	conf_result 183
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding xchunked is a 501 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 501 close
	conf_result 184
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding chunked twice is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 185
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding with chunked before another coding is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 501 close
	conf_result 186
}

@test "conformance: Transfer-Encoding and chunked: an empty Transfer-Encoding is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n
	# expect 400 close
	conf_result 187
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding in an HTTP/1.0 request is a 400 and a close" {
	# send POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 188
}

@test "conformance: Transfer-Encoding and chunked: a chunk size that is not hex is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\ng\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 189
}

@test "conformance: Transfer-Encoding and chunked: an empty chunk-size line is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 190
}

@test "conformance: Transfer-Encoding and chunked: whitespace after a chunk size without an extension is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 191
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension without a name is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 192
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension that starts with an equals sign is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;=x\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 193
}

@test "conformance: Transfer-Encoding and chunked: a NUL in a trailer field is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: a\0b\r\n\r\n
	# expect 400 close
	conf_result 194
}

@test "conformance: Transfer-Encoding and chunked: a negative chunk size is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 195
}

@test "conformance: Transfer-Encoding and chunked: a chunk size with a 0x prefix is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 196
}

@test "conformance: Transfer-Encoding and chunked: a space before the chunk size is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\x205\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 197
}

@test "conformance: Transfer-Encoding and chunked: a chunk size of 17 hex digits is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n
	# expect 413 close
	conf_result 198
}

@test "conformance: Transfer-Encoding and chunked: a chunk-size line ending in a bare LF is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 199
}

@test "conformance: Transfer-Encoding and chunked: chunk data ending in a bare LF is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n
	# expect 400 close
	conf_result 200
}

@test "conformance: Transfer-Encoding and chunked: chunk data ending in a bare CR is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r0\r\n\r\n
	# expect 400 close
	conf_result 201
}

@test "conformance: Transfer-Encoding and chunked: chunk data longer than its size is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 202
}

@test "conformance: Transfer-Encoding and chunked: a last chunk ending in a bare LF is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n
	# expect 400 close
	conf_result 203
}

@test "conformance: Transfer-Encoding and chunked: a bare LF ending the chunked body is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n
	# expect 400 close
	conf_result 204
}

@test "conformance: Transfer-Encoding and chunked: a bare CR inside a chunk extension is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\rc\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 205
}

@test "conformance: Transfer-Encoding and chunked: a bare LF inside a chunk extension is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 206
}

@test "conformance: Transfer-Encoding and chunked: a trailer field with a space before its colon is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n
	# expect 400 close
	conf_result 207
}

@test "conformance: Transfer-Encoding and chunked: an obs-fold in a trailer is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n
	# expect 400 close
	conf_result 208
}

@test "conformance: Transfer-Encoding and chunked: a trailer line ending in a bare LF is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\n\r\n
	# expect 400 close
	conf_result 209
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension longer than any head is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=\{9000*e}\r\nhello\r\n0\r\n\r\n
	# expect 413 close
	conf_result 210
}

@test "conformance: Transfer-Encoding and chunked: a trailer section over --max-body-bytes is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: \{9000*t}\r\n\r\n
	# expect 413 close
	conf_result 211
}

@test "conformance: Transfer-Encoding and chunked: a body of 4096 one-byte chunks is served" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\{4096*1\r\nz\r\n}0\r\n\r\n
	# expect 200 open
	conf_result 212
}

@test "conformance: Transfer-Encoding and chunked: a body of 4097 one-byte chunks is a 413 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\{4097*1\r\nz\r\n}0\r\n\r\n
	# expect 413 close
	conf_result 213
}

@test "conformance: Transfer-Encoding and chunked: a request line where the empty line after the last chunk should be is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 214
}

@test "conformance: Transfer-Encoding and chunked: a chunk size with an underscore is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0_2e\r\n\r\n
	# expect 400 close
	conf_result 215
}

@test "conformance: Transfer-Encoding and chunked: a chunk size with junk after its digits is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1junk\r\nZ\r\n0\r\n\r\n
	# expect 400 close
	conf_result 216
}

@test "conformance: Transfer-Encoding and chunked: a CR CR after a chunk size is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\r;ABCD\r\n34\r\nE\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n0\r\n\r\n
	# expect 400 close
	conf_result 217
}

@test "conformance: Transfer-Encoding and chunked: a tab before a chunk extension's semicolon and around its equals sign is accepted" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\t;\ta\t=\tb\r\nx\r\n0\r\n\r\n
	# expect 200 open
	conf_result 218
}

@test "conformance: Transfer-Encoding and chunked: whitespace before a second chunk extension is accepted" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b ;c\r\nx\r\n0\r\n\r\n
	# expect 200 open
	conf_result 219
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension with two semicolons in a row is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;;a\r\nx\r\n0\r\n\r\n
	# expect 400 close
	conf_result 220
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension ending in a semicolon is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a;\r\nx\r\n0\r\n\r\n
	# expect 400 close
	conf_result 221
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension with an unterminated quoted value is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a="abc;b="def; ghi\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 222
}

@test "conformance: Transfer-Encoding and chunked: a chunk extension with escaped quotes in its quoted value is accepted" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a="x \\"y\\"; \\\\z";b=c\r\nhello\r\n0\r\n\r\n
	# expect 200 open
	conf_result 223
}

@test "conformance: Transfer-Encoding and chunked: a trailer field whose value looks like a request line is a trailer, and the next request is answered" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX:GET /hello HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	# body 2 Hello from dsys!
	conf_result 224
}

@test "conformance: Transfer-Encoding and chunked: an empty list element before chunked is ignored" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n
	# expect 200 open
	conf_result 225
}

@test "conformance: Transfer-Encoding and chunked: Transfer-Encoding chunked, identity is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n
	# expect 501 close
	conf_result 226
}

@test "conformance: Transfer-Encoding and chunked: whitespace after a chunk extension value is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b \r\nx\r\n0\r\n\r\n
	# expect 400 close
	conf_result 227
}

@test "conformance: Transfer-Encoding and chunked: whitespace after a quoted chunk extension value on the last chunk is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0;a="b"\t\r\n\r\n
	# expect 400 close
	conf_result 228
}

@test "conformance: smuggling pairs: Content-Length with Transfer-Encoding is a 400 and a close, and the hidden request is not answered" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n
	# expect 400 close
	conf_result 229
}

@test "conformance: smuggling pairs: Transfer-Encoding before Content-Length is a 400 and a close as well" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 35\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 230
}

@test "conformance: smuggling pairs: Content-Length: 0 with Transfer-Encoding is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n
	# expect 400 close
	conf_result 231
}

@test "conformance: smuggling pairs: an unknown Transfer-Encoding with Content-Length is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: xchunked\r\n\r\nhello
	# expect 400 close
	conf_result 232
}

@test "conformance: smuggling pairs: a Transfer-Encoding with a space before its colon is a 400 and a close, hiding nothing" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 233
}

@test "conformance: smuggling pairs: a Transfer-Encoding folded onto the next line is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 234
}

@test "conformance: smuggling pairs: a Transfer-Encoding with a vertical tab before its value is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n\r\nhello
	# expect 400 close
	conf_result 235
}

@test "conformance: smuggling pairs: a Transfer-Encoding with a NUL after chunked is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\0\r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 236
}

@test "conformance: smuggling pairs: a second Transfer-Encoding field after chunked is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 501 close
	conf_result 237
}

@test "conformance: smuggling pairs: a quoted chunked value is not chunked and is refused" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "chunked"\r\n\r\n5\r\nhello\r\n0\r\n\r\n
	# expect 501 close
	conf_result 238
}

@test "conformance: smuggling pairs: differing duplicate Content-Length hiding a request is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 239
}

@test "conformance: smuggling pairs: a Content-Length with a space before its colon is a 400 and a close, hiding nothing" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length : 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 240
}

@test "conformance: smuggling pairs: a Content-Length folded onto the next line is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 241
}

@test "conformance: smuggling pairs: a request inside a Content-Length body is data and is not answered" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 posted
	conf_result 242
}

@test "conformance: smuggling pairs: a request inside a chunk is data and is not answered" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n23\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n
	# expect 200 open
	conf_result 243
}

@test "conformance: smuggling pairs: a Content-Length in the trailer does not change the framing" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	conf_result 244
}

@test "conformance: smuggling pairs: a Transfer-Encoding in the trailer does not change the framing" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	conf_result 245
}

@test "conformance: smuggling pairs: a request inside a chunk extension is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\nhello\r\n0\r\n\r\n
	# expect 400 close
	conf_result 246
}

@test "conformance: smuggling pairs: a request after a 400 is never answered" {
	# send GET /hello HTTP/1.1\r\nHost a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 247
}

@test "conformance: smuggling pairs: a request after a 501 is never answered" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 501 close
	conf_result 248
}

@test "conformance: smuggling pairs: a request after a 505 is never answered" {
	# send GET /hello HTTP/2.0\r\nHost: a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 505 close
	conf_result 249
}

@test "conformance: smuggling pairs: a request after a bare-LF request is never answered" {
	# send GET /hello HTTP/1.1\nHost: a\n\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 250
}

@test "conformance: smuggling pairs: a chunked HTTP/1.0 request hiding a request is a 400 and a close" {
	# send POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 251
}

@test "conformance: smuggling pairs: a chunk size that overflows 64 bits does not wrap into a short chunk" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n
	# expect 413 close
	conf_result 252
}

@test "conformance: smuggling pairs: a chunk whose size covers a last chunk and a request reads both as data" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2f\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n\r\n0\r\n\r\n
	# expect 200 open
	conf_result 253
}

@test "conformance: smuggling pairs: a CR and a byte after the head's last CRLF is a 400 and a close, hiding nothing" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\rZGET /evil: HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 254
}

@test "conformance: smuggling pairs: non-breaking space bytes around chunked are not whitespace and are refused" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \xa0chunked\xa0\r\n\r\n0\r\n\r\n
	# expect 501 close
	conf_result 255
}

@test "conformance: smuggling pairs: Transfer_Encoding is another field, and Content-Length frames the body" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	# body 2 Hello from dsys!
	conf_result 256
}

@test "conformance: smuggling pairs: an empty list element before chunked with Content-Length is still a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n
	# expect 400 close
	conf_result 257
}

@test "conformance: smuggling pairs: Content-Length then an empty Transfer-Encoding field is refused and the connection closed" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nTransfer-Encoding:\r\n\r\n2\r\nAA\r\n0\r\n\r\n
	# expect 400 close
	conf_result 258
}

@test "conformance: smuggling pairs: a chunked body whose trailer starts with two bytes and no colon is a 400 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nXX\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 400 close
	conf_result 259
}

@test "conformance: limits: a target of exactly --max-uri-bytes is served" {
	# send GET /\{1023*a} HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 404 open
	conf_result 260
}

@test "conformance: limits: a target one byte over --max-uri-bytes is a 414 and a close" {
	# send GET /\{1024*a} HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 414 close
	# header 1 content-type: ~json
	conf_result 261
}

@test "conformance: limits: a query string counts toward --max-uri-bytes" {
	# send GET /hello?\{1100*q} HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 414 close
	conf_result 262
}

@test "conformance: limits: a long target is refused before its request line ends" {
	# send GET /\{2000*a}
	# expect 414 close
	conf_result 263
}

@test "conformance: limits: a head over --max-header-bytes is a 431 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: \{5000*b}\r\n\r\n
	# expect 431 close
	# header 1 content-type: ~json
	conf_result 264
}

@test "conformance: limits: a head over --max-header-bytes is refused before it ends" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: \{5000*b}
	# expect 431 close
	conf_result 265
}

@test "conformance: limits: many short fields over --max-header-bytes are a 431 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\{50*X-Field: \{90*f}\r\n}\r\n
	# expect 431 close
	conf_result 266
}

@test "conformance: limits: a head of exactly --max-header-bytes, through its empty line, is served" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: \{4055*b}\r\n\r\n
	# expect 200 open
	conf_result 267
}

@test "conformance: limits: a head one byte over --max-header-bytes is a 431 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nX-Big: \{4056*b}\r\n\r\n
	# expect 431 close
	conf_result 268
}

@test "conformance: limits: a hundred fields are a 431 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\{100*X-A: b\r\n}\r\n
	# expect 431 close
	conf_result 269
}

@test "conformance: limits: forty fields are served" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\{40*X-A: b\r\n}\r\n
	# expect 200 open
	conf_result 270
}

@test "conformance: limits: a body of exactly --max-body-bytes is served" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n\{4096*z}
	# expect 200 open
	conf_result 271
}

@test "conformance: limits: a Content-Length over --max-body-bytes is a 413 before the body is sent" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4097\r\n\r\n
	# expect 413 close
	conf_result 272
}

@test "conformance: limits: a Content-Length body over --max-body-bytes is a 413 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4097\r\n\r\n\{4097*z}
	# expect 413 close
	# header 1 content-type: ~json
	conf_result 273
}

@test "conformance: limits: a chunked body of exactly --max-body-bytes is served" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n\{4096*z}\r\n0\r\n\r\n
	# expect 200 open
	conf_result 274
}

@test "conformance: limits: a chunk over --max-body-bytes is a 413 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1001\r\n\{4097*z}\r\n0\r\n\r\n
	# expect 413 close
	conf_result 275
}

@test "conformance: limits: chunks that together exceed --max-body-bytes are a 413 and a close" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n\{2048*z}\r\n801\r\n\{2049*z}\r\n0\r\n\r\n
	# expect 413 close
	conf_result 276
}

@test "conformance: limits: a head that stops arriving is a 408 after --header-timeout and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n
	# expect 408 close
	# header 1 content-type: ~json
	conf_result 277
}

@test "conformance: limits: a request line that stops arriving is a 408 after --header-timeout and a close" {
	# send GET /hel
	# expect 408 close
	conf_result 278
}

@test "conformance: limits: a head trickled slower than --header-timeout allows is a 408 however often bytes come" {
	# pause 400
	# trickle GET /
	# expect 408 close
	conf_result 279
}

@test "conformance: limits: a second request that stops arriving is a 408 after the first is answered" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\n
	# expect 200 408 close
	conf_result 280
}

@test "conformance: limits: a keep-alive connection idle longer than --header-timeout still takes a request" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# await
	# pause 1500
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	conf_result 281
}

@test "conformance: pipelining order: two requests in one write get two answers in order" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 open
	# body 1 Hello from dsys!
	# header 2 content-type: ~json
	conf_result 282
}

@test "conformance: pipelining order: ten requests in one write get ten answers" {
	# send \{10*GET /hello HTTP/1.1\r\nHost: a\r\n\r\n}
	# expect 200*10 open
	conf_result 283
}

@test "conformance: pipelining order: fifty requests in one write get fifty answers" {
	# send \{50*GET /hello HTTP/1.1\r\nHost: a\r\n\r\n}
	# expect 200*50 open
	conf_result 284
}

@test "conformance: pipelining order: two hundred requests in one write, more than --max-pipeline, get two hundred answers" {
	# send \{200*GET /hello HTTP/1.1\r\nHost: a\r\n\r\n}
	# expect 200*200 open
	conf_result 285
}

@test "conformance: pipelining order: a thousand requests in one write get a thousand answers" {
	# send \{1000*GET /hello HTTP/1.1\r\nHost: a\r\n\r\n}
	# expect 200*1000 open
	conf_result 286
}

@test "conformance: pipelining order: answers to different routes keep the order of the requests" {
	# send GET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\nPOST /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx
	# expect 404 200 405 200 200 open
	# body 2 Hello from dsys!
	# header 4 content-type: ~json
	# body 5 posted
	conf_result 287
}

@test "conformance: pipelining order: a bad request in the middle of a pipeline gets the earlier answers, then a 400 and a close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost : a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 400 close
	conf_result 288
}

@test "conformance: pipelining order: a 414 in the middle of a pipeline ends it after the earlier answers" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /\{1100*a} HTTP/1.1\r\nHost: a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 414 close
	conf_result 289
}

@test "conformance: pipelining order: a 413 in the middle of a pipeline ends it after the earlier answers" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 413 close
	conf_result 290
}

@test "conformance: pipelining order: a 404 in a pipeline does not end it" {
	# send GET /nope HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 404 200 open
	conf_result 291
}

@test "conformance: pipelining order: a 405 in a pipeline does not end it" {
	# send DELETE /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 405 200 open
	conf_result 292
}

@test "conformance: pipelining order: bodies in a pipeline are skipped, not read as requests" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 200 open
	# body 3 Hello from dsys!
	conf_result 293
}

@test "conformance: pipelining order: a pipeline split at odd places across writes is answered in order" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /he
	# send alth HTTP/1.1\r\nHo
	# send st: a\r\n\r\nGET /nope HTTP/1.1\r
	# send \nHost: a\r\n\r\n
	# expect 200 200 404 open
	conf_result 294
}

@test "conformance: pipelining order: a request with Connection: close in a pipeline is the last one answered" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 close
	conf_result 295
}

@test "conformance: pipelining order: an HTTP/1.0 request in a pipeline is the last one answered" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 200 close
	conf_result 296
}

@test "conformance: pipelining order: a client that half-closes after a pipeline still gets every answer" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# shut
	# expect 200 200 200 close
	conf_result 297
}

@test "conformance: pipelining order: a client that half-closes after one request still gets its answer" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# shut
	# expect 200 close
	# body 1 Hello from dsys!
	conf_result 298
}

@test "conformance: connection management: an HTTP/1.1 request keeps the connection open by default" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	conf_result 299
}

@test "conformance: connection management: an HTTP/1.1 request with Connection: close is answered and the connection closed" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n
	# expect 200 close
	# header 1 connection: ~close
	conf_result 300
}

@test "conformance: connection management: the Connection close option is matched case-insensitively" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n
	# expect 200 close
	conf_result 301
}

@test "conformance: connection management: close among other Connection options closes" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n
	# expect 200 close
	conf_result 302
}

@test "conformance: connection management: close in a second Connection field closes" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: x-foo\r\nConnection: close\r\n\r\n
	# expect 200 close
	conf_result 303
}

@test "conformance: connection management: an HTTP/1.0 request closes the connection by default" {
	# send GET /hello HTTP/1.0\r\n\r\n
	# expect 200 close
	conf_result 304
}

@test "conformance: connection management: an HTTP/1.0 request with Connection: keep-alive keeps it open" {
	# send GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n
	# expect 200 open
	# header 1 connection: ~keep-alive
	conf_result 305
}

@test "conformance: connection management: HTTP/1.0 keep-alive requests in one write are answered until one without keep-alive" {
	# send GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hello HTTP/1.0\r\n\r\nGET /smuggled HTTP/1.0\r\n\r\n
	# expect 200 200 200 close
	conf_result 306
}

@test "conformance: connection management: an HTTP/1.0 keep-alive is matched case-insensitively" {
	# send GET /hello HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n
	# expect 200 open
	conf_result 307
}

@test "conformance: connection management: an HTTP/1.0 request with Connection: close closes" {
	# send GET /hello HTTP/1.0\r\nConnection: close\r\n\r\n
	# expect 200 close
	conf_result 308
}

@test "conformance: connection management: an HTTP/1.1 request with Connection: keep-alive stays open" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n
	# expect 200 open
	conf_result 309
}

@test "conformance: connection management: an answer to HTTP/1.0 is framed without chunked coding" {
	# send GET /hello HTTP/1.0\r\n\r\n
	# expect 200 close
	# noheader 1 transfer-encoding
	# body 1 Hello from dsys!
	conf_result 310
}

@test "conformance: connection management: a 404 keeps an HTTP/1.1 connection open" {
	# send GET /nope HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 404 open
	conf_result 311
}

@test "conformance: connection management: an answer carries a Date field" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# header 1 date: ~GMT
	conf_result 312
}

@test "conformance: connection management: close after an empty list element in Connection closes" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: ,close\r\n\r\n
	# expect 200 close
	conf_result 313
}

@test "conformance: connection management: closer in Connection is not close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nConnection: closer\r\n\r\n
	# expect 200 open
	conf_result 314
}

@test "conformance: connection management: Proxy-Connection: close is not Connection: close" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nProxy-Connection: close\r\n\r\n
	# expect 200 open
	conf_result 315
}

@test "conformance: connection management: an HTTP/1.0 Connection: keep-alives is not keep-alive" {
	# send GET /hello HTTP/1.0\r\nConnection: keep-alives\r\n\r\n
	# expect 200 close
	conf_result 316
}

@test "conformance: connection management: an HTTP/1.0 request with keep-alive and close closes" {
	# send GET /hello HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n
	# expect 200 close
	conf_result 317
}

@test "conformance: HEAD/204/304: HEAD gets the headers of GET and no body" {
	# send HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# head 1
	# expect 200 open
	# header 1 content-length: 16
	# header 1 content-type: ~text/plain
	conf_result 318
}

@test "conformance: HEAD/204/304: HEAD then GET in one write: the GET's body is the first body on the wire" {
	# send HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# head 1
	# expect 200 200 open
	# header 1 content-length: 16
	# body 2 Hello from dsys!
	conf_result 319
}

@test "conformance: HEAD/204/304: GET, HEAD, GET in one write are answered in order with one body each for the GETs" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nHEAD /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# head 2
	# expect 200 200 200 open
	# body 1 Hello from dsys!
	# header 2 content-length: 16
	# body 3 Hello from dsys!
	conf_result 320
}

@test "conformance: HEAD/204/304: HEAD of a JSON route gets its Content-Type and Content-Length and no body" {
	# send HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n
	# head 1
	# expect 200 open
	# header 1 content-type: ~json
	# header 1 content-length
	conf_result 321
}

@test "conformance: HEAD/204/304: HEAD of an unknown path is a 404 without a body" {
	# send HEAD /nope HTTP/1.1\r\nHost: a\r\n\r\n
	# head 1
	# expect 404 open
	conf_result 322
}

@test "conformance: HEAD/204/304: HEAD of a POST-only route is a 405 without a body" {
	# send HEAD /echo HTTP/1.1\r\nHost: a\r\n\r\n
	# head 1
	# expect 405 open
	# header 1 allow: ~POST
	conf_result 323
}

@test "conformance: HEAD/204/304: HEAD over HTTP/1.0 closes after the headers" {
	# send HEAD /hello HTTP/1.0\r\n\r\n
	# head 1
	# expect 200 close
	# header 1 content-length: 16
	conf_result 324
}

@test "conformance: HEAD/204/304: HEAD of /metrics gets no body" {
	# send HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n
	# head 1
	# expect 200 open
	conf_result 325
}

@test "conformance: HEAD/204/304: the Allow of a GET route names HEAD too" {
	# send PUT /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n
	# expect 405 open
	# header 1 allow: ~HEAD
	conf_result 326
}

@test "conformance: HEAD/204/304: OPTIONS of a route is a 204 naming its methods in Allow" {
	# send OPTIONS /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 204 open
	# header 1 allow: ~GET
	conf_result 327
}

@test "conformance: HEAD/204/304: OPTIONS of a POST-only route is a 204 whose Allow names POST" {
	# send OPTIONS /echo HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 204 open
	# header 1 allow: ~POST
	conf_result 328
}

@test "conformance: HEAD/204/304: OPTIONS * is a 204" {
	# send OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 204 open
	conf_result 329
}

@test "conformance: HEAD/204/304: a 204 carries neither Content-Length nor Transfer-Encoding" {
	# send OPTIONS /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 204 open
	# noheader 1 content-length
	# noheader 1 transfer-encoding
	conf_result 330
}

@test "conformance: HEAD/204/304: a 204 then a GET in one write: the GET's answer follows the 204's head at once" {
	# send OPTIONS /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 204 200 open
	# body 2 Hello from dsys!
	conf_result 331
}

@test "conformance: HEAD/204/304: OPTIONS of an unknown path is a 404" {
	# send OPTIONS /nope HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 404 open
	conf_result 332
}

@test "conformance: HEAD/204/304: If-None-Match: * on a GET of a route is a 304 without a body" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\n\r\n
	# expect 304 open
	# noheader 1 transfer-encoding
	conf_result 333
}

@test "conformance: HEAD/204/304: a 304 then a GET in one write: the GET's answer follows the 304's head at once" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 304 200 open
	# body 2 Hello from dsys!
	conf_result 334
}

@test "conformance: HEAD/204/304: If-None-Match: * on a HEAD is a 304" {
	# send HEAD /hello HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\n\r\n
	# head 1
	# expect 304 open
	conf_result 335
}

@test "conformance: HEAD/204/304: If-None-Match with an entity tag that does not match is a 200 with the body" {
	# send GET /hello HTTP/1.1\r\nHost: a\r\nIf-None-Match: "no-such-tag"\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 336
}

@test "conformance: Expect: 100-continue: Expect: 100-continue gets a 100 before the body is sent, then the answer" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n
	# await
	# send hello
	# expect 100 200 open
	# body 2 posted
	conf_result 337
}

@test "conformance: Expect: 100-continue: Expect: 100-continue is matched case-insensitively" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-Continue\r\n\r\n
	# await
	# send hello
	# expect 100 200 open
	conf_result 338
}

@test "conformance: Expect: 100-continue: Expect: 100-continue with a chunked body gets a 100 first" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n
	# await
	# send 5\r\nhello\r\n0\r\n\r\n
	# expect 100 200 open
	conf_result 339
}

@test "conformance: Expect: 100-continue: Expect: 100-continue with a body over the limit gets a 413 and no 100" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n
	# expect 413 close
	conf_result 340
}

@test "conformance: Expect: 100-continue: Expect: 100-continue with a chunked body gets the 100, then a 413 and a close once the body is over the limit" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n
	# await
	# send 1001\r\n\{4097*z}\r\n0\r\n\r\n
	# expect 100 413 close
	conf_result 341
}

@test "conformance: Expect: 100-continue: Expect: 100-continue with a body sent at once is answered once, with no 100 after it" {
	# whole
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello
	# expect 200 open
	conf_result 342
}

@test "conformance: Expect: 100-continue: Expect: 100-continue in HTTP/1.0 is ignored: no 100" {
	# send POST /echo HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello
	# expect 200 close
	conf_result 343
}

@test "conformance: Expect: 100-continue: a pipelined request after an Expect: 100-continue request is answered in order" {
	# send POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n
	# await
	# send helloGET /hello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 100 200 200 open
	# body 3 Hello from dsys!
	conf_result 344
}

@test "conformance: path normalisation: GET /%68ello is GET /hello: escapes of unreserved characters are decoded before routing (RFC 3986 6.2.2.2)" {
	# send GET /%68ello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 345
}

@test "conformance: path normalisation: escapes of unreserved characters match in either case of hex digit, with a query after the path" {
	# send GET /h%65%6C%6c%6F?x=%2F HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 346
}

@test "conformance: path normalisation: an absolute-form target is normalised too" {
	# send GET http://a/%68ello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 200 open
	# body 1 Hello from dsys!
	conf_result 347
}

@test "conformance: path normalisation: %2F is a reserved escape: /hello%2F is not /hello/ and not decoded, 404" {
	# send GET /hello%2F HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 404 open
	conf_result 348
}

@test "conformance: path normalisation: a path of only escapes of reserved characters is left as it is: 404" {
	# send GET /%2Fhello HTTP/1.1\r\nHost: a\r\n\r\n
	# expect 404 open
	conf_result 349
}

@test "conformance: every case that passes still passes with its writes cut at random places" {
	local dir=$BATS_FILE_TMPDIR/split f n bad=
	mkdir -p "$dir"
	"$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$CONF_PORT" --split 1 \
		--table "$BATS_TEST_DIRNAME/conformance/cases.txt" --results "$dir" || true
	for f in "$BATS_FILE_TMPDIR"/results/*.pass; do
		n=$(basename "$f" .pass)
		if [ ! -e "$dir/$n.pass" ]; then
			echo "case $n, split (send.py --split 1):"
			cat "$dir/$n.fail" 2>/dev/null
			bad=1
		fi
	done
	[ -z "$bad" ]
}

# The sender itself must be able to fail: each of these cases is wrong on
# purpose, and send.py must say so (exit 1), or reject the case (exit 2).
@test "conformance: send.py fails a case whose expected status is wrong" {
	run -1 conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 404 open
CASE
}

@test "conformance: send.py fails a case that expects open when the server closes" {
	run -1 conf <<'CASE'
send GET /hello HTTP/1.0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: send.py fails a case that expects close when the server keeps the connection" {
	run -1 "$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$CONF_PORT" --timeout 0.5 <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 close
CASE
}

@test "conformance: send.py fails a case when an answer comes that it did not expect" {
	run -1 conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n
expect 200 close
CASE
}

@test "conformance: send.py fails a case whose header check does not hold" {
	run -1 conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
header 1 content-length: 17
CASE
}

@test "conformance: send.py rejects a malformed case with exit 2" {
	run -2 conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 maybe
CASE
}

@test "conformance: the server is still running and serving after every case" {
	kill -0 "$(cat "$BATS_FILE_TMPDIR/serve.pid")"
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
CASE
}
