#!/usr/bin/env bash
# make bench, section "compress": a 64 KiB JSON document served compressed,
# dsys-serve (a --route body: compressed once at start, Brotli quality 11
# and gzip level 9, each variant cached with its ETag) beside nginx with
# `gzip on` (level 1, compressing every response as it goes out), both
# pinned to CPU 0 with wrk -c50 pinned to CPU 1.
#
# Cases (each BENCH_ROUNDS rounds, order reversed every other round):
#   gzip      Accept-Encoding: gzip   dsys-serve and nginx
#   br        Accept-Encoding: br     dsys-serve only (nginx-light has no Brotli)
#   identity  no Accept-Encoding      both, for reference
# Columns: requests/s, p99, server CPU per request, and bytes: the body
# size on the wire.  The bar (issue 22): dsys-serve's CPU per gzip answer
# at most nginx's.  dsys-serve pays for compression once at start, so this
# compares serving cached variants against nginx compressing each answer;
# the body size column says what each costs the network.
# the table's columns, before lib.sh sets its defaults
BENCH_COLUMNS=${BENCH_COLUMNS:-rps p99_us cpu_us_per_req server_cpu_pct bytes}
BENCH_RATIOS=${BENCH_RATIOS:-rps cpu_us_per_req bytes}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
bench_init compress || exit 1
bench_need wrk python3 curl || exit 1

# the document: ~64 KiB of JSON rows, the same bytes for every server
doc=$(bench_dir doc)/big.json
python3 -c '
import json
rows, n = [], 0
while len(json.dumps(rows)) < 64 * 1024:
    rows.append({"id": n, "name": "item %d" % n, "tags": ["red", "blue"], "price": n * 1.25, "ok": n % 3 == 0})
    n += 1
print(json.dumps(rows), end="")' >"$doc"

servers=()
if command -v dsys-serve >/dev/null 2>&1; then
	bench_start dsys-serve 0 "$(command -v dsys-serve)" --listen 127.0.0.1:0 --threads 1 \
		--route "GET /big.json=@$doc" && servers+=(dsys-serve)
else
	bench_skip "dsys-serve: not built (expected $DSYS_BUILD/bin/dsys-serve)"
fi
if [ -x /usr/sbin/nginx ]; then
	d=$(bench_dir nginx)
	port=$(bench_port)
	cp "$doc" "$d/big.json"
	user=
	[ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
	bench_render "$here/nginx-gzip.conf.in" "$d/nginx.conf" DIR="$d" PORT="$port" USER="$user"
	bench_start nginx "$port" /usr/sbin/nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" \
		-g 'daemon off;' && servers+=(nginx)
else
	bench_skip "nginx: /usr/sbin/nginx not installed (Debian nginx-light)"
fi
[ ${#servers[@]} -gt 0 ] || { bench_skip "no server started"; exit 0; }

# Each server must decode to the document under each coding it offers.
for s in "${servers[@]}"; do
	for enc in identity gzip; do
		if ! curl -s --compressed -H "Accept-Encoding: $enc" \
			"http://127.0.0.1:${BENCH_PORT[$s]}/big.json" | cmp -s - "$doc"; then
			bench_fail "$s: /big.json with Accept-Encoding: $enc does not decode to the document"
		fi
	done
done

# CASE NAME ROUND ENCODING: wrk with that Accept-Encoding, and the bytes of
# one answer's body as it crosses the wire
compressed_load() {
	local hdr=()
	[ "$4" != identity ] && hdr=(-H "Accept-Encoding: $4")
	bench_wrk "$1" "$2" "$3" /big.json -c50 "${hdr[@]}" || return 1
	local bytes
	bytes=$(curl -s -o /dev/null -w '%{size_download}' "${hdr[@]}" \
		"http://127.0.0.1:${BENCH_PORT[$2]}/big.json")
	bench_record "$1" "$2" "$3" bytes="$bytes"
}

bench_rounds gzip "${servers[*]}" compressed_load gzip
if [ -n "${BENCH_PID[dsys-serve]:-}" ]; then
	bench_rounds br dsys-serve compressed_load br
fi
bench_rounds identity "${servers[*]}" compressed_load identity

base=dsys-serve
[ -z "${BENCH_PID[dsys-serve]:-}" ] && base=nginx
bench_stop_all
echo
bench_report "$base"
bench_finish
