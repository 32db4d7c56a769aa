#!/bin/bash
# nginx-upstream.sh -- an nginx upstream block kept in step with the
# registry: requests through nginx reach the live instances only.
#
# The pattern it shows:
#
#   # each backend registers itself while it runs and passes its check
#   dsys-register add web --addr 127.0.0.1:PORT --check http://127.0.0.1:PORT/who \
#       -- my-server --port PORT &
#   # the upstream block follows the set: checked by nginx -t before it
#   # replaces the old one, never emptier than --min, then nginx reloads
#   dsys-register render web --template upstream.tpl --out upstream.conf --min 1 \
#       --check-cmd 'nginx -t -c check.conf' --exec "kill -HUP $nginx_pid" &
#
# Here three backends (Python's http.server, each answering its name at
# /who) come and go behind a real nginx on a free loopback port, started
# in a temporary directory and stopped by its PID.  nginx is told not to
# try another upstream when one fails (proxy_next_upstream off), so a dead
# server left in the block would show as a 502.  Each step prints one JSON
# line: which backends answered ROUNDS (default 20) requests and how many
# requests failed.  Exit 0 when every step saw exactly the live set and no
# failure, else 1.
set -eu
[ -n "${DSYS_BIN:-}" ] && PATH="$DSYS_BIN:$PATH"
ROUNDS=${ROUNDS:-20}
NGINX=${NGINX:-/usr/sbin/nginx}
PY=/usr/bin/python3
tmp=$(mktemp -d)
declare -A ADD=() PORT=()
nginx_pid=
render_pid=
cleanup() {
	local p
	[ -n "$render_pid" ] && kill "$render_pid" 2>/dev/null
	for p in "${ADD[@]}"; do kill "$p" 2>/dev/null || :; done
	if [ -n "$nginx_pid" ]; then
		kill -QUIT "$nginx_pid" 2>/dev/null
		wait "$nginx_pid" 2>/dev/null || :
	fi
	wait 2>/dev/null || :
	rm -rf "$tmp"
}
trap cleanup EXIT
export DSYS_STORE="file:$tmp/registry" DSYS_LOG_LEVEL=warn
die() { echo "nginx-upstream: $*" >&2; exit 1; }

free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS CMD...: until CMD succeeds, polled every 50 ms
wait_until() {
	local i n=$(($1 * 20))
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# backend NAME: http.server answering NAME at /who, registered by add while
# it runs and passes its check
backend() {
	local port
	port=$(free_port)
	PORT[$1]=$port
	mkdir -p "$tmp/$1"
	echo "$1" >"$tmp/$1/who"
	dsys-register add web --addr "127.0.0.1:$port" --id "$1" --ttl 5s \
		--check "http://127.0.0.1:$port/who" --check-interval 200ms --rise 1 --fall 1 \
		-- "$PY" -m http.server "$port" --bind 127.0.0.1 --directory "$tmp/$1" \
		>"$tmp/$1.out" 2>"$tmp/$1.err" &
	ADD[$1]=$!
	wait_until 20 grep -q '"event":"registered"' "$tmp/$1.out" || die "backend $1 did not register: $(cat "$tmp/$1.err")"
}

# nginx's configuration, its upstream block included from $1
nginx_conf() {
	local user=
	[ "$(id -u)" = 0 ] && user="user $(id -un) $(id -gn);"
	cat <<EOF
$user
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $tmp/client_body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    include $1;
    server {
        listen 127.0.0.1:$nport;
        location / {
            proxy_pass http://web;
            proxy_next_upstream off;
        }
    }
}
EOF
}

workers() { ps -o pid= --ppid "$nginx_pid" | tr -d ' ' | sort; }

# step NAME LIVE...: once nginx runs the upstream block of exactly LIVE
# (its file rendered, reloaded, the old workers gone), ROUNDS requests must
# all be answered, by LIVE only, each of LIVE at least once (round robin)
step() {
	local name=$1 i who seen=() ok=0 fail=0
	shift
	local want
	want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
	have_block() {
		local id
		for id in "${!PORT[@]}"; do
			if [[ " $want " == *" $id "* ]]; then
				grep -q "127.0.0.1:${PORT[$id]};" "$tmp/upstream.conf" || return 1
			else
				! grep -q "127.0.0.1:${PORT[$id]};" "$tmp/upstream.conf" || return 1
			fi
		done
	}
	wait_until 20 have_block || die "$name: the upstream block is not {$want}: $(cat "$tmp/upstream.conf")"
	# the reload: the workers that ran before it are gone
	wait_until 20 old_workers_gone || die "$name: nginx's old workers did not exit"
	for ((i = 0; i < ROUNDS; i++)); do
		if who=$(curl -fsS --max-time 5 "http://127.0.0.1:$nport/who" 2>>"$tmp/curl.err"); then
			ok=$((ok + 1))
			seen+=("$who")
		else
			fail=$((fail + 1))
		fi
	done
	local got
	got=$(printf '%s\n' "${seen[@]}" | sort -u | tr '\n' ' ')
	printf '{"step":"%s","upstream":%s,"answered_by":%s,"ok":%d,"failed":%d}\n' "$name" \
		"$(printf '%s\n' "$@" | sort | jq -R . | jq -cs .)" \
		"$(printf '%s\n' "${seen[@]}" | sort -u | jq -R . | jq -cs .)" "$ok" "$fail"
	[ "$fail" = 0 ] && [ "$got" = "$want" ]
}

old=
old_workers_gone() {
	local w
	[ -n "$old" ] || return 0
	for w in $old; do
		kill -0 "$w" 2>/dev/null && return 1
	done
	return 0
}

status=0
backend a
backend b
nport=$(free_port)
cat >"$tmp/upstream.tpl" <<'EOF'
upstream web {
{{range}}    server {{addr}};   # {{id}}
{{end}}}
EOF
nginx_conf "$tmp/upstream.conf" >"$tmp/nginx.conf"
# the check: the whole configuration with the new block in place of the old
nginx_conf @UPSTREAM@ >"$tmp/check.conf.in"
check="sed 's|@UPSTREAM@|{}|' $tmp/check.conf.in >$tmp/check.conf && $NGINX -t -q -p $tmp -e $tmp/check.log -c $tmp/check.conf"
render=(dsys-register render web --template "$tmp/upstream.tpl" --out "$tmp/upstream.conf"
	--min 1 --check-cmd "$check")
"${render[@]}" --min 2 --once >/dev/null || die "the first render failed"
"$NGINX" -p "$tmp" -e "$tmp/error.log" -c "$tmp/nginx.conf" -g 'daemon off;' </dev/null 2>>"$tmp/error.log" &
nginx_pid=$!
wait_until 10 curl -fsS -o /dev/null "http://127.0.0.1:$nport/who" || die "nginx did not answer: $(cat "$tmp/error.log")"
"${render[@]}" --wait 50ms:500ms --exec "kill -HUP $nginx_pid" >"$tmp/render.out" 2>"$tmp/render.err" &
render_pid=$!
step start a b || status=1

old=$(workers)
backend c
step "add c" a b c || status=1

# a backend dies hard: its add sees CMD die and takes the instance out
old=$(workers)
kill -KILL "$(pgrep -P "${ADD[a]}")"
wait "${ADD[a]}" 2>/dev/null || :
unset 'ADD[a]'
step "kill -9 a" b c || status=1

# a backend is stopped: SIGTERM to add, forwarded to the server
old=$(workers)
kill -TERM "${ADD[b]}"
wait "${ADD[b]}" 2>/dev/null || :
unset 'ADD[b]'
step "stop b" c || status=1
exit "$status"
