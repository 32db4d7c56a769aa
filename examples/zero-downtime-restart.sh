#!/bin/bash
# zero-downtime-restart.sh -- replace a running server under load and lose
# no request.
#
# The release step it shows:
#
#   dsys-serve --listen 127.0.0.1:8080 --reuse-port &     # the old one, running
#   ...
#   dsys-serve --listen 127.0.0.1:8080 --reuse-port &     # the new one: takes over
#   (wait for its ready line)                             # the old one's sockets
#   kill -TERM "$old_pid"                                 # the old one drains, exits 0
#
# The new server asks the old one for its listening sockets (over a Unix
# socket, SCM_RIGHTS, as nginx and HAProxy -x do), so both accept from the
# same queues and none is reset when the old one closes its copies; the old
# one answers what it has (with Connection: close) and a client's next
# request on an idle keep-alive connection, then exits.
#
# A client's pool may also hold connections it opened and has not used
# yet (dsys-bench takes the last connection that answered, so at a light
# rate the others wait for a burst): those too get their first request
# answered.  The old server waits at most half its --drain-timeout for
# them, so here that is twice the run plus 10 s: no connection is closed
# under the client while the load runs (the end of the run closes them).
#
# Here it runs under dsys-bench --rate load (RATE, default 2000/s, for
# DURATION, default 4s, in seconds, over CONNECTIONS, default 20),
# restarts a third of the way in (SERVER, default dsys-serve; "counter"
# for dsys-counter serve) and prints one JSON line:
#   sent          requests dsys-bench sent
#   requests      answers dsys-bench received (any status)
#   errors        every error dsys-bench counted: connect, read, write,
#                 timeout, interrupted, stream, grpc, and answers of
#                 status >= 400
#   old_answered  requests the old server answered (its drained line)
#   new_answered  requests the new server answered (its /metrics)
#   lost          requests sent that got no answer: sent - requests (each
#                 is also among errors, as read, write, timeout or
#                 interrupted)
#   unaccounted   requests - old_answered - new_answered: answers the
#                 client got that neither server counted, or (negative)
#                 answers a server counted that never reached the client
# Exit 0 when errors, lost and unaccounted are 0 and both servers
# answered some, else 1.
set -eu
[ -n "${DSYS_BIN:-}" ] && PATH="$DSYS_BIN:$PATH"
RATE=${RATE:-2000/s}
DURATION=${DURATION:-4s}
CONNECTIONS=${CONNECTIONS:-20}
SERVER=${SERVER:-serve}
DRAIN_TIMEOUT=$(awk -v d="${DURATION%s}" 'BEGIN { printf "%ds", 2 * d + 10 }')
tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || :; done
	rm -rf "$tmp"
}
trap cleanup EXIT

if [ "$SERVER" = counter ]; then
	server=(dsys-counter serve)
	route=/incr
	load=(-m POST -b '{"key":"hits"}')
else
	server=(dsys-serve)
	route=/hello
	load=()
fi
port=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}

# start NAME: a server on the port, in the background; waits for its ready line
start() {
	"${server[@]}" --listen "127.0.0.1:$port" --reuse-port --threads 2 --drain-timeout "$DRAIN_TIMEOUT" \
		>"$tmp/$1.out" 2>"$tmp/$1.err" &
	pids+=($!)
	local i
	for ((i = 0; i < 200; i++)); do
		grep -q '"event":"ready"' "$tmp/$1.out" && return 0
		sleep 0.05
	done
	echo "zero-downtime-restart: $1 did not start:" >&2
	cat "$tmp/$1.err" >&2
	exit 1
}

start old
old_pid=$(jq -r .pid "$tmp/old.out")

dsys-bench --json --rate "$RATE" -d "$DURATION" -c "$CONNECTIONS" -t 1 "${load[@]}" \
	"http://127.0.0.1:$port$route" >"$tmp/bench.json" &
bench=$!

# the release, a third of the way in
sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print d / 3 }')"
start new
new_pid=$(jq -r .pid "$tmp/new.out")
kill -TERM "$old_pid"
wait "$old_pid" || { echo "zero-downtime-restart: the old server exited $?" >&2; exit 1; }

wait "$bench"
old=$(jq -r 'select(.event == "drained") | .requests' "$tmp/old.out")
new=$(curl -sf "http://127.0.0.1:$port/metrics" |
	awk -v r="route=\"$route\"" '$1 ~ /^http_requests_total\{/ && index($1, r) { n += $2 } END { print n + 0 }')
kill -TERM "$new_pid"
wait "$new_pid" || :

jq -c --argjson old "$old" --argjson new "$new" --argjson old_pid "$old_pid" --argjson new_pid "$new_pid" '
	(.errors | .connect + .read + .write + .timeout + .interrupted + .stream + .grpc +
	 ([.status // {} | to_entries[] | .value] | add // 0)) as $errors |
	{sent, requests, errors: $errors, old_pid: $old_pid, old_answered: $old,
	 new_pid: $new_pid, new_answered: $new, lost: (.sent - .requests),
	 unaccounted: (.requests - $old - $new)}' "$tmp/bench.json" |
	tee "$tmp/result.json"
jq -e '.errors == 0 and .lost == 0 and .unaccounted == 0 and .old_answered > 0 and .new_answered > 0' \
	"$tmp/result.json" >/dev/null
