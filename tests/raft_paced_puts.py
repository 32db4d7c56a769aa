#!/usr/bin/python3
"""Paced puts against one dsys-raft member's v3 JSON gateway.

  raft_paced_puts.py HOST:PORT N GAP_MS [TIMEOUT_S]

Starts put number i (key p<i>) at i * GAP_MS on a connection of its own,
so that each reaches the member in a loop turn (and a Raft Ready) of its
own, and prints one JSON line: how many were sent and answered 200, and
the least and largest latency in ms.
"""
import base64
import http.client
import json
import sys
import threading
import time


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n, gap = int(sys.argv[2]), float(sys.argv[3]) / 1000
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30
    lat = [None] * n
    conns = [http.client.HTTPConnection(host, int(port), timeout=timeout) for _ in range(n)]
    for c in conns:
        c.connect()
    t0 = time.monotonic()

    def put(i):
        time.sleep(max(0, t0 + i * gap - time.monotonic()))
        body = json.dumps({"key": base64.b64encode(b"p%d" % i).decode(), "value": base64.b64encode(b"v").decode()})
        start = time.monotonic()
        try:
            conns[i].request("POST", "/v3/kv/put", body, {"Content-Type": "application/json"})
            if conns[i].getresponse().status == 200:
                lat[i] = (time.monotonic() - start) * 1000
        except OSError:
            pass

    threads = [threading.Thread(target=put, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [x for x in lat if x is not None]
    print(json.dumps({"sent": n, "ok": len(done), "min_ms": int(min(done)) if done else None,
                      "max_ms": int(max(done)) if done else None}))


main()
