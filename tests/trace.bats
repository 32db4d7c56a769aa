#!/usr/bin/env bats
# dsys-trace: spans from the shell.  Spans are read back from
# DSYS_TRACE_FILE (one OTLP JSON line each) with jq, and from a stand-in
# OTLP/HTTP receiver (tests/otlp_receiver.py) for the HTTP export.

load helpers
bats_require_minimum_version 1.5.0

TID=0af7651916cd43dd8448eb211c80319c
SID=b7ad6b7169203331

setup() {
	dsys_setup
	unset TRACEPARENT TRACESTATE OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG
	unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_EXPORTER_OTLP_TIMEOUT \
		OTEL_EXPORTER_OTLP_HEADERS OTEL_EXPORTER_OTLP_TRACES_HEADERS \
		OTEL_EXPORTER_OTLP_TRACES_TIMEOUT OTEL_EXPORTER_OTLP_PROTOCOL OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
	export DSYS_TRACE_FILE=$BATS_TEST_TMPDIR/spans.jsonl
	export DSYS_TRACE_SPOOL=$BATS_TEST_TMPDIR/spool
}
teardown() { dsys_teardown; }

# spans: every span of the file, one compact JSON object per line
spans() {
	jq -c '.resourceSpans[].scopeSpans[].spans[]' "$DSYS_TRACE_FILE"
}

# span NAME: the span called NAME
span() {
	jq -c --arg n "$1" '.resourceSpans[].scopeSpans[].spans[] | select(.name == $n)' "$DSYS_TRACE_FILE"
}

@test "trace exec: nested calls make one trace with the right parent links" {
	run dsys-trace exec --name outer -- dsys-trace exec --name inner -- true
	assert_success
	[ "$(spans | wc -l)" -eq 2 ]
	outer=$(span outer)
	inner=$(span inner)
	jq -e 'has("parentSpanId") | not' <<<"$outer"
	[ "$(jq -r .traceId <<<"$inner")" = "$(jq -r .traceId <<<"$outer")" ]
	[ "$(jq -r .parentSpanId <<<"$inner")" = "$(jq -r .spanId <<<"$outer")" ]
	jq -e '.traceId | test("^[0-9a-f]{32}$")' <<<"$outer"
	jq -e '.spanId | test("^[0-9a-f]{16}$")' <<<"$inner"
}

@test "trace exec: the command sees TRACEPARENT naming its own span" {
	run --separate-stderr dsys-trace exec --name x -- sh -c 'echo "$TRACEPARENT"'
	assert_success
	s=$(span x)
	[ "$output" = "00-$(jq -r .traceId <<<"$s")-$(jq -r .spanId <<<"$s")-01" ]
}

@test "trace exec: an inherited TRACEPARENT and TRACESTATE are continued" {
	export TRACEPARENT=00-$TID-$SID-01 TRACESTATE='rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE'
	run --separate-stderr dsys-trace exec --name x -- sh -c 'echo "$TRACEPARENT $TRACESTATE"'
	assert_success
	s=$(span x)
	jq -e --arg t "$TID" --arg p "$SID" '.traceId == $t and .parentSpanId == $p' <<<"$s"
	jq -e '.traceState == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"' <<<"$s"
	[ "$output" = "00-$TID-$(jq -r .spanId <<<"$s")-01 rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" ]
}

@test "trace exec: flags 03 are sampled, and a higher version is read by its first 55 characters" {
	TRACEPARENT=00-$TID-$SID-03 run --separate-stderr dsys-trace exec -- sh -c 'echo "$TRACEPARENT"'
	assert_success
	[[ "$output" == "00-$TID-"*"-01" ]]
	TRACEPARENT=01-$TID-$SID-00-future run --separate-stderr dsys-trace exec -- sh -c 'echo "$TRACEPARENT"'
	assert_success
	[[ "$output" == "00-$TID-"*"-00" ]]
}

@test "trace exec: an invalid TRACEPARENT starts a fresh trace" {
	upper=$(tr a-f A-F <<<"$TID")
	for tp in "00-$upper-$SID-01" "00-$TID-$SID-01-x" "ff-$TID-$SID-01" "00-00000000000000000000000000000000-$SID-01"; do
		rm -f "$DSYS_TRACE_FILE"
		TRACEPARENT=$tp run --separate-stderr dsys-trace exec --name x -- sh -c 'echo "$TRACEPARENT"'
		assert_success
		s=$(span x)
		jq -e --arg t "$TID" '.traceId != $t and (has("parentSpanId") | not)' <<<"$s"
		[ "$output" = "00-$(jq -r .traceId <<<"$s")-$(jq -r .spanId <<<"$s")-01" ]
	done
}

@test "trace exec: an invalid TRACESTATE is dropped and the TRACEPARENT kept" {
	export TRACEPARENT=00-$TID-$SID-01 TRACESTATE='Bad=1'
	run --separate-stderr dsys-trace exec --name x -- sh -c 'echo "${TRACESTATE-unset}"'
	assert_success
	[ "$output" = unset ]
	s=$(span x)
	jq -e --arg t "$TID" '.traceId == $t and (has("traceState") | not)' <<<"$s"
}

@test "trace exec: the exit status passes through and a failure is an error span" {
	run dsys-trace exec --name seven -- sh -c 'exit 7'
	assert_failure 7
	jq -e '.status == {"message":"exit status 7","code":2}' <<<"$(span seven)"
	jq -e '.attributes[] | select(.key == "process.exit.code") | .value.intValue == "7"' <<<"$(span seven)"
	run dsys-trace exec --name zero -- true
	assert_success
	jq -e '.status == {"code":0}' <<<"$(span zero)"
}

@test "trace exec: a command killed by SIGKILL exits 137" {
	run dsys-trace exec --name k -- sh -c 'kill -KILL $$'
	assert_failure 137
	jq -e '.status.code == 2 and (.status.message | test("signal 9"))' <<<"$(span k)"
}

@test "trace exec: SIGTERM to dsys-trace reaches the command and the span is still written" {
	ready=$BATS_TEST_TMPDIR/ready got=$BATS_TEST_TMPDIR/got
	dsys-trace exec --name long -- sh -c "trap 'echo term > $got; exit 3' TERM; echo > $ready; while :; do sleep 0.05; done" 3>&- &
	pid=$!
	for _ in $(seq 200); do [ -e "$ready" ] && break; sleep 0.05; done
	[ -e "$ready" ]
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	[ "$status" -eq 3 ]
	[ "$(cat "$got")" = term ]
	jq -e '.status.message == "exit status 3"' <<<"$(span long)"
}

@test "trace exec: a command that SIGTERM kills makes dsys-trace exit 143" {
	ready=$BATS_TEST_TMPDIR/ready
	dsys-trace exec --name t -- sh -c "echo > $ready; exec sleep 30" 3>&- &
	pid=$!
	for _ in $(seq 200); do [ -e "$ready" ] && break; sleep 0.05; done
	# whether TERM meets the shell or the sleep it became, the command dies of it
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	[ "$status" -eq 143 ]
	jq -e '.status.message == "killed by signal 15 (SIGTERM)"' <<<"$(span t)"
}

@test "trace exec: stdin, stdout and stderr are the command's own" {
	run --separate-stderr dsys-trace exec -- sh -c 'cat; echo err >&2' <<<"hello"
	assert_success
	[ "$output" = hello ]
	[ "$stderr" = err ]
}

@test "trace exec: a missing command exits 127 and a span records the error" {
	run -127 --separate-stderr dsys-trace exec --name m -- /nonexistent/cmd
	assert_failure 127
	[[ "$stderr" == *"cannot run '/nonexistent/cmd'"* ]]
	jq -e '.status.code == 2 and (.status.message | test("No such file"))' <<<"$(span m)"
	printf 'x' >"$BATS_TEST_TMPDIR/noexec"
	run --separate-stderr dsys-trace exec -- "$BATS_TEST_TMPDIR/noexec"
	assert_failure 126
}

@test "trace exec: the command's options are its own, with or without --" {
	run --separate-stderr dsys-trace exec --name l ls -d /
	assert_success
	[ "$output" = / ]
	run --separate-stderr dsys-trace exec -- ls -d /
	assert_success
	[ "$output" = / ]
}

@test "trace exec: typed attributes and the kind are recorded" {
	run dsys-trace exec --name a --kind client --attr s=x=y --attr n:int=-5 --attr b:bool=true \
		--attr d:double=2.5 -- true
	assert_success
	s=$(span a)
	jq -e '.kind == 3' <<<"$s"
	jq -e '[.attributes[] | {(.key): .value}] | add |
		.s == {"stringValue":"x=y"} and .n == {"intValue":"-5"} and
		.b == {"boolValue":true} and .d == {"doubleValue":2.5}' <<<"$s"
	jq -e '(.startTimeUnixNano | tonumber) <= (.endTimeUnixNano | tonumber)' <<<"$s"
}

@test "trace exec: service.name comes from OTEL_SERVICE_NAME, then OTEL_RESOURCE_ATTRIBUTES, then the program" {
	run dsys-trace exec --name a -- true
	jq -e '.resourceSpans[0].resource.attributes == [{"key":"service.name","value":{"stringValue":"dsys-trace"}}]' "$DSYS_TRACE_FILE"
	rm "$DSYS_TRACE_FILE"
	OTEL_RESOURCE_ATTRIBUTES='service.name=from%20attrs,team=db' run dsys-trace exec -- true
	jq -e '[.resourceSpans[0].resource.attributes[] | {(.key): .value.stringValue}] | add ==
		{"service.name":"from attrs","team":"db"}' "$DSYS_TRACE_FILE"
	rm "$DSYS_TRACE_FILE"
	OTEL_SERVICE_NAME=svc OTEL_RESOURCE_ATTRIBUTES='service.name=x' run dsys-trace exec -- true
	jq -e '.resourceSpans[0].resource.attributes[0].value.stringValue == "svc"' "$DSYS_TRACE_FILE"
	rm "$DSYS_TRACE_FILE"
	OTEL_RESOURCE_ATTRIBUTES='team=a b' run --separate-stderr dsys-trace exec -- true
	assert_success
	[[ "$stderr" == *"ignoring OTEL_RESOURCE_ATTRIBUTES"* ]]
	jq -e '.resourceSpans[0].resource.attributes == [{"key":"service.name","value":{"stringValue":"dsys-trace"}}]' "$DSYS_TRACE_FILE"
}

@test "trace exec: with no DSYS_TRACE_FILE the command runs and nothing is written" {
	unset DSYS_TRACE_FILE
	run dsys-trace exec -- sh -c 'exit 4'
	assert_failure 4
	[ ! -e "$BATS_TEST_TMPDIR/spans.jsonl" ]
}

@test "trace exec: an unwritable DSYS_TRACE_FILE is reported and the status still passes through" {
	DSYS_TRACE_FILE=/nonexistent/dir/spans run --separate-stderr dsys-trace exec -- sh -c 'exit 5'
	assert_failure 5
	[[ "$stderr" == *"cannot write span to '/nonexistent/dir/spans'"* ]]
}

@test "trace start/end: a span around a block of shell, with events and children" {
	run --separate-stderr dsys-trace start build --attr step=1
	assert_success
	jq -e '(.traceparent | test("^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")) and
		.traceparent == "00-\(.trace_id)-\(.span_id)-01"' <<<"$output"
	sid=$(jq -r .span_id <<<"$output")
	export TRACEPARENT=$(jq -r .traceparent <<<"$output")
	[ -f "$DSYS_TRACE_SPOOL/$sid" ]
	[ "$(stat -c %a "$DSYS_TRACE_SPOOL")" = 700 ]
	run dsys-trace event compiled --attr files:int=3
	assert_success
	run dsys-trace exec --name child -- true
	assert_success
	run dsys-trace end --status error --message "tests failed" --attr done:bool=true
	assert_success
	[ ! -e "$DSYS_TRACE_SPOOL/$sid" ]
	s=$(span build)
	jq -e --arg s "$sid" '.spanId == $s and .status == {"message":"tests failed","code":2}' <<<"$s"
	jq -e '.events | length == 1 and .[0].name == "compiled" and
		.[0].attributes == [{"key":"files","value":{"intValue":"3"}}]' <<<"$s"
	jq -e '[.attributes[].key] == ["step","done"]' <<<"$s"
	[ "$(jq -r .parentSpanId <<<"$(span child)")" = "$sid" ]
	# closed once only
	run --separate-stderr dsys-trace end
	assert_failure 1
	[[ "$stderr" == *"no open span"* ]]
}

@test "trace start/end: start continues TRACEPARENT and end takes the traceparent as an operand" {
	export TRACEPARENT=00-$TID-$SID-01
	run --separate-stderr dsys-trace start step
	assert_success
	tp=$(jq -r .traceparent <<<"$output")
	[[ "$tp" == "00-$TID-"* ]]
	run dsys-trace end --status ok "$tp"
	assert_success
	jq -e --arg p "$SID" '.parentSpanId == $p and .status == {"code":1}' <<<"$(span step)"
}

@test "trace event: with no open span it exits 1" {
	export TRACEPARENT=00-$TID-$SID-01
	run --separate-stderr dsys-trace event x
	assert_failure 1
	[[ "$stderr" == *"no open span"* ]]
}

@test "trace: bad input exits 2" {
	run dsys-trace exec --kind bogus -- true
	assert_failure 2
	run dsys-trace exec --attr noequals -- true
	assert_failure 2
	run dsys-trace exec --attr n:int=1.5 -- true
	assert_failure 2
	run dsys-trace exec --attr b:bool=yes -- true
	assert_failure 2
	run dsys-trace exec
	assert_failure 2
	run dsys-trace start
	assert_failure 2
	run dsys-trace start ''
	assert_failure 2
	run dsys-trace end --status maybe
	assert_failure 2
	run dsys-trace end not-a-traceparent
	assert_failure 2
	unset TRACEPARENT
	run dsys-trace end
	assert_failure 2
	run dsys-trace event x
	assert_failure 2
	run dsys-trace nosuch
	assert_failure 2
	[ ! -e "$DSYS_TRACE_FILE" ]
}

@test "trace start: a full stdout is a write error, exit 1" {
	run --separate-stderr bash -c 'dsys-trace start x >/dev/full'
	[ "$status" -eq 1 ] || { echo "status $status: $stderr"; false; }
	[[ "$stderr" == *"write error"* ]]
}

@test "trace: bash and zsh complete the commands, each command's options and the kinds" {
	load helpers_completion
	bc=$BATS_TEST_DIRNAME/../completions/bash/dsys-trace
	zc=$BATS_TEST_DIRNAME/../completions/zsh/_dsys-trace
	run bash_complete "$bc" dsys-trace ''
	assert_success
	[ "$(echo $output)" = "exec start event end log collect show" ]
	run bash_complete "$bc" dsys-trace log --level w
	[ "$(echo $output)" = "warn" ]
	run bash_complete "$bc" dsys-trace exec --k
	assert_output --partial --kind
	run bash_complete "$bc" dsys-trace end --
	assert_output --partial --status
	refute_output --partial --kind
	run bash_complete "$bc" dsys-trace exec --kind c
	[ "$(echo $output)" = "client consumer" ]
	run zsh_complete "$zc" dsys-trace ''
	[ "$(echo $output)" = "exec start event end log collect show" ]
	run zsh_complete "$zc" dsys-trace start --
	assert_output --partial --spool
	run zsh_complete "$zc" dsys-trace end --status ''
	[ "$(echo $output)" = "ok error" ]
}

@test "trace: the man page's example runs and makes one trace of three spans" {
	cd "$BATS_TEST_TMPDIR"
	unset DSYS_TRACE_FILE
	example=$(awk '/^\.Sh EXAMPLES/ { ex = 1 } ex && /^\.Ed/ { exit } ex && lit { print } ex && /^\.Bd -literal/ { lit = 1 }' \
		"$BATS_TEST_DIRNAME/../man/man1/dsys-trace.1")
	[ -n "$example" ]
	run --separate-stderr bash -ec "$example"
	assert_success
	[ "$(echo $output)" = "configure compile build" ]
	[ "$(jq -r '.resourceSpans[].scopeSpans[].spans[].traceId' spans.jsonl | sort -u | wc -l)" -eq 1 ]
}

# start_receiver [PLAN]...: tests/otlp_receiver.py on a free loopback
# port; sets RECV_PORT, and RECV_LOG to the file of requests it got.
# Exports OTEL_EXPORTER_OTLP_PROTOCOL=http/json, as most checks read the
# body as JSON; the protobuf tests unset it again.
start_receiver() {
	export OTEL_EXPORTER_OTLP_PROTOCOL=http/json
	RECV_LOG=$BATS_TEST_TMPDIR/received.jsonl
	local portfile=$BATS_TEST_TMPDIR/recv.port
	rm -f "$portfile" "$RECV_LOG"
	"$DSYS_PY" "$BATS_TEST_DIRNAME/otlp_receiver.py" "$portfile" "$RECV_LOG" "$@" 3>&- &
	DSYS_SERVER_PIDS+=("$!")
	for _ in $(seq 200); do [ -s "$portfile" ] && break; sleep 0.05; done
	RECV_PORT=$(cat "$portfile")
	[ -n "$RECV_PORT" ]
}

# received: how many requests the receiver got
received() {
	if [ -e "$RECV_LOG" ]; then wc -l <"$RECV_LOG"; else echo 0; fi
}

@test "trace otlp: spans go to OTEL_EXPORTER_OTLP_ENDPOINT + v1/traces as OTLP JSON" {
	start_receiver
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT run dsys-trace exec --name sent -- sh -c 'exit 3'
	assert_failure 3
	[ "$(received)" -eq 1 ]
	jq -e '.path == "/v1/traces" and .content_type == "application/json"' "$RECV_LOG"
	# the same request as the file line
	[ "$(jq -c .body "$RECV_LOG")" = "$(jq -c . "$DSYS_TRACE_FILE")" ]
	jq -e '.body.resourceSpans[0].scopeSpans[0].spans[0].name == "sent"' "$RECV_LOG"
}

@test "trace otlp: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is, and wins" {
	start_receiver
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1 \
	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:$RECV_PORT/custom/path \
		run --separate-stderr dsys-trace exec -- true
	assert_success
	[ -z "$stderr" ]
	jq -e '.path == "/custom/path"' "$RECV_LOG"
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT/base/ run dsys-trace exec -- true
	[ "$(received)" -eq 2 ]
	[ "$(tail -1 "$RECV_LOG" | jq -r .path)" = /base/v1/traces ]
}

@test "trace otlp: 429 and 503 are retried, honouring Retry-After, until the span is taken" {
	start_receiver 429:1:1 503:1
	t0=$(date +%s%N)
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT run --separate-stderr dsys-trace exec -- true
	t1=$(date +%s%N)
	assert_success
	[ -z "$stderr" ]
	[ "$(received)" -eq 3 ]
	# Retry-After: 1 made the first wait at least a second
	[ $(((t1 - t0) / 1000000)) -ge 1000 ]
	[ "$(jq -s 'map(.body) | unique | length' "$RECV_LOG")" -eq 1 ]
}

@test "trace otlp: OTEL_EXPORTER_OTLP_TIMEOUT bounds the export, retries included" {
	start_receiver 503:10:30
	t0=$(date +%s%N)
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT OTEL_EXPORTER_OTLP_TIMEOUT=500 \
		run --separate-stderr dsys-trace exec -- sh -c 'exit 6'
	t1=$(date +%s%N)
	assert_failure 6
	[[ "$stderr" == *"HTTP status 503"* ]]
	[ "$(received)" -eq 1 ]
	[ $(((t1 - t0) / 1000000)) -lt 3000 ]
}

@test "trace otlp: a 400 is final, and an unreachable endpoint does not change the status" {
	start_receiver 400:5
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT run --separate-stderr dsys-trace exec -- true
	assert_success
	[[ "$stderr" == *"HTTP status 400"* ]]
	[ "$(received)" -eq 1 ]
	# port 1 on loopback refuses: retried with backoff inside the timeout
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1 OTEL_EXPORTER_OTLP_TIMEOUT=300 \
		run --separate-stderr dsys-trace exec -- sh -c 'exit 9'
	assert_failure 9
	[[ "$stderr" == *"OTLP export to http://127.0.0.1:1/v1/traces"* ]]
}

@test "trace otlp: bad OTLP variables are reported and the command still runs" {
	OTEL_EXPORTER_OTLP_ENDPOINT=ftp://x run --separate-stderr dsys-trace exec -- true
	assert_success
	[[ "$stderr" == *"invalid OTLP endpoint"* ]]
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1 OTEL_EXPORTER_OTLP_TIMEOUT=soon \
		run --separate-stderr dsys-trace exec -- true
	assert_success
	[[ "$stderr" == *"invalid OTLP timeout 'soon'"* ]]
}

@test "trace otlp: end keeps the span open when no exporter took it, and closes it once one does" {
	unset DSYS_TRACE_FILE
	start_receiver 400:1
	run --separate-stderr dsys-trace start block
	sid=$(jq -r .span_id <<<"$output")
	tp=$(jq -r .traceparent <<<"$output")
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT run --separate-stderr dsys-trace end "$tp"
	assert_failure 3
	[ -f "$DSYS_TRACE_SPOOL/$sid" ]
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT run --separate-stderr dsys-trace end "$tp"
	assert_success
	[ ! -e "$DSYS_TRACE_SPOOL/$sid" ]
	[ "$(received)" -eq 2 ]
	jq -e --arg s "$sid" '.body.resourceSpans[0].scopeSpans[0].spans[0].spanId == $s' <(tail -1 "$RECV_LOG")
}

@test "trace exec: a Ctrl-C from the terminal reaches the command, which may live on" {
	# a pty makes dsys-trace and the command one foreground process group
	log=$BATS_TEST_TMPDIR/ints
	run "$DSYS_PY" - "$log" <<'PY'
import os, pty, signal, sys, time
log = sys.argv[1]
pid, fd = pty.fork()
if pid == 0:
    # SIGINT as a terminal session has it, whatever we were started with:
    # under `make test &` it comes ignored, and an ignored signal stays
    # ignored in dsys-trace and in sh, whose trap then never runs
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execvp("dsys-trace", ["dsys-trace", "exec", "--name", "tty", "--", "sh", "-c",
              "trap 'echo INT >> %s' INT; echo ready; while :; do sleep 0.05; done" % log])
buf, deadline = b"", time.time() + 10
while b"ready" not in buf and time.time() < deadline:
    buf += os.read(fd, 100)
os.write(fd, b"\x03")
for _ in range(200):
    if os.path.exists(log):
        break
    time.sleep(0.02)
os.kill(pid, signal.SIGTERM)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
PY
	assert_success
	assert_output 143
	[ "$(cat "$log")" = INT ]
	jq -e '.status.message == "killed by signal 15 (SIGTERM)"' <<<"$(span tty)"
}

@test "trace event: concurrent events on one open span are all kept" {
	run --separate-stderr dsys-trace start many
	export TRACEPARENT=$(jq -r .traceparent <<<"$output")
	for i in $(seq 20); do
		dsys-trace event "e$i" --attr i:int="$i" 3>&- &
	done
	wait
	run dsys-trace end
	assert_success
	jq -e '.events | length == 20' <<<"$(span many)"
	jq -e '[.events[].name] | sort == ([range(1; 21)] | map("e\(.)") | sort)' <<<"$(span many)"
}

@test "trace end: a damaged spool file is refused with exit 3, not a crash" {
	run --separate-stderr dsys-trace start broken
	sid=$(jq -r .span_id <<<"$output")
	export TRACEPARENT=$(jq -r .traceparent <<<"$output")
	for bad in 'not json' '{"traceparent":"x"}' '' "$(head -1 "$DSYS_TRACE_SPOOL/$sid" | jq -c '.kind = 9')"; do
		printf '%s\n' "$bad" >"$DSYS_TRACE_SPOOL/$sid"
		run --separate-stderr dsys-trace end
		assert_failure 3
		[[ "$stderr" == *"is not an open span of dsys-trace"* ]]
	done
	[ ! -e "$DSYS_TRACE_FILE" ]
}

@test "trace start: a spool directory that is a symlink is refused" {
	mkdir "$BATS_TEST_TMPDIR/real"
	ln -s "$BATS_TEST_TMPDIR/real" "$BATS_TEST_TMPDIR/link"
	DSYS_TRACE_SPOOL=$BATS_TEST_TMPDIR/link run --separate-stderr dsys-trace start x
	assert_failure 3
	[[ "$stderr" == *"is not a directory of yours"* ]]
	[ -z "$output" ]
}

@test "trace exec: under an unsampled parent nothing is recorded and the decision is passed on" {
	TRACEPARENT=00-$TID-$SID-00 run --separate-stderr dsys-trace exec -- \
		dsys-trace exec -- sh -c 'echo "$TRACEPARENT"'
	assert_success
	[[ "$output" == "00-$TID-"*"-00" ]]
	[ ! -e "$DSYS_TRACE_FILE" ]
}

@test "trace exec: OTEL_TRACES_SAMPLER picks always_on, always_off and traceidratio" {
	TRACEPARENT=00-$TID-$SID-00 OTEL_TRACES_SAMPLER=always_on run --separate-stderr \
		dsys-trace exec --name on -- sh -c 'echo "$TRACEPARENT"'
	assert_success
	[[ "$output" == *-01 ]]
	span on | jq -e '.flags == 1'
	OTEL_TRACES_SAMPLER=always_off run --separate-stderr dsys-trace exec --name off -- sh -c 'echo "$TRACEPARENT"'
	assert_success
	[[ "$output" == *-00 ]]
	[ -z "$(span off)" ]
	OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0 run dsys-trace exec --name r0 -- true
	OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=1 run dsys-trace exec --name r1 -- true
	[ -z "$(span r0)" ]
	[ -n "$(span r1)" ]
	OTEL_TRACES_SAMPLER=sometimes run --separate-stderr dsys-trace exec --name bad -- true
	assert_success
	[[ "$stderr" == *"ignoring OTEL_TRACES_SAMPLER"* ]]
	[ -n "$(span bad)" ]
}

@test "trace start/end: an unsampled span is closed without being written" {
	export TRACEPARENT=00-$TID-$SID-00
	run --separate-stderr dsys-trace start quiet
	assert_success
	tp=$(jq -r .traceparent <<<"$output")
	[[ "$tp" == *-00 ]]
	sid=$(jq -r .span_id <<<"$output")
	run dsys-trace end "$tp"
	assert_success
	[ ! -e "$DSYS_TRACE_SPOOL/$sid" ]
	[ ! -e "$DSYS_TRACE_FILE" ]
}

@test "trace otlp: OTEL_EXPORTER_OTLP_HEADERS are sent with the span, and bad ones refused" {
	start_receiver
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT OTEL_EXPORTER_OTLP_HEADERS='x-api-key=s%20e,x-team=db' \
		run --separate-stderr dsys-trace exec -- true
	assert_success
	[ -z "$stderr" ]
	jq -e '.headers["x-api-key"] == "s e" and .headers["x-team"] == "db"' "$RECV_LOG"
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT OTEL_EXPORTER_OTLP_HEADERS='x=%0d%0aevil: 1' \
		run --separate-stderr dsys-trace exec -- sh -c 'exit 2'
	assert_failure 2
	[[ "$stderr" == *"invalid OTLP headers"* ]]
	[ "$(received)" -eq 1 ]
}

@test "trace: every field written is one of OTLP's, with the JSON mapping's types" {
	# the field names and types of opentelemetry-proto's trace.proto,
	# common.proto and resource.proto, in the OTLP/JSON mapping
	run dsys-trace start --attr s=x --attr i:int=1 --attr b:bool=false --attr d:double=0.5 block
	export TRACEPARENT=$(jq -r .traceparent <<<"$output") TRACESTATE=a=1
	run dsys-trace event ev --attr n:int=2
	run dsys-trace exec --kind server -- true
	run dsys-trace end --status error --message m
	[ "$(wc -l <"$DSYS_TRACE_FILE")" -eq 2 ]
	jq -e -s '
		def u64: type == "string" and test("^[0-9]+$");
		def attrs: type == "array" and all(.[];
			(keys == ["key", "value"]) and (.key | type == "string") and
			(.value | (keys | length == 1) and (
				(has("stringValue") and (.stringValue | type == "string")) or
				(has("intValue") and (.intValue | type == "string") and (.intValue | test("^-?[0-9]+$"))) or
				(has("boolValue") and (.boolValue | type == "boolean")) or
				(has("doubleValue") and (.doubleValue | type == "number")))));
		all(.[];
			(keys == ["resourceSpans"]) and
			all(.resourceSpans[];
				(keys - ["resource", "scopeSpans", "schemaUrl"] == []) and
				(.resource | keys - ["attributes", "droppedAttributesCount"] == []) and
				(.resource.attributes | attrs) and
				all(.scopeSpans[];
					(keys - ["scope", "spans", "schemaUrl"] == []) and
					(.scope | keys - ["name", "version", "attributes", "droppedAttributesCount"] == []) and
					all(.spans[];
						(keys - ["traceId", "spanId", "traceState", "parentSpanId", "flags", "name", "kind",
							"startTimeUnixNano", "endTimeUnixNano", "attributes", "droppedAttributesCount",
							"events", "droppedEventsCount", "links", "droppedLinksCount", "status"] == []) and
						(.traceId | test("^[0-9a-f]{32}$")) and (.spanId | test("^[0-9a-f]{16}$")) and
						((has("parentSpanId") | not) or (.parentSpanId | test("^[0-9a-f]{16}$"))) and
						(.flags | type == "number") and
						(.kind | IN(1, 2, 3, 4, 5)) and (.startTimeUnixNano | u64) and (.endTimeUnixNano | u64) and
						(.attributes | attrs) and
						all(.events[]; (keys - ["timeUnixNano", "name", "attributes", "droppedAttributesCount"] == []) and
							(.timeUnixNano | u64) and (.attributes | attrs)) and
						(.status | (keys - ["code", "message"] == []) and (.code | IN(0, 1, 2)))))))' "$DSYS_TRACE_FILE"
	# the child carries the tracestate, and the block has its event
	[ "$(span true | jq -r .traceState)" = a=1 ]
	[ "$(span block | jq -r '.events[0].name')" = ev ]
}

# raw_body N: the Nth request's body (1-based), as bytes
raw_body() {
	# (perl-base is on every Debian; xxd is not)
	sed -n "${1}p" "$RECV_LOG" | jq -r .raw | perl -ne 'chomp; print pack("H*", $_)'
}

# our .proto files compiled for Python into $BATS_TEST_TMPDIR/pb
compile_protos() {
	mkdir -p "$BATS_TEST_TMPDIR/pb"
	protoc --proto_path="$BATS_TEST_DIRNAME/../lib" --python_out="$BATS_TEST_TMPDIR/pb" \
		obs/otlp_common.proto obs/otlp_trace.proto obs/otlp_logs.proto
}

@test "trace otlp: http/protobuf is the default, sent as application/x-protobuf with OTLP's field numbers" {
	start_receiver
	unset OTEL_EXPORTER_OTLP_PROTOCOL
	TRACEPARENT=00-$TID-$SID-01 OTEL_SERVICE_NAME=pbsvc OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT \
		run --separate-stderr dsys-trace exec --name only-pb --attr n:int=7 -- sh -c 'exit 2'
	assert_failure 2
	[ -z "$stderr" ]
	[ "$(received)" -eq 1 ]
	jq -e '.path == "/v1/traces" and .content_type == "application/x-protobuf" and .body == null' "$RECV_LOG"
	raw_body 1 >"$BATS_TEST_TMPDIR/req.bin"
	run protoc --decode_raw <"$BATS_TEST_TMPDIR/req.bin"
	assert_success
	dec=$output
	# ExportTraceServiceRequest.resource_spans = 1 { resource = 1, scope_spans = 2 { spans = 2 } }
	[[ "$dec" == *'1 {'*'1 {'*'1 {'*'1: "service.name"'*'2 {'*'1: "pbsvc"'* ]]
	# Span: name = 5, kind = 6 (internal), parent_span_id = 4, flags = 16 (fixed32),
	# start/end fixed64 = 7/8, status = 15 { code = 3 (error) }
	grep -q '5: "only-pb"' <<<"$dec"
	grep -q '6: 1$' <<<"$dec"
	grep -q '16: 0x00000001' <<<"$dec"
	grep -Eq '^ *7: 0x[0-9a-f]{16}$' <<<"$dec"
	grep -Eq '^ *8: 0x[0-9a-f]{16}$' <<<"$dec"
	grep -Eq '^ *3: 2$' <<<"$dec"
	grep -q '4: "\\267\\255kqi 31"' <<<"$dec"
}

@test "trace otlp: the protobuf body decodes with our .proto to the same span as the JSON line" {
	compile_protos
	start_receiver
	export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT \
		run --separate-stderr dsys-trace exec --name both --attr s=x --attr b:bool=true --attr d:double=1.5 -- true
	assert_success
	raw_body 1 >"$BATS_TEST_TMPDIR/req.bin"
	run "$DSYS_PY" - "$BATS_TEST_TMPDIR/pb" "$BATS_TEST_TMPDIR/req.bin" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from google.protobuf import json_format
from obs import otlp_trace_pb2
req = otlp_trace_pb2.ExportTraceServiceRequest()
req.ParseFromString(open(sys.argv[2], "rb").read())
s = req.resource_spans[0].scope_spans[0].spans[0]
a = {kv.key: kv.value for kv in s.attributes}
print(len(req.resource_spans), s.name, s.trace_id.hex(), s.span_id.hex(), s.start_time_unix_nano,
      s.end_time_unix_nano, a["s"].string_value, a["b"].bool_value, a["d"].double_value, s.status.code,
      req.resource_spans[0].scope_spans[0].scope.name)
PY
	assert_success
	line=$(jq -c '.resourceSpans[0].scopeSpans[0].spans[0]' "$DSYS_TRACE_FILE")
	want="1 both $(jq -r .traceId <<<"$line") $(jq -r .spanId <<<"$line") $(jq -r .startTimeUnixNano <<<"$line") $(jq -r .endTimeUnixNano <<<"$line") x True 1.5 $(jq -r .status.code <<<"$line") dsys"
	[ "$output" = "$want" ]
}

@test "trace otlp: grpc is reported as not spoken and http/protobuf sent instead" {
	start_receiver
	OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT \
		run --separate-stderr dsys-trace exec -- true
	assert_success
	[[ "$stderr" == *"OTLP protocol 'grpc' is not supported; sending http/protobuf"* ]]
	jq -e '.content_type == "application/x-protobuf"' "$RECV_LOG"
}

# records: every log record of the file, one compact JSON object per line
records() {
	jq -c '.resourceLogs[].scopeLogs[].logRecords[]' "$DSYS_TRACE_FILE"
}

@test "trace log: plain lines become records of the current span, at --level" {
	TRACEPARENT=00-$TID-$SID-01 run --separate-stderr dsys-trace log --level warn <<<$'first line\nsecond'
	assert_success
	[ -z "$output" ]
	[ "$(records | wc -l)" -eq 2 ]
	records | head -1 | jq -e --arg t $TID --arg s $SID \
		'.body.stringValue == "first line" and .severityNumber == 13 and .severityText == "WARN"
		 and .traceId == $t and .spanId == $s and .flags == 1 and (.timeUnixNano | test("^[0-9]+$"))'
	jq -e '.resourceLogs[0].resource.attributes[] | select(.key == "service.name") | .value.stringValue == "dsys-trace"' \
		<(head -1 "$DSYS_TRACE_FILE")
}

@test "trace log: a JSON line gives its message, level, ids and fields; --service names the service" {
	run --separate-stderr dsys-trace log --service store \
		<<<'{"message":"disk full","level":"error","trace_id":"'$TID'","span_id":"'$SID'","disk":"sda","pct":97}'
	assert_success
	r=$(records)
	jq -e --arg t $TID '.body.stringValue == "disk full" and .severityNumber == 17 and .traceId == $t' <<<"$r"
	jq -e '[.attributes[] | {(.key): .value}] | add == {"disk":{"stringValue":"sda"},"pct":{"intValue":"97"}}' <<<"$r"
	jq -e '.resourceLogs[0].resource.attributes[0].value.stringValue == "store"' "$DSYS_TRACE_FILE"
	# a JSON line without a message is a plain line; no trace context: no ids
	run dsys-trace log <<<'{"other":1}'
	assert_success
	records | tail -1 | jq -e '.body.stringValue == "{\"other\":1}" and (has("traceId") | not)'
}

@test "trace log: with no file and no endpoint the records go to stdout; a bad level exits 2" {
	unset DSYS_TRACE_FILE
	run --separate-stderr dsys-trace log <<<"to stdout"
	assert_success
	jq -e '.resourceLogs[0].scopeLogs[0].logRecords[0].body.stringValue == "to stdout"' <<<"$output"
	run -2 dsys-trace log --level loud </dev/null
	[[ "$output" == *"loud"* ]]
}

@test "trace: -l is --listen wherever it exists, so log's --level has no short form" {
	run -2 dsys-trace log -l warn </dev/null
	run dsys-trace log --help
	assert_success
	[[ "$output" == *"--level LEVEL"* ]]
	[[ "$output" != *"-l, --level"* ]]
	run dsys-trace collect --help
	assert_success
	[[ "$output" == *"-l, --listen"* ]]
}

@test "trace log: records go to the OTLP endpoint's v1/logs in batches, in both encodings" {
	unset DSYS_TRACE_FILE
	start_receiver
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT run --separate-stderr dsys-trace log < <(seq 1 5)
	assert_success
	[ -z "$output" ]
	[ "$(received)" -eq 1 ]
	jq -e '.path == "/v1/logs" and ([.body.resourceLogs[].scopeLogs[].logRecords[].body.stringValue] == ["1","2","3","4","5"])' "$RECV_LOG"
	# protobuf, and a batch size of 2: three requests
	compile_protos
	OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_BSP_MAX_EXPORT_BATCH_SIZE=2 \
		OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT run --separate-stderr dsys-trace log < <(seq 1 5)
	assert_success
	[ "$(received)" -eq 4 ]
	run "$DSYS_PY" - "$BATS_TEST_TMPDIR/pb" "$RECV_LOG" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
from obs import otlp_logs_pb2
out = []
for line in open(sys.argv[2]).readlines()[1:]:
    r = json.loads(line)
    assert r["content_type"] == "application/x-protobuf" and r["path"] == "/v1/logs"
    req = otlp_logs_pb2.ExportLogsServiceRequest()
    req.ParseFromString(bytes.fromhex(r["raw"]))
    out.append(",".join(lr.body.string_value + ":" + str(lr.severity_number)
                        for rl in req.resource_logs for sl in rl.scope_logs for lr in sl.log_records))
print(" ".join(out))
PY
	assert_success
	assert_output "1:9,2:9 3:9,4:9 5:9"
}

@test "trace log: an endpoint that refuses makes the exit status 3 after all input is read" {
	unset DSYS_TRACE_FILE
	start_receiver 400:5
	OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT run --separate-stderr dsys-trace log < <(seq 1 3)
	assert_failure 3
	[[ "$stderr" == *"3 of 3 log records were not taken"* ]]
}

@test "trace show: a recorded trace is drawn as the expected waterfall" {
	run --separate-stderr dsys-trace show --file "$BATS_TEST_DIRNAME/trace_show/recorded.jsonl"
	assert_success
	diff -u "$BATS_TEST_DIRNAME/trace_show/expected.txt" <(printf '%s\n' "$output")
	# the tree: deploy's child under it, the error marked, the log under its span
	[[ "$output" == *$'*!   deploy'*$'\n       - ERROR rollout failed'*$'\n*      POST /incr'* ]]
}

@test "trace show: one trace by id, from stdin, as SVG too; an absent id exits 1" {
	run --separate-stderr dsys-trace show --file - --svg "$BATS_TEST_TMPDIR/w.svg" 11111111111111111111111111111111 \
		<"$BATS_TEST_DIRNAME/trace_show/recorded.jsonl"
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[1]}" == *"other"*"bench"*"500.0 us"* ]]
	"$DSYS_PY" -c 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); assert len(d.getElementsByTagName("rect")) == 1' \
		"$BATS_TEST_TMPDIR/w.svg"
	run -1 dsys-trace show --file "$BATS_TEST_DIRNAME/trace_show/recorded.jsonl" 22222222222222222222222222222222
	run -2 dsys-trace show NOTHEX
}

@test "trace show: draws what exec wrote to DSYS_TRACE_FILE, and a pretty-printed OTLP JSON file" {
	dsys-trace exec --name outer -- dsys-trace exec --name inner -- sh -c 'exit 4' || true
	run --separate-stderr dsys-trace show
	assert_success
	[[ "${lines[0]}" == "trace "*"2 spans  1 service"* ]]
	[[ "${lines[1]}" == "*! outer "* ]]
	[[ "${lines[2]}" == "*!   inner "* ]]
	head -1 "$DSYS_TRACE_FILE" | jq . >"$BATS_TEST_TMPDIR/pretty.json"
	run --separate-stderr dsys-trace show --file "$BATS_TEST_TMPDIR/pretty.json"
	assert_success
	[[ "$output" == *"1 span  1 service"* ]]
}

@test "trace log: the protobuf record has OTLP's LogRecord field numbers" {
	unset DSYS_TRACE_FILE
	start_receiver
	unset OTEL_EXPORTER_OTLP_PROTOCOL
	TRACEPARENT=00-$TID-$SID-01 OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$RECV_PORT \
		run --separate-stderr dsys-trace log --level warn <<<"only-body"
	assert_success
	jq -e '.path == "/v1/logs" and .content_type == "application/x-protobuf"' "$RECV_LOG"
	raw_body 1 >"$BATS_TEST_TMPDIR/req.bin"
	run protoc --decode_raw <"$BATS_TEST_TMPDIR/req.bin"
	assert_success
	dec=$output
	# LogRecord: time_unix_nano = 1 and observed_time_unix_nano = 11 (fixed64),
	# severity_number = 2, severity_text = 3, body = 5 { string_value = 1 },
	# flags = 8 (fixed32), trace_id = 9, span_id = 10
	grep -Eq '^ *1: 0x[0-9a-f]{16}$' <<<"$dec"
	grep -Eq '^ *11: 0x[0-9a-f]{16}$' <<<"$dec"
	grep -Eq '^ *2: 13$' <<<"$dec"
	grep -q '3: "WARN"' <<<"$dec"
	[[ "$dec" == *'5 {'*'1: "only-body"'* ]]
	grep -q '8: 0x00000001' <<<"$dec"
	grep -q '10: "\\267\\255kqi 31"' <<<"$dec"
	grep -Eq '^ *9: "' <<<"$dec"
}
