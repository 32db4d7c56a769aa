#!/usr/bin/python3
"""Client load against a dsys-raft (or etcd) cluster's v3 JSON gateway,
recording every operation's call and return for tests/bench/lin_check.

  raft_load.py --endpoints H:P,... --history FILE --stop FILE
               [--clients 4] [--keys 6] [--max-seconds 60] [--timeout 3]

Each client thread runs put, linearizable get and compare-and-swap (a txn
comparing the value) on keys k0.. with values unique to the whole run,
talking to one endpoint and moving to the next when it fails.  The run
ends when the stop file exists (or after --max-seconds); then every key is
read once more, retrying until some endpoint answers, so that a lost
acknowledged write shows as a violation.  An answer other than 200, a
timeout or a lost connection leaves the outcome unknown ("ret": null):
the write may or may not have happened.  Prints one JSON summary line.
"""
import argparse
import base64
import http.client
import json
import os
import random
import threading
import time


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Client:
    def __init__(self, cid, endpoints, timeout):
        self.cid = cid
        self.endpoints = endpoints
        self.at = cid % len(endpoints)
        self.timeout = timeout
        self.conn = None

    def rotate(self):
        if self.conn:
            self.conn.close()
        self.conn = None
        self.at = (self.at + 1) % len(self.endpoints)

    def post(self, path, body):
        """(status, json) or None when the outcome is unknown."""
        try:
            if self.conn is None:
                host, port = self.endpoints[self.at].rsplit(":", 1)
                self.conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
            self.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            r = self.conn.getresponse()
            data = r.read()
            try:
                return r.status, json.loads(data)
            except ValueError:
                return r.status, {}
        except (OSError, http.client.HTTPException):
            self.rotate()
            return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoints", required=True)
    ap.add_argument("--history", required=True)
    ap.add_argument("--stop", required=True)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--keys", type=int, default=6)
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--timeout", type=float, default=3)
    a = ap.parse_args()
    endpoints = a.endpoints.split(",")
    lock = threading.Lock()
    hist = open(a.history, "w")
    stats = {"ops": 0, "acked_writes": 0, "unknown": 0, "reads": 0, "final_reads": 0}
    deadline = time.monotonic() + a.max_seconds

    def record(op):
        with lock:
            hist.write(json.dumps(op) + "\n")
            stats["ops"] += 1
            if op["ret"] is None:
                stats["unknown"] += 1
            elif op["kind"] == "get":
                stats["reads"] += 1
            elif op["kind"] in ("put", "cas") and (op["kind"] == "put" or op["ok"]):
                stats["acked_writes"] += 1

    def get(c, key):
        op = {"client": c.cid, "kind": "get", "key": key, "arg0": 0, "arg1": 0, "call": time.monotonic_ns()}
        r = c.post("/v3/kv/range", {"key": b64("k%d" % key)})
        if r is None or r[0] != 200:
            if r is not None:
                c.rotate()
            op["ret"] = None
            return op, None
        op["ret"] = time.monotonic_ns()
        kvs = r[1].get("kvs") or []
        op["ok"] = bool(kvs)
        op["value"] = int(base64.b64decode(kvs[0]["value"]).decode()) if kvs else 0
        return op, op["value"] if kvs else None

    def run(cid):
        c = Client(cid, endpoints, a.timeout)
        rnd = random.Random(cid)
        seq = 0
        last = {}
        while not os.path.exists(a.stop) and time.monotonic() < deadline:
            key = rnd.randrange(a.keys)
            seq += 1
            value = (cid + 1) * 1000000 + seq
            pick = rnd.random()
            if pick < 0.4:
                op = {"client": cid, "kind": "put", "key": key, "arg0": value, "arg1": 0,
                      "call": time.monotonic_ns()}
                r = c.post("/v3/kv/put", {"key": b64("k%d" % key), "value": b64(str(value))})
                op["ret"] = time.monotonic_ns() if r is not None and r[0] == 200 else None
                op["ok"] = True
                if r is not None and r[0] != 200:
                    c.rotate()
                record(op)
            elif pick < 0.75:
                op, v = get(c, key)
                if v is not None:
                    last[key] = v
                record(op)
            else:
                expect = last.get(key, 0)
                op = {"client": cid, "kind": "cas", "key": key, "arg0": expect, "arg1": value,
                      "call": time.monotonic_ns()}
                body = {"compare": [{"key": b64("k%d" % key), "target": "VALUE", "result": "EQUAL",
                                     "value": b64(str(expect))}],
                        "success": [{"request_put": {"key": b64("k%d" % key), "value": b64(str(value))}}]}
                r = c.post("/v3/kv/txn", body)
                if r is not None and r[0] == 200:
                    op["ret"] = time.monotonic_ns()
                    op["ok"] = bool(r[1].get("succeeded"))
                else:
                    op["ret"] = None
                    if r is not None:
                        c.rotate()
                record(op)
            if op["ret"] is None:
                time.sleep(0.05)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # the final reads: every key, until one member answers
    c = Client(a.clients, endpoints, a.timeout)
    for key in range(a.keys):
        for _ in range(200):
            op, _v = get(c, key)
            if op["ret"] is not None:
                record(op)
                stats["final_reads"] += 1
                break
            time.sleep(0.1)
    hist.close()
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
