#!/usr/bin/env bash
# make bench, section "register": dsys-register on file: and a 3-node etcd,
# beside etcdctl against the same etcd.
#
# The etcd members run on CPU $BENCH_SERVER_CPU; every command, watcher
# and driver on CPU $BENCH_LOAD_CPU.  Cases, each BENCH_ROUNDS rounds with
# the order reversed every other round:
#   regs       BENCH_REG_CMDS (40) registrations one after another, each a
#              whole lifecycle as a shell user runs it: `dsys-register add
#              web --addr A --id I -- true` (lease, put, CMD, delete,
#              revoke) on file: and etcd, and `etcdctl put K V; etcdctl del
#              K` (the least etcdctl can do: no lease): regs_per_s
#   watch      BENCH_REG_CHANGES (200) changes, half up and half down, each
#              timed from the start of the command that makes it to the
#              line of a watcher in another process (tests/bench/
#              register_watch.py): `dsys-register add` / SIGTERM to it
#              seen by `dsys-register watch`, and `etcdctl put` / `etcdctl
#              del` seen by `etcdctl watch --prefix`: p50_us, p99_us of
#              all changes (issue 17's bars: p99 under 50000 on etcd, under
#              20000 on file:), and up_p99_us, down_p99_us of each kind.
#              On file: also BENCH_REG_EXPIRES (20) adds killed with
#              SIGKILL, each `down` timed from the expiry its record holds
#              (what a kill -9 costs beyond its TTL): expire_p99_us
#   render     `dsys-register render --once` of BENCH_REG_INSTANCES (1000)
#              passing instances of a file: registry, and of the etcd one
#              (the same records under one lease, service "big"), into an
#              nginx upstream block, BENCH_REG_RENDERS (10) runs, each
#              into a file of its own (a render that writes, syncs and
#              renames; one equal to the file there would leave it alone):
#              each started by tests/bench/cmdtime (posix_spawn, no shell):
#              ms_per_render, the whole command included, wall clock (the
#              bar: under 10), cpu_ms,
#              its CPU time (user + system, steadier on a busy machine),
#              ms_start, what `dsys-register --version` takes, the
#              process start alone (a spawn and an exec with its dynamic
#              linking: on this kind of VM 2-3 ms, most of which
#              /bin/true pays too), and ms_own, ms_per_render less
#              ms_start: the render itself (reading the registry, the
#              template, writing, syncing and renaming the file)
#   ratio      the median of per-round ratios, > 1 where dsys-register is
#              ahead: regs dsys-register-etcd/etcdctl, and watch p99
#              etcdctl/dsys-register-etcd
# Check it with short settings, e.g.
#   BENCH_ROUNDS=1 BENCH_REG_CMDS=5 BENCH_REG_CHANGES=20 BENCH_REG_EXPIRES=5 \
#       BENCH_REG_INSTANCES=100 BENCH_REG_RENDERS=3 tests/bench/bench-45-register.sh
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/bench/lib.sh
. "$here/lib.sh"
# shellcheck source=tests/bench/etcd.sh
. "$here/etcd.sh"
BENCH_COLUMNS="regs_per_s p50_us p99_us up_p99_us down_p99_us expire_p99_us ms_per_render cpu_ms ms_start ms_own ratio"
BENCH_RATIOS=""
bench_init register || exit 1
CMDTIME=$DSYS_BUILD/bench/cmdtime
if ! command -v dsys-register >/dev/null 2>&1 || [ ! -x "$CMDTIME" ]; then
	bench_skip "register: dsys-register or $CMDTIME not built"
	exit 0
fi
cmds=${BENCH_REG_CMDS:-40}
changes=${BENCH_REG_CHANGES:-200}
expires=${BENCH_REG_EXPIRES:-20}
instances=${BENCH_REG_INSTANCES:-1000}
renders=${BENCH_REG_RENDERS:-10}
export DSYS_LOG_LEVEL=warn ETCDCTL_API=3
declare -A URL=([dsys-register-file]="file:$(bench_dir reg)")
names="dsys-register-file"
etcd_ok=0
if bench_need etcd etcdctl; then
	if bench_etcd3; then
		etcd_ok=1
		URL[dsys-register-etcd]=$ETCD_URL
		names+=" dsys-register-etcd etcdctl"
		bench_log "etcd: 3 members at $ETCD_EPS"
	else
		bench_fail "etcd: the 3 members did not become healthy"
	fi
fi

# on the load CPU: "$@" $cmds times with $i the iteration, stop at a failure
load_loop() {
	taskset -c "$BENCH_LOAD_CPU" bash -c 'for ((i = 0; i < $1; i++)); do eval "$2" >/dev/null || exit 1; done' _ "$cmds" "$1"
}

declare -A regs watchp99
regs() { # CASE NAME ROUND
	local body t0 t1
	case $2 in
	dsys-register-*)
		body="dsys-register add web --store '${URL[$2]}' --id r$3-\$i --addr 127.0.0.1:\$((20000 + i)) -- true" ;;
	etcdctl)
		body="etcdctl --endpoints '$ETCD_EPS' put dsys/bench/web/r$3-\$i '{\"Op\":0,\"Addr\":\"127.0.0.1:'\$((20000 + i))'\"}' && etcdctl --endpoints '$ETCD_EPS' del dsys/bench/web/r$3-\$i" ;;
	esac
	cmds=2 load_loop "${body//r$3-/warm-}" || { bench_fail "$1 $2: the warm-up failed"; return 1; }
	t0=$(date +%s%N)
	load_loop "$body" || { bench_fail "$1 $2: a registration failed"; return 1; }
	t1=$(date +%s%N)
	regs[$2.$3]=$(awk -v n="$cmds" -v ns="$((t1 - t0))" 'BEGIN { printf "%.1f", n * 1e9 / ns }')
	bench_record "$1" "$2" "$3" regs_per_s="${regs[$2.$3]}"
	bench_log "$(printf '%-7s round %s %-19s %7s registrations/s' "$1" "$3" "$2" "${regs[$2.$3]}")"
}

watchlat() { # CASE NAME ROUND
	local mode=dsys where=${URL[$2]:-}
	[ "$2" = etcdctl ] && { mode=etcdctl; where=$ETCD_EPS; }
	if ! taskset -c "$BENCH_LOAD_CPU" /usr/bin/python3 "$here/register_watch.py" "$mode" "$where" "$changes" \
		"$expires" >"$BENCH_OUT" 2>"$BENCH_OUT.err"; then
		bench_fail "$1 $2: $(tail -1 "$BENCH_OUT.err")"
		return 1
	fi
	local -A v
	local k
	for k in p50_us p99_us up_p50_us up_p99_us down_p50_us down_p99_us expire_p50_us expire_p99_us; do
		v[$k]=$(sed -n "s/.*\"$k\": *\([0-9]*\).*/\1/p" "$BENCH_OUT")
	done
	watchp99[$2.$3]=${v[p99_us]}
	bench_record "$1" "$2" "$3" p50_us="${v[p50_us]}" p99_us="${v[p99_us]}" \
		up_p99_us="${v[up_p99_us]}" down_p99_us="${v[down_p99_us]}" \
		${v[expire_p99_us]:+expire_p99_us="${v[expire_p99_us]}"}
	bench_log "$(printf '%-7s round %s %-19s all: p50 %6.1f ms p99 %6.1f ms | up: p50 %6.1f p99 %6.1f | down: p50 %6.1f p99 %6.1f' \
		"$1" "$3" "$2" "$(ms "${v[p50_us]}")" "$(ms "${v[p99_us]}")" "$(ms "${v[up_p50_us]}")" \
		"$(ms "${v[up_p99_us]}")" "$(ms "${v[down_p50_us]}")" "$(ms "${v[down_p99_us]}")")"
	if [ -n "${v[expire_p99_us]}" ]; then
		bench_log "$(printf '%-7s round %s %-19s kill -9, from the expiry: p50 %6.1f ms p99 %6.1f ms' \
			"$1" "$3" "$2" "$(ms "${v[expire_p50_us]}")" "$(ms "${v[expire_p99_us]}")")"
	fi
}
ms() { awk -v us="${1:-0}" 'BEGIN { printf "%.1f", us / 1000 }'; }

# the render case's registry: records written as add writes them (the
# layout of dsys-register(1)), expiring in an hour
rdir=$(bench_dir render)
/usr/bin/python3 - "$rdir/web" "$instances" <<'EOF2'
import json, os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
now = int(time.time() * 1000)
for i in range(n):
    addr = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:8080"
    rec = {"Op": 0, "Addr": addr, "Metadata": {"service": "web", "id": f"i{i}", "status": "passing",
           "since_ms": now, "meta": {"zone": "z%d" % (i % 3)}, "expires_ms": now + 3600_000}}
    with open(os.path.join(d, f"i{i}"), "w") as f:
        json.dump(rec, f)
EOF2
# and on etcd: the same records under service "big", on one lease (as
# many add processes would hold one each; the render reads only the keys),
# written through etcd's JSON gateway, the values as reg_value_format
# writes them (compact JSON, no expires_ms: the lease is the expiry)
render_etcd=$etcd_ok
if [ $etcd_ok = 1 ] && ! /usr/bin/python3 - "${ETCD_EPS%%,*}" "$instances" <<'EOF2'
import base64, http.client, json, sys, time, urllib.parse
u, n = urllib.parse.urlparse(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
def call(path, body):
    c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    out = json.loads(r.read())
    if r.status != 200:
        sys.exit(f"etcd {path}: {out}")
    return out
b64 = lambda s: base64.b64encode(s.encode()).decode()
lease = call("/v3/lease/grant", {"TTL": 3600})["ID"]
now = int(time.time() * 1000)
for i in range(n):
    addr = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:8080"
    rec = {"Op": 0, "Addr": addr, "Metadata": {"service": "big", "id": f"i{i}", "status": "passing",
           "since_ms": now, "meta": {"zone": "z%d" % (i % 3)}}}
    call("/v3/kv/put", {"key": b64(f"dsys/services/big/i{i}"),
                        "value": b64(json.dumps(rec, separators=(",", ":"))), "lease": lease})
EOF2
then
	bench_fail "render: the etcd registry could not be written"
	render_etcd=0
fi
cat >"$rdir/upstream.tpl" <<'EOF2'
upstream web {
{{range}}    server {{addr}}; # {{id}} {{meta.zone or "none"}}
{{end}}}
EOF2
render() { # CASE NAME ROUND
	local out ms start cpu own
	local -a cmd=(dsys-register render web --store "file:$rdir" --template "$rdir/upstream.tpl" --once)
	[ "$2" = dsys-register-etcd ] && cmd=(dsys-register render big --store "$ETCD_URL"
		--template "$rdir/upstream.tpl" --once)
	rm -f "$rdir"/upstream.*conf   # the count below is of this NAME's file
	taskset -c "$BENCH_LOAD_CPU" "${cmd[@]}" --out "$rdir/upstream.conf" >/dev/null ||
		{ bench_fail "$1: render failed"; return 1; }
	# Each render writes a file of its own ({i}: cmdtime's run number): a
	# render equal to the file it would replace leaves it alone (as
	# consul-template does), and what is timed here is a render that
	# writes, syncs and renames.  cmdtime spawns each itself, no shell's
	# fork in the time, and reports the renders' CPU time too.
	if ! out=$(taskset -c "$BENCH_LOAD_CPU" "$CMDTIME" --warm 2 "$renders" "${cmd[@]}" \
		--out "$rdir/upstream.{i}.conf" 2>&1); then
		bench_fail "$1: render failed: $out"
		return 1
	fi
	ms=$(echo "$out" | sed -n 's/.*"mean_us":\([0-9]*\).*/\1/p' | awk '{ printf "%.2f", $1 / 1000 }')
	cpu=$(echo "$out" | sed -n 's/.*"cpu_us":\([0-9]*\).*/\1/p' | awk '{ printf "%.2f", $1 / 1000 }')
	# what of it is the process's start: the same number of --version
	if ! out=$(taskset -c "$BENCH_LOAD_CPU" "$CMDTIME" --warm 2 "$renders" dsys-register --version 2>&1); then
		bench_fail "$1: dsys-register --version failed: $out"
		return 1
	fi
	start=$(echo "$out" | sed -n 's/.*"mean_us":\([0-9]*\).*/\1/p' | awk '{ printf "%.2f", $1 / 1000 }')
	if [ "$(grep -c 'server 10\.' "$rdir/upstream.conf")" -ne "$instances" ]; then
		bench_fail "$1: the upstream block does not hold $instances servers"
		return 1
	fi
	own=$(awk -v a="$ms" -v b="$start" 'BEGIN { printf "%.2f", a - b }')
	bench_record "$1" "$2" "$3" ms_per_render="$ms" cpu_ms="$cpu" ms_start="$start" ms_own="$own"
	bench_log "$(printf '%-7s round %s %-19s %7s ms per render of %s (CPU %s ms), %s ms of it a process start, %s the render' "$1" "$3" "$2" "$ms" "$instances" "$cpu" "$start" "$own")"
}

# shellcheck disable=SC2086
bench_rounds regs "$names" regs
# shellcheck disable=SC2086
bench_rounds watch "$names" watchlat
rnames="dsys-register-file"
[ $render_etcd = 1 ] && rnames+=" dsys-register-etcd"
bench_rounds render "$rnames" render
if [ $etcd_ok = 1 ]; then
	for ((r = 1; r <= BENCH_ROUNDS; r++)); do
		if [ -n "${regs[dsys-register-etcd.$r]:-}" ] && [ -n "${regs[etcdctl.$r]:-}" ]; then
			bench_record ratio regs:dsys-register-etcd/etcdctl "$r" \
				ratio="$(awk -v a="${regs[dsys-register-etcd.$r]}" -v b="${regs[etcdctl.$r]}" 'BEGIN { printf "%.2f", a / b }')"
		fi
		if [ -n "${watchp99[dsys-register-etcd.$r]:-}" ] && [ -n "${watchp99[etcdctl.$r]:-}" ]; then
			bench_record ratio watch-p99:etcdctl/dsys-register-etcd "$r" \
				ratio="$(awk -v a="${watchp99[etcdctl.$r]}" -v b="${watchp99[dsys-register-etcd.$r]}" 'BEGIN { printf "%.2f", a / b }')"
		fi
	done
fi
bench_report ""
bench_finish
exit
