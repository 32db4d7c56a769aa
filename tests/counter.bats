#!/usr/bin/env bats
# dsys-counter: the service and the CLI on mem: and file:.  The Redis and
# Redis Cluster parts are in counter_redis.bats.

load helpers
load counter_helpers
bats_require_minimum_version 1.5.0

setup() {
	dsys_setup
	export DSYS_LOG_LEVEL=warn
}
teardown() {
	dsys_teardown
	if [ -n "${RO_DIR:-}" ]; then rm -rf "$RO_DIR"; fi
}

@test "counter: options go before or after the subcommand; one that does not apply to it is refused with exit 2" {
	run --separate-stderr dsys-counter --store mem: list
	assert_success
	run --separate-stderr dsys-counter -s mem: --by 5 incr k
	assert_output '{"key":"k","value":5}'
	run --separate-stderr dsys-counter --store=mem: set -- k -5
	assert_output '{"key":"k","value":-5}'
	run -2 --separate-stderr dsys-counter serve --by 5
	assert_equal "$stderr" "$(printf '%s\n' 'dsys-counter: --by does not apply to serve' "Try 'dsys-counter serve --help' for more information.")"
	run -2 --separate-stderr dsys-counter get k --listen 127.0.0.1:0
	[[ $stderr == *'--listen does not apply to get'* ]]
	run -2 --separate-stderr dsys-counter --prefix a incr k
	[[ $stderr == *'--prefix does not apply to incr'* ]]
	run -2 --separate-stderr dsys-counter --store mem: frobnicate
	[[ $stderr == *"unknown subcommand 'frobnicate'"* ]]
	# each subcommand lists its own options (the completions ask this)
	run dsys-counter incr --list-options
	assert_line -- --by
	assert_line -- --window
	refute_line -- --listen
	refute_line -- --prefix
	run dsys-counter serve --list-options
	assert_line -- --listen
	assert_line -- --io
	refute_line -- --by
	refute_line -- --server
}

@test "counter: --help, --version and --list-options answer; no subcommand is a usage error" {
	run dsys-counter --help
	assert_success
	assert_output --partial 'usage: dsys-counter'
	assert_output --partial 'incr -'
	run dsys-counter --version
	assert_success
	run dsys-counter --list-options
	assert_success
	assert_line -- --store
	assert_line -- --server
	run dsys-counter
	[ "$status" -eq 2 ]
	run dsys-counter frobnicate
	[ "$status" -eq 2 ]
	assert_output --partial "unknown subcommand 'frobnicate'"
	run dsys-counter incr
	[ "$status" -eq 2 ]
	run dsys-counter serve --store redlock://127.0.0.1:1
	[ "$status" -eq 2 ]
	assert_output --partial 'holds no counters'
	# an unknown scheme: the message lists what dsys-counter takes, only that
	run -2 --separate-stderr dsys-counter get a --store ftp://x
	assert_equal "$stderr" "dsys-counter: invalid store 'ftp://x': unknown store 'ftp'; dsys-counter takes mem:, file:DIR, redis://HOST:PORT[/DB] or redis-cluster://H:P,H:P"
}

@test "counter: serve prints a ready line naming its store and answers /health" {
	serve --store mem:
	[[ $SERVER_READY == *'"store":"mem:"'* ]]
	run http_get "$SERVER_PORT" /health
	assert_line 'HTTP/1.1 200 OK'
}

@test "counter: POST /incr counts, by defaults to 1 and may be negative; an array answers in order" {
	serve
	run post /incr '{"key":"hits"}'
	assert_output '200 {"key":"hits","value":1}'
	run post /incr '{"by":41,"key":"hits"}'
	assert_output '200 {"key":"hits","value":42}'
	run post /incr '{"key":"hits","by":-50}'
	assert_output '200 {"key":"hits","value":-8}'
	run post /incr '[{"key":"a"},{"key":"hits","by":8},{"key":"a","by":2},{"key":"caf\u00e9"}]'
	assert_output '200 [{"key":"a","value":1},{"key":"hits","value":0},{"key":"a","value":3},{"key":"café","value":1}]'
	run post /incr '[]'
	assert_output '200 []'
}

@test "counter: bad input is a 400 naming the problem, and the counter is unchanged" {
	serve
	post /incr '{"key":"k","by":5}' >/dev/null
	run post /incr '{"key":"k",'
	assert_output --partial '400 {"error":"malformed JSON'
	run post /incr '{"by":1}'
	assert_output '400 {"error":"missing key"}'
	run post /incr '{"key":7}'
	assert_output '400 {"error":"key must be a string"}'
	run post /incr '{"key":""}'
	assert_output '400 {"error":"key is empty"}'
	run post /incr "{\"key\":\"$(printf 'x%.0s' {1..513})\"}"
	assert_output '400 {"error":"key is longer than 512 bytes"}'
	run post /incr '{"key":"k","by":1.5}'
	assert_output '400 {"error":"by must be an integer"}'
	run post /incr '{"key":"k","by":"2"}'
	assert_output '400 {"error":"by must be an integer"}'
	run post /incr '{"key":"k","by":9223372036854775808}'
	assert_output '400 {"error":"by is outside the int64 range"}'
	run post /incr '{"key":"k","by":9223372036854775807}'
	assert_output '400 {"key":"k","error":"increment would overflow int64"}'
	# one bad item in an array applies none of them
	run post /incr '[{"key":"k"},{"key":3}]'
	assert_output '400 {"error":"item 1: key must be a string"}'
	# text after the value is refused by POST and PUT alike
	run post /incr '{"key":"k"} x'
	assert_output '400 {"error":"malformed JSON: text after the object"}'
	run req PUT /counters/k '{"value":9}x'
	assert_output '400 {"error":"malformed JSON: text after the object"}'
	run req PUT /counters/k '{"value":5} '
	assert_output '200 {"key":"k","value":5}'
	run req GET /counters/k
	assert_output '200 {"key":"k","value":5}'
	# a key of exactly 512 bytes is fine
	run post /incr "{\"key\":\"$(printf 'y%.0s' {1..512})\"}"
	assert_output --partial '"value":1}'
}

@test "counter: GET, PUT and DELETE /counters/KEY, and GET /counters?prefix= as JSON lines" {
	serve
	run req GET /counters/nope
	assert_output '404 {"key":"nope","error":"not found"}'
	run req PUT /counters/user:1 '{"value":-9223372036854775808}'
	assert_output '200 {"key":"user:1","value":-9223372036854775808}'
	run req PUT /counters/user:2 '{"value":"x"}'
	assert_output '400 {"error":"value must be an integer"}'
	post /incr '{"key":"user:2","by":2}' >/dev/null
	post /incr '{"key":"other"}' >/dev/null
	run req GET /counters/user%3A2
	assert_output '200 {"key":"user:2","value":2}'
	run curl -s "$URL/counters?prefix=user%3A"
	assert_output "$(printf '%s\n' '{"key":"user:1","value":-9223372036854775808}' '{"key":"user:2","value":2}')"
	run req DELETE /counters/user:1
	assert_output '200 {"key":"user:1","deleted":true,"value":-9223372036854775808}'
	run req DELETE /counters/user:1
	assert_output '404 {"key":"user:1","error":"not found"}'
	run curl -s "$URL/counters"
	assert_output "$(printf '%s\n' '{"key":"other","value":1}' '{"key":"user:2","value":2}')"
}

@test "counter: the CLI talks to a running service with --server (and DSYS_SERVER)" {
	serve
	run --separate-stderr dsys-counter incr alice --server "$URL"
	assert_success
	assert_output '{"key":"alice","value":1}'
	run dsys-counter incr alice --by 10 --server "$URL"
	assert_output '{"key":"alice","value":11}'
	DSYS_SERVER=$URL run dsys-counter get alice
	assert_success
	assert_output '{"key":"alice","value":11}'
	run dsys-counter get bob --server "$URL"
	[ "$status" -eq 1 ]
	assert_output '{"key":"bob","error":"not found"}'
	run dsys-counter set bob 5 --server "$URL"
	assert_output '{"key":"bob","value":5}'
	run dsys-counter list --prefix b --server "$URL"
	assert_output '{"key":"bob","value":5}'
	run dsys-counter del bob --server "$URL"
	assert_output '{"key":"bob","deleted":true,"value":5}'
	run dsys-counter del bob --server "$URL"
	[ "$status" -eq 1 ]
}

@test "counter: incr - pipes keys and JSON lines through, one result each, in input order" {
	serve
	run --separate-stderr bash -c "printf 'alice\nbob\n\nalice\n{\"key\":\"bob\",\"by\":-3}\n{\"key\":\n' |
		dsys-counter incr - --server '$URL' --window 2"
	[ "$status" -eq 2 ]
	assert_output "$(printf '%s\n' '{"key":"alice","value":1}' '{"key":"bob","value":1}' \
		'{"key":"alice","value":2}' '{"key":"bob","value":-2}' \
		'{"line":6,"error":"malformed JSON: expected {\"key\":\"K\",\"by\":N}"}')"
	# the same through a store, directly
	d=$(dsys_tmp)
	run bash -c "seq 1 300 | sed 's/^/k/' | dsys-counter incr - --store file:$d/c --window 7 | wc -l"
	assert_output 300
	run dsys-counter get k300 --store "file:$d/c"
	assert_output '{"key":"k300","value":1}'
	# input that cannot be read is not a success
	run -2 --separate-stderr dsys-counter incr - --store mem: <"$d"
	[[ "$stderr" == *"cannot read stdin: Is a directory"* ]]
	# text after a line's object is an error for that line, as in a body
	run --separate-stderr bash -c "printf '{\"key\":\"a\"} x\n{\"key\":\"a\"} \n' | dsys-counter incr - --store mem:"
	[ "$status" -eq 2 ]
	assert_output "$(printf '%s\n' '{"line":1,"error":"malformed JSON: text after the object"}' '{"key":"a","value":1}')"
}

@test "counter: the CLI exits 3 when the service or the store cannot be reached" {
	port=$(free_port)
	run dsys-counter incr a --server "http://127.0.0.1:$port"
	[ "$status" -eq 3 ]
	assert_output --partial 'cannot reach'
	run dsys-counter incr a --store "redis://127.0.0.1:$port" --backend-timeout 500ms
	[ "$status" -eq 3 ]
	run dsys-counter incr a --store 'mysql://x'
	[ "$status" -eq 2 ]
	run dsys-counter set a notanumber
	[ "$status" -eq 2 ]
	# a server at --server that answers, but not as a counter service
	start_server other dsys-serve --listen 127.0.0.1:0 --threads 1 --route 'GET /counters/a=hello'
	run -3 --separate-stderr dsys-counter get a --server "http://127.0.0.1:$SERVER_PORT"
	assert_output '{"key":"a","error":"unexpected answer from the backend"}'
}

@test "counter: mem: M concurrent clients making N increments leave exactly N, answers a permutation of 1..N" {
	serve --store mem:
	"$DSYS_PY" "$BATS_TEST_DIRNAME/counter_load.py" "$SERVER_PORT" perm 8 2000 "$BATS_TEST_TMPDIR/vals"
	run permutation "$BATS_TEST_TMPDIR/vals" 2000
	assert_success
	run dsys-counter get perm --server "$URL"
	assert_output '{"key":"perm","value":2000}'
}

@test "counter: file: M concurrent clients making N increments leave exactly N, answers a permutation of 1..N" {
	d=$(dsys_tmp)
	serve --store "file:$d/c"
	"$DSYS_PY" "$BATS_TEST_DIRNAME/counter_load.py" "$SERVER_PORT" perm 8 2000 "$BATS_TEST_TMPDIR/vals"
	run permutation "$BATS_TEST_TMPDIR/vals" 2000
	assert_success
	stop_server "$SERVER_PID"
	run dsys-counter get perm --store "file:$d/c"
	assert_output '{"key":"perm","value":2000}'
}

@test "counter: file: kill -9 under load, then a restart: every acknowledged increment is there" {
	d=$(dsys_tmp)
	serve --store "file:$d/c"
	"$DSYS_PY" "$BATS_TEST_DIRNAME/counter_load.py" "$SERVER_PORT" k 8 1000000 "$BATS_TEST_TMPDIR/acked" \
		"$BATS_TEST_TMPDIR/errors" 3>&- &
	load=$!
	for ((i = 0; i < 200; i++)); do
		[ "$(wc -l <"$BATS_TEST_TMPDIR/acked")" -ge 300 ] && break
		sleep 0.05
	done
	[ "$(wc -l <"$BATS_TEST_TMPDIR/acked")" -ge 300 ]   # the crash comes under load
	kill -KILL "$SERVER_PID"
	wait "$load"
	acked=$(wc -l <"$BATS_TEST_TMPDIR/acked")
	max=$(sort -n "$BATS_TEST_TMPDIR/acked" | tail -1)
	[ "$acked" -ge 300 ]
	[ "$(cat "$BATS_TEST_TMPDIR/errors")" -gt 0 ]
	serve --store "file:$d/c"
	value=$(curl -s "$URL/counters/k" | sed 's/.*"value":\([0-9-]*\).*/\1/')
	echo "acked $acked, max acked $max, recovered $value"
	[ "$value" -ge "$max" ]
	[ "$value" -ge "$acked" ]
	# and the answers before the crash were distinct
	[ "$(sort -n "$BATS_TEST_TMPDIR/acked" | uniq | wc -l)" -eq "$acked" ]
}

@test "counter: file: a torn record at the end of the log is dropped, the rest recovered" {
	d=$(dsys_tmp)
	printf 'a\na\nb\n' | dsys-counter incr - --store "file:$d/c" >/dev/null
	size=$(stat -c %s "$d/c/log")
	printf '\x01\x02\x03\x04\x20\x00\x00\x00\x01abc' >>"$d/c/log"   # a record cut short
	run --separate-stderr dsys-counter get a --store "file:$d/c"
	assert_output '{"key":"a","value":2}'
	[[ $stderr == *'dropping a torn record at byte 54'* ]]
	# get reads the store read-only: the torn tail stays for the next writer
	[ "$(stat -c %s "$d/c/log")" -eq "$((size + 12))" ]
	run --separate-stderr dsys-counter incr b --store "file:$d/c"
	assert_output '{"key":"b","value":2}'
	[[ $stderr == *'dropping a torn record at byte 54'* ]]
	run --separate-stderr dsys-counter get a --store "file:$d/c"
	assert_output '{"key":"a","value":2}'
	assert_equal "$stderr" ''
	# damage in the middle is refused, not silently dropped
	printf 'X' | dd of="$d/c/log" bs=1 seek=12 conv=notrunc 2>/dev/null
	run dsys-counter get a --store "file:$d/c"
	[ "$status" -ne 0 ]
	assert_output --partial 'damaged'
}

@test "counter: file: compaction keeps the log small and the counts exact" {
	d=$(dsys_tmp)
	serve --store "file:$d/c" --compact-bytes 4k
	for i in 1 2 3; do
		seq 1 400 | sed 's/^/key/' | dsys-counter incr - --server "$URL" >/dev/null
	done
	run req DELETE /counters/key1
	assert_output --partial '"deleted":true'
	stop_server "$SERVER_PID"
	[ "$(stat -c %s "$d/c/log")" -lt 40000 ]   # 1200 records would be ~25 bytes each
	[ ! -e "$d/c/log.tmp" ]
	run dsys-counter get key400 --store "file:$d/c"
	assert_output '{"key":"key400","value":3}'
	run dsys-counter get key1 --store "file:$d/c"
	[ "$status" -eq 1 ]
	[ "$(dsys-counter list --store "file:$d/c" | wc -l)" -eq 399 ]
}

@test "counter: file: a store in use by a running service is refused with exit 1 after --wait, by the CLI and by serve" {
	d=$(dsys_tmp)
	serve --store "file:$d/c"
	local t0=$SECONDS
	run dsys-counter get a --store "file:$d/c" --wait 300ms
	[ "$status" -eq 1 ]
	assert_output --partial "'$d/c/lock' is still in use by another process after --wait 300ms"
	[ $((SECONDS - t0)) -le 5 ]
	run dsys-counter get a --store "file:$d/c" --wait 0
	[ "$status" -eq 1 ]
	assert_output --partial 'in use by another process'
	run dsys-counter serve --listen 127.0.0.1:0 --store "file:$d/c" --wait 0
	[ "$status" -eq 1 ]
	assert_output --partial 'in use by another process'
}

@test "counter: file: concurrent CLI runs on one store take turns (they wait for its lock) and every increment counts" {
	d=$(dsys_tmp)
	run bash -c "seq 1 20 | xargs -P4 -I{} dsys-counter incr k --store 'file:$d/par' 2>&1 >/dev/null"
	assert_success
	assert_output ''
	run dsys-counter get k --store "file:$d/par"
	assert_output '{"key":"k","value":20}'
}

@test "counter: mem: a full table answers 507 and keeps serving the keys it has" {
	serve --store mem: --max-keys 2
	post /incr '{"key":"a"}' >/dev/null
	post /incr '{"key":"b"}' >/dev/null
	run post /incr '{"key":"c"}'
	assert_output --partial '507 {"key":"c","error":"too many keys'
	run post /incr '{"key":"a"}'
	assert_output '200 {"key":"a","value":2}'
}

@test "counter: SIGTERM drains and exits 0" {
	serve
	stop_server "$SERVER_PID"
}

@test "counter: keys with '/', '%', '+', spaces and UTF-8 go through --server and come back the same" {
	serve
	local k='a/b %41+c é?&='
	run --separate-stderr dsys-counter set "$k" 7 --server "$URL"
	assert_success
	assert_output '{"key":"a/b %41+c é?&=","value":7}'
	run --separate-stderr dsys-counter get "$k" --server "$URL"
	assert_success
	assert_output '{"key":"a/b %41+c é?&=","value":7}'
	run --separate-stderr dsys-counter list --prefix 'a/b %4' --server "$URL"
	assert_output '{"key":"a/b %41+c é?&=","value":7}'
	run --separate-stderr dsys-counter get 'a/b A+c é?&=' --server "$URL"
	[ "$status" -eq 1 ]
}

@test "counter: --server reads an error by its text: an overflow is exit 2, a refused request is not an overflow" {
	serve
	dsys-counter set big 9223372036854775807 --server "$URL"
	run --separate-stderr dsys-counter incr big --server "$URL"
	[ "$status" -eq 2 ]
	assert_output '{"key":"big","error":"increment would overflow int64"}'
	fake_service 400 '{"error":"some other problem"}'
	run --separate-stderr dsys-counter incr k --server "$URL"
	[ "$status" -eq 2 ]
	assert_output '{"key":"k","error":"the service refused the request"}'
	[[ $stderr == *'some other problem'* ]]
}

@test "counter: a write to stdout that fails is 'write error' and exit 1; a reader that leaves (EPIPE) stays quiet" {
	[ -w /dev/full ] || skip "no /dev/full"
	run -1 --separate-stderr bash -c 'dsys-counter set a 1 --store mem: >/dev/full'
	assert_equal "$stderr" 'dsys-counter: write error: No space left on device'
	run -1 --separate-stderr bash -c 'dsys-counter get nosuch --store mem: >/dev/full'
	assert_equal "$stderr" 'dsys-counter: write error: No space left on device'
	run -1 --separate-stderr bash -c 'dsys-counter --help >/dev/full'
	assert_equal "$stderr" 'dsys-counter: write error: No space left on device'
	run -1 --separate-stderr bash -c 'echo k | dsys-counter incr - --store mem: >/dev/full'
	assert_equal "$stderr" 'dsys-counter: write error: No space left on device'
	# EPIPE: the reader took one line and left
	run --separate-stderr bash -c 'seq 1 200000 | dsys-counter incr - --store mem: | head -1; echo "status ${PIPESTATUS[1]}"'
	assert_output "$(printf '%s\n' '{"key":"1","value":1}' 'status 0')"
	assert_equal "$stderr" ''
}

@test "counter: --server pointed at a server that is not dsys-counter is exit 3, 'unexpected answer', never 'not found'" {
	start_server serve dsys-serve --listen 127.0.0.1:0
	URL="http://127.0.0.1:$SERVER_PORT"
	run --separate-stderr dsys-counter incr a --server "$URL"
	[ "$status" -eq 3 ]
	assert_output '{"key":"a","error":"unexpected answer from the backend"}'
	[[ $stderr == *"unexpected answer from $URL: HTTP 404 to POST /incr is not what a dsys-counter service answers"* ]]
	run --separate-stderr dsys-counter get a --server "$URL"
	[ "$status" -eq 3 ]
	assert_output '{"key":"a","error":"unexpected answer from the backend"}'
	run --separate-stderr dsys-counter list --server "$URL"
	[ "$status" -eq 3 ]
	assert_output ''
	[[ $stderr == *'unexpected answer from'* ]]
	run --separate-stderr bash -c "printf 'a\nb\n' | dsys-counter incr - --server '$URL'"
	[ "$status" -eq 3 ]
	assert_output "$(printf '%s\n' '{"key":"a","error":"unexpected answer from the backend"}' '{"key":"b","error":"unexpected answer from the backend"}')"
	# a 200 that is no counter answer either
	fake_service 200 '{"status":"ok"}'
	run --separate-stderr dsys-counter get a --server "$URL"
	[ "$status" -eq 3 ]
	run --separate-stderr dsys-counter list --server "$URL"
	[ "$status" -eq 3 ]
}

@test "counter: bash completion offers each subcommand's own options, --io values, and subcommands after options" {
	comp() {
		bash -c '. "$1/../completions/bash/dsys-counter"; shift
			COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
			_dsys_counter; printf "%s\n" "${COMPREPLY[@]}"' _ "$BATS_TEST_DIRNAME" "$@"
	}
	run comp dsys-counter incr --
	assert_line -- --by
	assert_line -- --window
	refute_line -- --listen
	refute_line -- --max-batch
	run comp dsys-counter serve --
	assert_line -- --listen
	refute_line -- --by
	run comp dsys-counter serve --io ''
	assert_output "$(printf '%s\n' auto uring uv)"
	run comp dsys-counter --store mem: l
	assert_output 'list'
	run comp dsys-counter --store mem: list --p
	assert_output -- '--prefix'
}

@test "counter: zsh completion offers each subcommand's own options" {
	command -v zsh >/dev/null || fail "zsh is not installed (make deps installs it)"
	run zsh -fc '
		compadd() {
			if [[ $1 == -a ]]; then print -rl -- ${(P)2}; return; fi
			local a; for a in "$@"; do [[ $a == -* ]] || print -r -- "$a"; done
		}
		_describe() { print describe; }
		_message() { print message; }
		_call_program() { shift; "$@"; }
		words=(dsys-counter incr --); CURRENT=3; PREFIX=--
		source "$1/../completions/zsh/_dsys-counter"' _ "$BATS_TEST_DIRNAME"
	assert_success
	assert_line -- --by
	refute_line -- --listen
	run zsh -fc '
		compadd() { local a; for a in "$@"; do [[ $a == -* ]] || print -r -- "$a"; done; }
		words=(dsys-counter serve --io ""); CURRENT=4; PREFIX=
		source "$1/../completions/zsh/_dsys-counter"' _ "$BATS_TEST_DIRNAME"
	assert_output "$(printf '%s\n' auto uring uv)"
}

@test "counter: incr - --by N is the increment of every line that gives no by of its own" {
	serve
	run --separate-stderr bash -c "printf 'a\n{\"key\":\"a\"}\n{\"key\":\"a\",\"by\":-1}\n' | dsys-counter incr - --by 5 --store mem:"
	assert_success
	assert_output "$(printf '%s\n' '{"key":"a","value":5}' '{"key":"a","value":10}' '{"key":"a","value":9}')"
	run --separate-stderr bash -c "printf 'a\n{\"key\":\"a\",\"by\":2}\n' | dsys-counter incr - --by 5 --server '$URL'"
	assert_success
	assert_output "$(printf '%s\n' '{"key":"a","value":5}' '{"key":"a","value":7}')"
}

@test "counter: a key that is not valid UTF-8 is refused the same way on every path, and nothing is stored" {
	serve
	run -2 --separate-stderr dsys-counter incr $'a\xffb' --store mem:
	[[ $stderr == *'key is not valid UTF-8'* ]]
	run -2 --separate-stderr dsys-counter incr $'a\xffb' --server "$URL"
	[[ $stderr == *'key is not valid UTF-8'* ]]
	run -2 --separate-stderr dsys-counter list --prefix $'\xc3' --server "$URL"
	[[ $stderr == *'prefix is not valid UTF-8'* ]]
	run -2 --separate-stderr bash -c "printf 'a\xffb\n\xed\xa0\x80\n' | dsys-counter incr - --server '$URL'"
	assert_output "$(printf '%s\n' '{"line":1,"error":"key is not valid UTF-8"}' '{"line":2,"error":"key is not valid UTF-8"}')"
	run req GET /counters/a%FFb
	assert_output '400 {"error":"key is not valid UTF-8"}'
	run req PUT /counters/%C0%80 '{"value":1}'
	assert_output '400 {"error":"key is not valid UTF-8"}'
	run curl -s "$URL/counters?prefix=%FF"
	assert_output '{"error":"prefix is not valid UTF-8"}'
	run post /incr $'{"key":"a\xffb"}'
	[[ $output == 400* ]]
	run curl -s "$URL/counters"
	assert_output ''
	# valid UTF-8 of every length goes through
	run --separate-stderr dsys-counter incr 'é€𝄞' --server "$URL"
	assert_output '{"key":"é€𝄞","value":1}'
}

@test "counter: incr - says each failed line on stderr too, one line each, as well as in its result line" {
	run -2 --separate-stderr bash -c "printf 'a\n{\"key\":\n{\"key\":\"a\",\"by\":9223372036854775807}\n' | dsys-counter incr - --store mem:"
	assert_output "$(printf '%s\n' '{"key":"a","value":1}' '{"line":2,"error":"malformed JSON: expected {\"key\":\"K\",\"by\":N}"}' \
		'{"key":"a","error":"increment would overflow int64"}')"
	assert_equal "$stderr" "$(printf '%s\n' 'dsys-counter: line 2: malformed JSON: expected {"key":"K","by":N}' \
		"dsys-counter: line 3: 'a': increment would overflow int64")"
}

@test "counter: file: get and list read a store they may not write; a change there is refused" {
	RO_DIR=$(mktemp -d /tmp/dsys-ro.XXXXXX)
	dsys-counter incr k --by 3 --store "file:$RO_DIR/s"
	# someone who may read the store but not write it
	local as=()
	if [ "$(id -u)" -eq 0 ]; then
		chmod -R a+rX "$RO_DIR"
		as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	else
		chmod -R a-w "$RO_DIR/s"
	fi
	run --separate-stderr "${as[@]}" dsys-counter get k --store "file:$RO_DIR/s"
	assert_success
	assert_output '{"key":"k","value":3}'
	run --separate-stderr "${as[@]}" dsys-counter list --store "file:$RO_DIR/s"
	assert_success
	assert_output '{"key":"k","value":3}'
	run --separate-stderr "${as[@]}" dsys-counter incr k --store "file:$RO_DIR/s" --wait 0
	[ "$status" -ne 0 ]
	# a get of a store nobody wrote yet is 'not found' and creates nothing
	run --separate-stderr dsys-counter get k --store "file:$RO_DIR/none"
	[ "$status" -eq 1 ]
	[ ! -e "$RO_DIR/none" ]
	chmod -R u+w "$RO_DIR"
}
