#!/bin/bash
# release.sh -- blue-green and rolling releases behind nginx, driven by the
# registry, under load, with no failed request.
#
#   examples/release.sh blue-green    # one blue instance, then one green
#   examples/release.sh rolling       # three instances replaced one at a time
#
# Every instance is a dsys-serve run by `dsys-register add web ... --check
# CHECK -- dsys-serve ...`: it is listed (passing) only after its check
# passed twice in a row, every CHECK_INTERVAL (default 1s).  The check is
# "exec:test ! -e DRAIN && curl -sf http://ADDR/health": the instance is
# healthy while it answers /health and nobody has asked it out of rotation
# by creating its drain file (as a load balancer's health check goes down
# before a server is stopped).  nginx proxies to the upstream that
# `dsys-register render web` writes from the passing instances, checked by
# `nginx -t` (--check-cmd) before it replaces the live file, and loaded by
# `nginx -s reload` (--exec).  The release step, for each old instance:
#
#   1. start the new one under dsys-register add; wait until it is passing
#      (its check, not a sleep) and nginx routes to it (/live through nginx
#      names it, and the old nginx workers have exited: at most
#      NGINX_SHUTDOWN, default 2 s, nginx's worker_shutdown_timeout, after
#      which an old worker closes what it still has);
#   2. create the old one's drain file: its check fails twice, it turns
#      critical and leaves the list, render reloads nginx without it; wait
#      until nginx routes only to the others (it is still serving then);
#   3. SIGTERM the old one's add: its record is removed and its dsys-serve
#      drains (closes its listener, answers what it has) and exits 0; the
#      idle keep-alive connections nginx still holds to it are closed after
#      --drain-timeout 2s, since nothing is sent on them any more.  Had
#      a request still gone there, nginx retries a refused connection on
#      the next server (proxy_next_upstream).
#
# nginx's side of a reload, and why the configuration below reads as it
# does.  On `nginx -s reload` the master starts new workers and tells the
# old ones to quit gracefully: they close their listening sockets (the
# master keeps them, the new workers accept from them), close every
# connection they hold idle, finish the requests in progress and exit.
#   - An idle client keep-alive connection closed that way races the
#     client's next request on it: the client sees the connection end
#     before any byte of an answer.  Measured here, 100 reloads under
#     dsys-bench --rate 2000/s: 165 such failures with keepalive_timeout 65,
#     none with keepalive_timeout 0, which this configuration keeps (every
#     request on a connection of its own; a client that retries an
#     idempotent request on a reused connection, as browsers and curl do,
#     would hide the race instead).
#   - A connection accepted whose request has not been read yet is idle too.
#     `listen ... deferred` (TCP_DEFER_ACCEPT) has the kernel hand nginx a
#     connection only with its first bytes, which nginx then reads at once,
#     so an old worker never holds one accepted and unread.
#   - An old worker that still has a request in progress runs on with the
#     old upstream: had the release stopped an instance then, that request
#     (or the next one such a worker takes) would go to an instance that is
#     gone.  worker_shutdown_timeout bounds an old worker's life, and the
#     release waits for the old workers to be gone before each stop, and
#     fails when one outlives NGINX_SHUTDOWN + 3 s (nginx_old_workers_ms in
#     each step says how long they took).
#   - Upstream keep-alive connections (keepalive 16) an old worker holds
#     idle are closed by it as it quits; the instance's drain closes the
#     others.
# NGINX_LOG (default warn) is nginx's error_log level: notice shows each
# worker start and exit, info each connection closed.
#
# Rollback: when a new instance does not become passing within CHECK_TIMEOUT
# (default 10s), or its process exits, it is stopped, the old ones keep
# serving, and the script exits 1 with "rolled_back" in its line.
# BROKEN=start starts the new instances with a route to a file that does not
# exist, as a bad deploy would: dsys-serve exits at once.  BROKEN=check
# starts them serving but failing their check (their drain file, below,
# made up front).
#
# dsys-bench runs through nginx at RATE (default 1000/s) over CONNECTIONS
# (default 10) for DURATION (default 16s blue-green, 40s rolling); the release
# starts after a sixth of it and must end before the load does (under_load).  With Prometheus installed (PROMETHEUS=0 turns
# it off) every instance is scraped every 200 ms and the switch is read back
# from Prometheus: how many /version requests each instance answered and the
# last second in which each had traffic.  Prints one JSON line; exit 0 when
# the release finished with 0 errors (and, with Prometheus, nothing lost:
# dsys-bench's count equals the instances' sum), 1 otherwise.
set -eu
[ -n "${DSYS_BIN:-}" ] && PATH="$DSYS_BIN:$PATH"
MODE=${1:-blue-green}
case $MODE in
blue-green) n=1 DURATION=${DURATION:-16s} ;;
rolling) n=3 DURATION=${DURATION:-40s} ;;
*) echo "usage: release.sh blue-green|rolling" >&2; exit 2 ;;
esac
RATE=${RATE:-1000/s}
CONNECTIONS=${CONNECTIONS:-10}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-10}
CHECK_INTERVAL=${CHECK_INTERVAL:-1s}
NGINX_SHUTDOWN=${NGINX_SHUTDOWN:-2}
old_ms=0
BROKEN=${BROKEN:-0}
NGINX=${NGINX:-/usr/sbin/nginx}
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus >/dev/null && echo 1 || echo 0)}
PY=${DSYS_PY:-/usr/bin/python3}
tmp=$(mktemp -d)
store=file:$tmp/registry
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || :; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || :; done
	[ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
say() { echo "release: $*" >&2; }

free_ports() {
	"$PY" -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
# ports: nginx, Prometheus, then one per instance (n old, n new)
read -r nginx_port prom_port ports <<<"$(free_ports $((2 + 2 * n)))"
read -ra ports <<<"$ports"

# ---- nginx in front, its upstream rendered from the registry
ngx=$tmp/nginx
mkdir -p "$ngx"
user=
[ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
cat >"$ngx/nginx.conf.in" <<EOF
$user
worker_processes 1;
worker_shutdown_timeout ${NGINX_SHUTDOWN}s;
pid $ngx/nginx.pid;
error_log $ngx/error.log ${NGINX_LOG:-warn};
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_timeout 0;
    lingering_close off;
    client_body_temp_path $ngx/body;
    proxy_temp_path $ngx/proxy;
    fastcgi_temp_path $ngx/fastcgi;
    uwsgi_temp_path $ngx/uwsgi;
    scgi_temp_path $ngx/scgi;
    include @UPSTREAM@;
    server {
        listen 127.0.0.1:$nginx_port deferred;
        location / {
            proxy_pass http://web;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503;
        }
        location = /live {
            default_type text/plain;
            return 200 "\$release_live\n";
        }
    }
}
EOF
sed "s|@UPSTREAM@|$ngx/upstream.conf|" "$ngx/nginx.conf.in" >"$ngx/nginx.conf"
# the ids of the instances nginx routes to, answered at /live
cat >"$tmp/upstream.tmpl" <<'EOF'
upstream {{service}} {
{{range}}    server {{addr}};
{{end}}    keepalive 16;
}
geo $release_live {
    default "{{range}}{{id}} {{end}}";
}
EOF
nginx_args=(-p "$ngx" -e "$ngx/error.log")
check_cmd="sed 's|@UPSTREAM@|{}|' $ngx/nginx.conf.in >$ngx/check.conf && $NGINX ${nginx_args[*]} -t -q -c $ngx/check.conf"
reload_cmd="$NGINX ${nginx_args[*]} -c $ngx/nginx.conf -s reload"

# start ID PORT VERSION: one instance under dsys-register add (its pid in
# $add_pid); its lines go to $tmp/ID.out
start() {
	local id=$1 port=$2 version=$3 extra=()
	if [ "$version" = "$new_version" ]; then
		case $BROKEN in
		start) extra=(--route "GET /config=@$tmp/missing.json") ;;
		check) touch "$tmp/$id.drain" ;;
		esac
	fi
	dsys-register add web --store "$store" --id "$id" --addr "127.0.0.1:$port" \
		--meta "version=$version" --ttl 5s \
		--check "exec:test ! -e $tmp/$id.drain && curl -sf -o /dev/null http://127.0.0.1:$port/health" \
		--check-interval "$CHECK_INTERVAL" --rise 2 --fall 2 \
		-- dsys-serve --listen "127.0.0.1:$port" --threads 1 --drain-timeout 2s \
		--route "GET /version=$version" "${extra[@]}" \
		>"$tmp/$id.out" 2>"$tmp/$id.err" &
	add_pid=$!
	pids+=("$add_pid")
}

# passing ID PID [SECONDS]: wait until instance ID is listed passing; 1
# when its add (PID) exited or SECONDS (default CHECK_TIMEOUT) passed first
now_ms() { echo $(($(date +%s%N) / 1000000)); }
passing() {
	local end=$(($(now_ms) + ${3:-$CHECK_TIMEOUT} * 1000))
	while [ "$(now_ms)" -lt "$end" ]; do
		dsys-register list web --store "$store" | jq -r .id | grep -qx -- "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# routed +ID|-ID ...: wait until nginx's live set holds each +ID and no
# -ID, then until its old workers are gone: they still route by the old
# upstream, so an instance that left it is stopped only after them.
# worker_shutdown_timeout bounds how long one may finish what it has; 1
# (with a message) when one is still there NGINX_SHUTDOWN + 3 s after the
# live set was right.  How long the old workers took goes to old_ms (the
# longest over the step).
routed() {
	local live end=$(($(now_ms) + 20000)) w ok t
	while [ "$(now_ms)" -lt "$end" ]; do
		live=" $(curl -s "http://127.0.0.1:$nginx_port/live" | xargs) "
		ok=1
		for w in "$@"; do
			case $w in
			+*) [[ "$live" == *" ${w#+} "* ]] || ok=0 ;;
			-*) [[ "$live" != *" ${w#-} "* ]] || ok=0 ;;
			esac
		done
		if [ "$ok" = 1 ]; then
			t=$(now_ms)
			end=$((t + (NGINX_SHUTDOWN + 3) * 1000))
			while [ "$(old_workers)" -gt 0 ]; do
				if [ "$(now_ms)" -ge "$end" ]; then
					say "nginx's old workers still run $((NGINX_SHUTDOWN + 3)) s after the reload: $(ps -o pid=,args= --ppid "$nginx_pid" | xargs)"
					return 1
				fi
				sleep 0.05
			done
			t=$(($(now_ms) - t))
			[ "$t" -le "$old_ms" ] || old_ms=$t
			return 0
		fi
		sleep 0.05
	done
	say "nginx did not route as $* (live:$live)"
	return 1
}
# old_workers: how many nginx workers are shutting down (every worker but
# the one of the live configuration, worker_processes being 1)
old_workers() {
	local n
	n=$(pgrep -c -P "$nginx_pid") || :
	echo $((${n:-0} > 1 ? n - 1 : 0))
}
# name VERSION K: an instance's id, "blue" alone, "v1-0" in a set of three
name() { if [ "$n" -gt 1 ]; then echo "$1-$2"; else echo "$1"; fi; }
ids_of() { dsys-register list web --store "$store" | jq -r .id | sort | xargs; }

# ---- the old set: blue (or v1), passing before anything else starts
old_ids=() old_pids=() new_ids=() new_pids=()
old_version=blue new_version=green
[ "$MODE" = rolling ] && old_version=v1 new_version=v2
for ((k = 0; k < n; k++)); do
	id=$(name "$old_version" "$k")
	start "$id" "${ports[k]}" "$old_version"
	old_ids+=("$id") old_pids+=("$add_pid")
done
for ((k = 0; k < n; k++)); do
	# the old set is set-up, not a release step: CHECK_TIMEOUT (which a
	# rollback test shortens) is not its bound
	passing "${old_ids[k]}" "${old_pids[k]}" 60 || { say "${old_ids[k]} never passed"; cat "$tmp/${old_ids[k]}.err" >&2; exit 1; }
done

dsys-register render web --store "$store" --template "$tmp/upstream.tmpl" \
	--out "$ngx/upstream.conf" --once >/dev/null
"$NGINX" "${nginx_args[@]}" -c "$ngx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
pids+=("$nginx_pid")
dsys-register render web --store "$store" --template "$tmp/upstream.tmpl" \
	--out "$ngx/upstream.conf" --wait 50ms:500ms --check-cmd "$check_cmd" --exec "$reload_cmd" \
	>"$tmp/render.out" 2>"$tmp/render.err" &
pids+=($!)
routed "${old_ids[@]/#/+}"

if [ "$PROMETHEUS" = 1 ]; then
	{
		echo "global: {scrape_interval: 200ms, scrape_timeout: 150ms}"
		echo "scrape_configs:"
		echo "  - job_name: web"
		echo "    static_configs:"
		for p in "${ports[@]}"; do echo "      - targets: ['127.0.0.1:$p']"; done
	} >"$tmp/prometheus.yml"
	prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
		--web.listen-address="127.0.0.1:$prom_port" >"$tmp/prom.log" 2>&1 &
	pids+=($!)
	# Prometheus applies its targets a few seconds after start: wait until
	# it has scraped every old instance
	for ((i = 0; i < 300; i++)); do
		up=$(curl -sf "http://127.0.0.1:$prom_port/api/v1/targets?state=active" 2>/dev/null |
			jq '[.data.activeTargets[] | select(.health == "up")] | length' 2>/dev/null) || :
		[ "${up:-0}" = "$n" ] && break
		sleep 0.1
	done
fi

start_s=$(date +%s.%N)
dsys-bench --json --rate "$RATE" -d "$DURATION" -c "$CONNECTIONS" -t 1 \
	"http://127.0.0.1:$nginx_port/version" >"$tmp/bench.json" 2>"$tmp/bench.err" &
bench=$!
sleep "$(awk -v d="${DURATION%s}" 'BEGIN { print d / 6 }')"

# ---- the release, one old instance at a time
result=released
steps=()
for ((k = 0; k < n; k++)); do
	id=$(name "$new_version" "$k")
	start "$id" "${ports[n + k]}" "$new_version"
	new_pid=$add_pid
	old_ms=0
	t0=$(date +%s%N)
	if ! passing "$id" "$new_pid"; then
		say "$id did not pass its check: rolling back, ${old_ids[*]:k} keep serving"
		steps+=("$(jq -nc --arg old "${old_ids[k]}" --arg new "$id" \
			--arg why "$(kill -0 "$new_pid" 2>/dev/null && echo "not passing after ${CHECK_TIMEOUT}s" || echo "exited")" \
			'{old: $old, new: $new, rolled_back: $why}')")
		kill -TERM "$new_pid" 2>/dev/null || :
		wait "$new_pid" 2>/dev/null || :
		result=rolled_back
		keep=("${old_ids[@]:k}")
		routed "-$id" "${keep[@]/#/+}" || result=failed
		break
	fi
	t1=$(date +%s%N)
	routed "+$id" || { result=failed; break; }
	t1b=$(date +%s%N)
	# take the old one out of rotation while it still serves: its check
	# fails, render drops it, nginx reloads; only then is it stopped
	touch "$tmp/${old_ids[k]}.drain"
	t2=$(date +%s%N)
	routed "-${old_ids[k]}" "+$id" || { result=failed; break; }
	t3=$(date +%s%N)
	[ "$PROMETHEUS" = 1 ] && sleep 0.6   # three scrapes of its last count
	kill -TERM "${old_pids[k]}"
	st=0
	wait "${old_pids[k]}" || st=$?
	[ "$st" = 0 ] || { say "${old_ids[k]} exited $st"; result=failed; break; }
	t4=$(date +%s%N)
	steps+=("$(jq -nc --arg old "${old_ids[k]}" --arg new "$id" \
		--argjson pass_ms $(((t1 - t0) / 1000000)) --argjson out_ms $(((t3 - t2) / 1000000)) \
		--argjson in_ms $(((t1b - t1) / 1000000)) --argjson stop_ms $(((t4 - t3) / 1000000)) \
		--argjson old_workers_ms "$old_ms" \
		'{old: $old, new: $new, pass_ms: $pass_ms, in_ms: $in_ms, out_ms: $out_ms, stop_ms: $stop_ms,
		  nginx_old_workers_ms: $old_workers_ms}')")
	new_ids+=("$id") new_pids+=("$new_pid")
done
released_s=$(date +%s.%N)
under_load=false
kill -0 "$bench" 2>/dev/null && under_load=true
st=0
wait "$bench" || st=$?
[ "$st" = 0 ] || { say "dsys-bench exited $st"; cat "$tmp/bench.err" >&2; result=failed; }

# ---- what Prometheus saw: per instance, /version requests answered and the
# last second with traffic (the switch: the old ones stop, the new go on)
prom='null'
if [ "$PROMETHEUS" = 1 ]; then
	sleep 0.5   # two more scrapes of the ones still running
	q='max_over_time(sum by (instance) (http_requests_total{route="/version"})[5m:200ms])'
	ans=$(curl -sf "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$q")
	curl -sf "http://127.0.0.1:$prom_port/api/v1/targets" >"$tmp/targets.json" || :
	curl -sf "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode 'query=up[1m]' >"$tmp/raw.json" || :
	end=$(date +%s)
	last=$(curl -sf "http://127.0.0.1:$prom_port/api/v1/query_range" \
		--data-urlencode 'query=sum by (instance) (rate(http_requests_total{route="/version"}[1s])) > 0' \
		--data-urlencode "start=${start_s%.*}" --data-urlencode "end=$end" --data-urlencode step=0.2)
	prom=$(jq -c --argjson last "$last" --argjson start "$start_s" --argjson released "$released_s" '
		([$last.data.result[] | {key: .metric.instance, value: (.values[-1][0] - $start | . * 10 | round / 10)}] | from_entries) as $l |
		{answered: ([.data.result[] | {key: .metric.instance, value: (.value[1] | tonumber)}] | from_entries),
		 last_traffic_s: $l, released_s: ($released - $start | . * 10 | round / 10)}' <<<"$ans")
fi

jq -c --arg mode "$MODE" --arg result "$result" --argjson prom "$prom" \
	--argjson steps "[$(IFS=,; echo "${steps[*]}")]" --arg live "$(ids_of)" \
	--argjson under_load "$under_load" '
	(.errors | .connect + .read + .write + .timeout + .interrupted +
	 ([.status // {} | to_entries[] | .value] | add // 0)) as $errors |
	{mode: $mode, result: $result, requests, errors: $errors, live: $live,
	 under_load: $under_load, steps: $steps}
	+ (if $prom == null then {} else
	   {prometheus: $prom, lost: (.requests - ([$prom.answered[]] | add))} end)' \
	"$tmp/bench.json" | tee "$tmp/result.json"
[ "$result" = released ] || exit 1
jq -e '.errors == 0 and .requests > 0 and (.lost // 0) == 0 and .under_load' "$tmp/result.json" >/dev/null
