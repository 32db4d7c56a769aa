#!/usr/bin/env bats
# Compressed answers (dsys-serve) and gzip request bodies (dsys-counter
# serve), decoded by third parties: curl --compressed and Python's gzip and
# brotli modules.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	dsys_setup
	D=$(dsys_tmp compress)
	# a 64 KiB-ish JSON document
	"$DSYS_PY" -c '
import json
rows = [{"id": i, "name": "item %d" % i, "tags": ["a", "b"], "price": i * 1.25} for i in range(1000)]
print(json.dumps(rows))' >"$D/big.json"
}
teardown() { dsys_teardown; }

serve_big() {
	start_server serve dsys-serve --listen 127.0.0.1:0 --threads 1 \
		--route "GET /big.json=@$D/big.json" "$@"
	URL="http://127.0.0.1:$SERVER_PORT"
}

# head_of URL [CURL ARGS]: the response head, CRs removed, lowercase names
head_of() {
	local url=$1
	shift
	curl -s -o /dev/null -D - "$@" "$url" | tr -d '\r' | sed 's/^\([^:]*\):/\L\1:/'
}

@test "compress: curl --compressed gets a static JSON route Brotli-encoded and decodes it to the same bytes" {
	serve_big
	run head_of "$URL/big.json" -H 'Accept-Encoding: br, gzip'
	assert_line 'content-encoding: br'
	assert_line 'vary: Accept-Encoding'
	assert_line --regexp '^etag: "[0-9a-f]{16}-[0-9a-f]+-br"$'
	len=$(grep '^content-length:' <<<"$output" | cut -d' ' -f2)
	[ "$len" -lt $(($(stat -c %s "$D/big.json") / 5)) ]
	curl -s --compressed -H 'Accept-Encoding: br' "$URL/big.json" >"$D/got"
	cmp "$D/got" "$D/big.json"
	curl -s --compressed -H 'Accept-Encoding: gzip' "$URL/big.json" >"$D/got"
	cmp "$D/got" "$D/big.json"
}

@test "compress: Python's gzip and brotli modules decode the static variants and the dynamic /metrics" {
	serve_big
	run "$DSYS_PY" - "$URL" "$D/big.json" <<-'EOF'
		import brotli, gzip, sys, urllib.request
		url, path = sys.argv[1], sys.argv[2]
		want = open(path, "rb").read()
		def get(p, ae):
		    r = urllib.request.urlopen(urllib.request.Request(url + p, headers={"Accept-Encoding": ae}))
		    return r.headers.get("Content-Encoding"), r.headers.get("Vary"), r.read()
		ce, vary, body = get("/big.json", "gzip")
		assert (ce, vary) == ("gzip", "Accept-Encoding"), (ce, vary)
		assert gzip.decompress(body) == want
		ce, vary, body = get("/big.json", "br")
		assert ce == "br", ce
		assert brotli.decompress(body) == want
		ce, vary, body = get("/metrics", "gzip;q=0.5, br;q=0.1")
		assert ce == "gzip", ce
		text = gzip.decompress(body).decode()
		assert "# TYPE http_requests_total counter" in text
		ce, vary, body = get("/metrics", "br")
		assert ce == "br", ce
		assert "# TYPE process_cpu_seconds_total counter" in brotli.decompress(body).decode()
		print("decoded")
	EOF
	assert_success
	assert_output decoded
}

@test "compress: the answer follows Accept-Encoding's weights, identity;q=0 and *" {
	serve_big
	run head_of "$URL/big.json"
	refute_line --partial 'content-encoding:'
	assert_line 'vary: Accept-Encoding'
	run head_of "$URL/big.json" -H 'Accept-Encoding: br;q=0.2, gzip;q=0.9'
	assert_line 'content-encoding: gzip'
	run head_of "$URL/big.json" -H 'Accept-Encoding: *;q=0.5, br;q=0'
	assert_line 'content-encoding: gzip'
	run head_of "$URL/big.json" -H 'Accept-Encoding: identity'
	refute_line --partial 'content-encoding:'
	# nothing acceptable: an answer without coding rather than a 406 (RFC 9110)
	run head_of "$URL/big.json" -H 'Accept-Encoding: identity;q=0, zstd'
	assert_line 'HTTP/1.1 200 OK'
	refute_line --partial 'content-encoding:'
	# a malformed element is skipped, the rest still counts
	run head_of "$URL/big.json" -H 'Accept-Encoding: br;q=7, gzip'
	assert_line 'content-encoding: gzip'
}

@test "compress: HEAD carries GET's head, the compressed length included, without a body" {
	serve_big
	get=$(head_of "$URL/big.json" -H 'Accept-Encoding: gzip' | grep -v '^date:')
	run head_of "$URL/big.json" -I -H 'Accept-Encoding: gzip'
	run bash -c 'grep -v "^date:" <<<"$1"' _ "$output"
	assert_equal "$output" "$get"
	run bash -c "printf 'HEAD /big.json HTTP/1.1\r\nHost: a\r\nAccept-Encoding: br\r\nConnection: close\r\n\r\n' | socat -t 2 - TCP:127.0.0.1:$SERVER_PORT | wc -c"
	[ "$output" -lt 400 ]
}

@test "compress: a static variant answers If-None-Match with its own ETag by 304, another variant's tag by 200" {
	serve_big
	etag_br=$(head_of "$URL/big.json" -H 'Accept-Encoding: br' | sed -n 's/^etag: //p')
	etag_id=$(head_of "$URL/big.json" | sed -n 's/^etag: //p')
	[ -n "$etag_br" ]
	[ "$etag_br" != "$etag_id" ]
	run head_of "$URL/big.json" -H 'Accept-Encoding: br' -H "If-None-Match: \"x\", W/$etag_br"
	assert_line 'HTTP/1.1 304 Not Modified'
	assert_line "etag: $etag_br"
	refute_line --partial 'content-encoding:'
	run head_of "$URL/big.json" -H 'Accept-Encoding: gzip' -H "If-None-Match: $etag_br"
	assert_line 'HTTP/1.1 200 OK'
}

@test "compress: small answers, other types and --compress none go as they are, without Vary" {
	printf 'PNGDATA%.0s' {1..500} >"$D/pic.png"
	serve_big --route "GET /pic.png=@$D/pic.png"
	run head_of "$URL/hello" -H 'Accept-Encoding: gzip'
	refute_line --partial 'content-encoding:'
	refute_line --partial 'vary:'
	run head_of "$URL/pic.png" -H 'Accept-Encoding: gzip'
	refute_line --partial 'content-encoding:'
	stop_server "$SERVER_PID"
	serve_big --compress none
	run head_of "$URL/big.json" -H 'Accept-Encoding: gzip, br'
	refute_line --partial 'content-encoding:'
	run head_of "$URL/metrics" -H 'Accept-Encoding: gzip, br'
	refute_line --partial 'content-encoding:'
}

@test "compress: --compress gzip, --compress-min and --compress-types choose what is compressed" {
	serve_big --compress gzip --compress-min 10 --compress-types 'application/json,text/plain' \
		--type text/plain --route 'GET /short=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
	run head_of "$URL/big.json" -H 'Accept-Encoding: br, gzip'
	assert_line 'content-encoding: gzip'
	run head_of "$URL/short" -H 'Accept-Encoding: gzip'
	assert_line 'content-encoding: gzip'
	run bash -c "curl -s -H 'Accept-Encoding: gzip' '$URL/short' | gunzip"
	assert_output aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
}

@test "compress: bad --compress, --compress-min and --compress-types values exit 2" {
	run -2 --separate-stderr dsys-serve --compress zstd
	assert_output ''
	[[ "$stderr" == *"zstd"* ]]
	run -2 dsys-serve --compress-types 'text'
	run -2 dsys-serve --compress-types '*/html'
	run -2 dsys-serve --compress-min lots
}

@test "compress: dsys-counter serve takes a gzip body, refuses a bomb with 413 and an unknown coding with 415" {
	start_server counter dsys-counter serve --listen 127.0.0.1:0 --threads 1 --max-body-bytes 64k
	url="http://127.0.0.1:$SERVER_PORT"
	run "$DSYS_PY" - "$url" <<-'EOF'
		import gzip, json, sys, urllib.error, urllib.request
		url = sys.argv[1]
		def post(path, body, enc, method="POST"):
		    req = urllib.request.Request(url + path, data=body, method=method,
		                                 headers={"Content-Encoding": enc})
		    try:
		        r = urllib.request.urlopen(req)
		        return r.status, r.headers, r.read()
		    except urllib.error.HTTPError as e:
		        return e.code, e.headers, e.read()
		items = [{"key": "k%d" % (i % 10), "by": 1} for i in range(1000)]
		st, _, body = post("/incr", gzip.compress(json.dumps(items).encode()), "gzip")
		assert st == 200, (st, body)
		assert len(body.splitlines()) == 1 and json.loads(body)[0]["value"] >= 1
		st, _, body = post("/counters/g", gzip.compress(b'{"value": 42}'), "gzip", "PUT")
		assert (st, json.loads(body)) == (200, {"key": "g", "value": 42}), (st, body)
		# a bomb: 8 MiB of spaces in about 8 KiB, within --max-body-bytes as
		# sent, caught while inflating
		bomb = gzip.compress(b" " * (8 << 20), 9)
		assert len(bomb) < 64 * 1024
		st, _, body = post("/incr", bomb, "gzip")
		assert st == 413 and b"inflates past" in body, (st, body)
		st, _, body = post("/incr", b"not gzip at all", "gzip")
		assert st == 400, (st, body)
		st, headers, body = post("/incr", b'{"key":"a"}', "br")
		assert st == 415 and headers["Accept-Encoding"] == "gzip", (st, headers)
		st, _, body = post("/incr", b'{"key":"a"}', "identity")
		assert st == 200, (st, body)
		print("ok")
	EOF
	assert_success
	assert_output ok
	# nothing else was harmed: the counters hold what the good requests did
	run curl -s "$url/counters/g"
	assert_output '{"key":"g","value":42}'
	run curl -s "$url/counters/k0"
	assert_output '{"key":"k0","value":100}'
}
