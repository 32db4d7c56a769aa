# tests/helpers.bash -- what every bats file of dsys shares.
#
#   load helpers
#   setup()    { dsys_setup; }
#   teardown() { dsys_teardown; }
#
#   start_server serve dsys-serve --listen 127.0.0.1:0   # waits for the ready line
#   echo "$SERVER_PORT $SERVER_PID $SERVER_OUT $SERVER_ERR"
#   run raw_http "$SERVER_PORT" 'GET /hello HTTP/1.1\r\nHost: a\r\n\r\n'
#   stop_server "$SERVER_PID"                             # SIGTERM, returns its exit status
#
# Servers are started with fd 3 closed (bats waits for fd 3 otherwise), on
# 127.0.0.1 port 0, and waited for by polling their stdout file for the
# ready line -- never by a fixed sleep.  Every server started is killed by
# PID in dsys_teardown.  Temporary files go under $BATS_TEST_TMPDIR, which
# bats removes after each test.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

: "${DSYS_BIN:=$BATS_TEST_DIRNAME/../build/bin}"
export DSYS_BIN
# The suite's python: Debian's, not a user's shim that may lack a version.
DSYS_PY=/usr/bin/python3
[ -x "$DSYS_PY" ] || DSYS_PY=python3

DSYS_SERVER_PIDS=()
DSYS_READY_TIMEOUT=${DSYS_READY_TIMEOUT:-20}   # seconds to wait for a ready line

dsys_setup() {
	PATH="$DSYS_BIN:$PATH"
	DSYS_SERVER_PIDS=()
}

dsys_teardown() {
	local pid
	for pid in "${DSYS_SERVER_PIDS[@]}"; do
		kill_server "$pid"
	done
	DSYS_SERVER_PIDS=()
}

# dsys_tmp NAME: a fresh directory for this test, removed by bats after it.
dsys_tmp() {
	local d="$BATS_TEST_TMPDIR/${1:-tmp}"
	mkdir -p "$d" && echo "$d"
}

# wait_ready FILE PID [SECONDS]: poll FILE until it holds a line with
# "event":"ready" and print that line; fail (printing what the process
# wrote) if PID exits first or SECONDS pass.
wait_ready() {
	local file=$1 pid=$2 secs=${3:-$DSYS_READY_TIMEOUT} i line
	for ((i = 0; i < secs * 20; i++)); do
		line=$(grep -m1 '"event":"ready"' "$file" 2>/dev/null) && { echo "$line"; return 0; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	line=$(grep -m1 '"event":"ready"' "$file" 2>/dev/null) && { echo "$line"; return 0; }
	echo "no ready line from pid $pid in $file:" >&2
	cat "$file" >&2
	[ -f "${file%.out}.err" ] && cat "${file%.out}.err" >&2
	return 1
}

# ready_port LINE: the port of the "listen" field of a ready line.
ready_port() {
	sed -n 's/.*"listen":"[^"]*:\([0-9][0-9]*\)".*/\1/p' <<<"$1"
}

# free_port: a loopback port nothing listens on now (the kernel picks it;
# a test uses it at once, for a peer that must not answer or one it starts).
free_port() {
	"$DSYS_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server NAME CMD [ARG]...: run CMD in the background (stdout to
# $BATS_TEST_TMPDIR/NAME.out, stderr to NAME.err, fd 3 closed), wait for its
# ready line, and set SERVER_PID, SERVER_PORT, SERVER_READY (the line),
# SERVER_OUT and SERVER_ERR.  The server is killed in dsys_teardown.
start_server() {
	local name=$1
	shift
	SERVER_OUT="$BATS_TEST_TMPDIR/$name.out"
	SERVER_ERR="$BATS_TEST_TMPDIR/$name.err"
	: >"$SERVER_OUT"
	"$@" >"$SERVER_OUT" 2>"$SERVER_ERR" 3>&- &
	SERVER_PID=$!
	DSYS_SERVER_PIDS+=("$SERVER_PID")
	SERVER_READY=$(wait_ready "$SERVER_OUT" "$SERVER_PID") || return 1
	SERVER_PORT=$(ready_port "$SERVER_READY")
	[ -n "$SERVER_PORT" ]
}

# stop_server PID [SIGNAL]: signal the server (TERM by default), wait for
# it to exit (up to 30 s, then KILL) and return its exit status.
stop_server() {
	kill -"${2:-TERM}" "$1" 2>/dev/null || true
	wait_exit "$1"
}

# wait_exit PID: wait for a server already told to stop (up to 30 s, then
# KILL) and return its exit status.  Not a second SIGTERM: one that
# arrives while the server tears down after its drain (slow under ASan)
# finds the default action and ends it with 143.
wait_exit() {
	local pid=$1 i
	for ((i = 0; i < 600; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	local st=0
	wait "$pid" 2>/dev/null || st=$?
	return "$st"
}

# pid_gone PID: succeed once no process PID is left (a killed one may
# take a moment: waits up to 5 s), else name it and fail.  For checks that
# a process was killed: `! kill -0 PID` on a line that is not a test's
# last is no check at all (bats' errexit ignores a negated command).
pid_gone() {
	local i
	for ((i = 0; i < 250; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.02
	done
	echo "pid $1 still runs" >&2
	return 1
}

# kill_server PID: stop it quietly, whatever its status.
kill_server() {
	stop_server "$1" TERM || true
}

# raw_http [OPTIONS] PORT PART...: connect to 127.0.0.1:PORT, send each
# PART (printf %b escapes: \r \n \t \xHH) as its own write, and print what
# comes back, CRs removed.  Reading stops when the server closes the
# connection, when -n COUNT complete responses have arrived, or after
# -w SECONDS without a byte (default 3).  Exit status: 0 when the server
# closed the connection, 1 when it was still open, 2 when connecting failed.
#   -n COUNT   stop after COUNT responses (1xx ones count; HEAD: use -H)
#   -H         the responses answer HEAD requests (no bodies)
#   -p SECONDS pause between parts (default 0)
#   -a         await: before sending part K+1, read until K responses have
#              come (an interim 100 Continue counts), so no timing is guessed
#   -s         shut down the write side after the last part
#   -r         keep CRs (raw bytes)
raw_http() {
	local opts=()
	while [[ $# -gt 0 && $1 == -* ]]; do
		case $1 in
		-n | -w | -p) opts+=("$1" "$2"); shift 2 ;;
		*) opts+=("$1"); shift ;;
		esac
	done
	local port=$1
	shift
	local parts=() p
	for p in "$@"; do
		parts+=("$(printf '%b' "$p" | base64 -w0)")
	done
	"$DSYS_PY" - "${opts[@]}" --port "$port" "${parts[@]}" <<'PY'
import base64, socket, sys, time

args = sys.argv[1:]
count = None; idle = 3.0; pause = 0.0; head = False; shut = False; raw = False; wait = False
port = None; parts = []
i = 0
while i < len(args):
    a = args[i]
    if a == '-n': count = int(args[i + 1]); i += 2
    elif a == '-w': idle = float(args[i + 1]); i += 2
    elif a == '-p': pause = float(args[i + 1]); i += 2
    elif a == '-H': head = True; i += 1
    elif a == '-s': shut = True; i += 1
    elif a == '-r': raw = True; i += 1
    elif a == '-a': wait = True; i += 1
    elif a == '--port': port = int(args[i + 1]); i += 2
    else: parts.append(base64.b64decode(a)); i += 1

def complete(data):
    """How many whole responses data holds (Content-Length framing)."""
    n = 0; pos = 0
    while True:
        end = data.find(b'\r\n\r\n', pos)
        if end < 0: return n
        head_text = data[pos:end].decode('latin-1')
        lines = head_text.split('\r\n')
        status = int(lines[0].split(' ')[1]) if len(lines[0].split(' ')) > 1 else 0
        length = 0
        for l in lines[1:]:
            k, _, v = l.partition(':')
            if k.strip().lower() == 'content-length': length = int(v.strip())
        if status < 200 or status in (204, 304) or head: length = 0
        if len(data) < end + 4 + length: return n
        pos = end + 4 + length
        n += 1

try:
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
except OSError as e:
    sys.stderr.write('raw_http: cannot connect: %s\n' % e); sys.exit(2)
data = b''; closed = False
s.settimeout(idle)
try:
    for k, part in enumerate(parts):
        if k and pause: time.sleep(pause)
        while k and wait and complete(data) < k:
            b = s.recv(65536)
            if not b: break
            data += b
        s.sendall(part)
    if shut: s.shutdown(socket.SHUT_WR)
except OSError:
    pass
s.settimeout(idle)
while True:
    if count is not None and complete(data) >= count:
        s.setblocking(False)
        try:
            closed = s.recv(65536) == b''
        except (BlockingIOError, OSError):
            pass
        break
    try:
        b = s.recv(65536)
    except socket.timeout:
        break
    except OSError:
        closed = True; break
    if not b:
        closed = True; break
    data += b
s.close()
out = data if raw else data.replace(b'\r', b'')
sys.stdout.write(out.decode('latin-1'))
if out and not out.endswith(b'\n'): sys.stdout.write('\n')
sys.exit(0 if closed else 1)
PY
}

# http_get PORT PATH: curl's view (-i: status line and headers, CRs removed).
http_get() {
	curl -s -i --max-time 10 "http://127.0.0.1:$1$2" | tr -d '\r'
}

# metric PORT NAME_WITH_LABELS: the value of one series from /metrics.
metric() {
	curl -s --max-time 10 "http://127.0.0.1:$1/metrics" |
		awk -v k="$2" '$1 == k { print $2; found = 1 } END { if (!found) exit 1 }'
}
