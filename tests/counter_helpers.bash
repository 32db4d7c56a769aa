# tests/counter_helpers.bash -- what counter.bats and counter_redis.bats
# share: a dsys-counter service on a free port and calls against it.
#
#   load helpers
#   load counter_helpers
#   serve --store mem:            # sets URL; THREADS (default 2) picks --threads
#   run post /incr '{"key":"a"}'  # "200 {...}"

# serve [OPTION]...: start `dsys-counter serve` and set URL to its address.
serve() {
	start_server counter dsys-counter serve --listen 127.0.0.1:0 --threads "${THREADS:-2}" "$@"
	URL="http://127.0.0.1:$SERVER_PORT"
}

# post PATH BODY: print "STATUS BODY"
post() {
	curl -s -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' -X POST --data-binary "$2" \
		-H 'Content-Type: application/json' "$URL$1"
	printf ' %s\n' "$(cat "$BATS_TEST_TMPDIR/body")"
}

# req METHOD PATH [BODY]: print "STATUS BODY"
req() {
	local data=()
	[ $# -ge 3 ] && data=(--data-binary "$3")
	curl -s -o "$BATS_TEST_TMPDIR/body" -w '%{http_code}' -X "$1" "${data[@]}" "$URL$2"
	printf ' %s\n' "$(cat "$BATS_TEST_TMPDIR/body")"
}

# permutation FILE N: FILE holds exactly the numbers 1..N, each once
permutation() {
	local n
	n=$(wc -l <"$1")
	[ "$n" -eq "$2" ] || { echo "$n answers, expected $2"; return 1; }
	sort -n "$1" | uniq | awk -v n="$2" '$1 != NR { print "missing " NR; bad = 1; exit } END { exit bad || NR != n }'
}

# fake_service STATUS BODY: a server that is not dsys-counter, answering
# every request with STATUS and the JSON BODY; sets URL to it.  Used to
# prove what the CLI makes of answers a counter service would not give.
fake_service() {
	start_server fake "$DSYS_PY" -c '
import http.server, json, sys
status, body = int(sys.argv[1]), sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_DELETE = answer
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(json.dumps({"event": "ready", "listen": "127.0.0.1:%d" % s.server_address[1]}, separators=(",", ":")), flush=True)
s.serve_forever()
' "$1" "$2"
	URL="http://127.0.0.1:$SERVER_PORT"
}
