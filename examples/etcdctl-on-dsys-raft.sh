#!/usr/bin/env bash
# etcdctl, unchanged, against a 3-node dsys-raft cluster: dsys-raft serves
# etcd 3.4's gRPC API on its client port, so etcd's own client puts, gets,
# watches, takes a lock and lists the members.  Prints one JSON line per
# step; the cluster's logs go to a scratch folder removed at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${DSYS_BIN:-$here/build/bin}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
export ETCDCTL_API=3
tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || :; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || :; done
	rm -rf "$tmp"
}
trap cleanup EXIT

# six free loopback ports: three client, three peer
read -r -a port <<<"$("$py" -c '
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
initial="n1=http://127.0.0.1:${port[3]},n2=http://127.0.0.1:${port[4]},n3=http://127.0.0.1:${port[5]}"
eps="127.0.0.1:${port[0]},127.0.0.1:${port[1]},127.0.0.1:${port[2]}"
for i in 0 1 2; do
	"$bin/dsys-raft" node --name "n$((i + 1))" --data-dir "$tmp/n$((i + 1))" \
		--listen-client "127.0.0.1:${port[i]}" --listen-peer "127.0.0.1:${port[i + 3]}" \
		--initial-cluster "$initial" >"$tmp/n$((i + 1)).out" 2>"$tmp/n$((i + 1)).err" &
	pids+=($!)
done
for _ in $(seq 200); do
	etcdctl --endpoints "$eps" --command-timeout 1s endpoint health >/dev/null 2>&1 && break
	sleep 0.1
done
ep1=127.0.0.1:${port[0]} ep3=127.0.0.1:${port[2]}

# put on one member, get from another
etcdctl --endpoints "$ep1" put /demo/greeting hello >/dev/null
jq -cn --arg v "$(etcdctl --endpoints "$ep3" get /demo/greeting --print-value-only)" \
	'{step: "put on n1, get from n3", value: $v}'

# a watch on n3 while n1 takes two writes
etcdctl --endpoints "$ep3" watch --prefix /demo/ >"$tmp/watch" 2>/dev/null &
wpid=$!
sleep 0.5
etcdctl --endpoints "$ep1" put /demo/a 1 >/dev/null
etcdctl --endpoints "$ep1" del /demo/a >/dev/null
for _ in $(seq 100); do [ "$(grep -c . "$tmp/watch")" -ge 4 ] && break; sleep 0.05; done
kill "$wpid"
wait "$wpid" 2>/dev/null || :
jq -cR -s '{step: "watch --prefix /demo/ on n3", events: (split("\n") | map(select(. != "")))}' <"$tmp/watch"

# etcdctl's lock (KV, Lease and Watch underneath) around a command
held=$(etcdctl --endpoints "$eps" lock demo-lock -- sh -c 'echo "$ETCD_LOCK_KEY"')
jq -cn --arg k "$held" '{step: "lock demo-lock -- a command", held_as: $k}'

etcdctl --endpoints "$ep1" member list -w json |
	jq -c '{step: "member list", members: [.members[].name] | sort}'
