"""register_watch.py -- add-to-watch latency for bench-45-register.sh.

    register_watch.py dsys  STORE_URL CHANGES [EXPIRES]
    register_watch.py etcdctl ENDPOINTS CHANGES

One watcher process runs for the whole run (dsys-register watch, or
etcdctl watch --prefix); this driver makes CHANGES changes one after
another, half appearances and half disappearances, each by starting a
process as a shell user would, and times each from just before that
process starts to the moment the watcher's line naming it arrives here:

  dsys     up:   `dsys-register add bench --addr ... --id iN` started in
                 the background (it stays, keeping its instance alive);
           down: SIGTERM to that add (it removes the instance and exits).
  etcdctl  up:   `etcdctl put dsys/bench/bench/iN VALUE`;
           down: `etcdctl del dsys/bench/bench/iN`.

Then, on a file: store with EXPIRES > 0 (dsys mode only): EXPIRES adds
with --ttl 1s, killed together with SIGKILL once all are up; each one's
`down` (reason "expired") is timed from the expiry its record holds
(expires_ms, read after the kill: the instant it stops counting), on the
wall clock, since that is the clock expires_ms is written in.  What a kill
-9 costs beyond its TTL, which is the TTL itself plus this.  (On etcd the
instant a lease expires is etcd's, known to the second at best, and
etcd's lessor looks for expired leases every 500 ms: not measured.)

Prints one JSON object: {"changes":N,"p50_us":..,"p99_us":..,"max_us":..,
"up_p50_us":..,"up_p99_us":..,"down_p50_us":..,"down_p99_us":..} and,
with EXPIRES, "expire_p50_us", "expire_p99_us", "expire_max_us".
Exit 1 with a line on stderr when a change is not seen within 10 s.
Timing uses time.monotonic_ns in this one process, so both ends of a
sample come from the same clock.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

mode, where, changes = sys.argv[1], sys.argv[2], int(sys.argv[3])
expires = int(sys.argv[4]) if len(sys.argv) > 4 and mode == "dsys" and where.startswith("file:") else 0
env = dict(os.environ, ETCDCTL_API="3", DSYS_LOG_LEVEL="warn")
lines = queue.Queue()   # (monotonic ns, line, wall-clock ns) as each line arrives


def reader(stream):
    for line in stream:
        lines.put((time.monotonic_ns(), line.rstrip("\n"), time.time_ns()))
    lines.put((time.monotonic_ns(), None, 0))


def wait_line(pred, what):
    deadline = time.monotonic() + 10
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.exit(f"register_watch: no watch line for {what} within 10 s")
        try:
            t, line, _ = lines.get(timeout=left)
        except queue.Empty:
            continue
        if line is None:
            sys.exit(f"register_watch: the watcher ended before {what}")
        if pred(line):
            return t


if mode == "dsys":
    watch = ["dsys-register", "watch", "bench", "--store", where]
else:
    watch = ["etcdctl", "--endpoints", where, "watch", "--prefix", "dsys/bench/bench/"]
w = subprocess.Popen(watch, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                     text=True, bufsize=1, env=env)
threading.Thread(target=reader, args=(w.stdout,), daemon=True).start()
try:
    if mode == "dsys":
        wait_line(lambda l: '"event":"synced"' in l, "synced")
    else:
        # etcdctl watch says nothing when it is ready: a first put it
        # must print shows that it is
        for _ in range(100):
            subprocess.run(["etcdctl", "--endpoints", where, "put", "dsys/bench/bench/ready", "1"],
                           env=env, stdout=subprocess.DEVNULL, check=True)
            try:
                t, line, _ = lines.get(timeout=0.1)
                if line == "dsys/bench/bench/ready":
                    break
            except queue.Empty:
                pass
        while not lines.empty():
            lines.get()
    samples = []
    ups, downs, expired = [], [], []
    adds = {}
    for n in range(changes):
        i = n // 2
        name = f"i{i}"
        key = f"dsys/bench/bench/{name}"
        up = n % 2 == 0
        t0 = time.monotonic_ns()
        if mode == "dsys":
            if up:
                adds[name] = subprocess.Popen(
                    ["dsys-register", "add", "bench", "--store", where, "--id", name,
                     "--addr", f"127.0.0.1:{20000 + i % 40000}", "--ttl", "10s"],
                    stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
                ev = '"event":"up"'
            else:
                adds[name].send_signal(signal.SIGTERM)
                ev = '"event":"down"'
            tag = f'"id":"{name}"'
            t1 = wait_line(lambda l: ev in l and tag in l, f"{ev} {name}")
            if not up:
                adds.pop(name).wait()
        else:
            if up:
                val = json.dumps({"Op": 0, "Addr": f"127.0.0.1:{20000 + i % 40000}",
                                  "Metadata": {"status": "passing"}})
                cmd = ["put", key, val]
                ev = "PUT"
            else:
                cmd = ["del", key]
                ev = "DELETE"
            p = subprocess.Popen(["etcdctl", "--endpoints", where] + cmd,
                                 stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
            # etcdctl watch prints TYPE, then KEY (then VALUE for a put)
            wait_line(lambda l: l == ev, f"{ev} {key}")
            t1 = wait_line(lambda l: l == key, f"{ev} {key}")
            p.wait()
        samples.append((t1 - t0) // 1000)
        (ups if up else downs).append((t1 - t0) // 1000)
    if expires:
        while not lines.empty():
            lines.get()
        killed = {}
        for k in range(expires):
            name = f"e{k}"
            adds[name] = subprocess.Popen(
                ["dsys-register", "add", "bench", "--store", where, "--id", name,
                 "--addr", f"127.0.0.2:{20000 + k}", "--ttl", "1s"],
                stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
            wait_line(lambda l: '"event":"up"' in l and f'"id":"{name}"' in l, f"up {name}")
        for name in list(adds):
            if name.startswith("e"):
                adds[name].kill()
                adds.pop(name).wait()
                killed[name] = None
        for name in killed:
            with open(os.path.join(where[len("file:"):], "bench", name)) as f:
                killed[name] = json.load(f)["Metadata"]["expires_ms"]
        seen = 0
        deadline = time.monotonic() + 10
        while seen < len(killed):
            try:
                t, line, tw = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                sys.exit("register_watch: no expiry seen within 10 s")
            if line is None:
                sys.exit("register_watch: the watcher ended before the expiries")
            if '"event":"down"' not in line or '"reason":"expired"' not in line:
                continue
            v = json.loads(line)
            if v["id"] in killed:
                expired.append(max(0, tw - killed[v["id"]] * 1000000) // 1000)
                seen += 1
finally:
    for p in adds.values() if mode == "dsys" else []:
        p.kill()
        p.wait()
    w.terminate()
    w.wait()


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))] if v else None


out = {"changes": len(samples), "p50_us": pct(samples, 0.50), "p99_us": pct(samples, 0.99),
       "max_us": max(samples), "up_p50_us": pct(ups, 0.50), "up_p99_us": pct(ups, 0.99),
       "down_p50_us": pct(downs, 0.50), "down_p99_us": pct(downs, 0.99)}
if expired:
    out.update({"expires": len(expired), "expire_p50_us": pct(expired, 0.50),
                "expire_p99_us": pct(expired, 0.99), "expire_max_us": max(expired)})
print(json.dumps(out))
