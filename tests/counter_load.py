#!/usr/bin/env python3
"""counter_load.py PORT KEY CLIENTS TOTAL OUT [ERRFILE]

M concurrent clients (threads, one keep-alive connection each) make TOTAL
POST /incr {"key":KEY} requests in all against 127.0.0.1:PORT.  Every
acknowledged value (a 200 answer) is written to OUT, one per line, flushed
at once, so a test that kills the server meanwhile knows exactly what was
acknowledged.  Failed attempts (refused, reset, non-200) are counted on
ERRFILE's single line when given.  Used by tests/counter*.bats.
"""
import http.client
import json
import os
import sys
import threading

port, key, clients, total, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
errfile = sys.argv[6] if len(sys.argv) > 6 else None
# with ERRFILE, a client gives up after this many failures in a row (the
# server is gone); COUNTER_LOAD_MAX_FAILURES=0 never gives up
max_failures = int(os.environ.get("COUNTER_LOAD_MAX_FAILURES", "3"))
body = json.dumps({"key": key}).encode()
lock = threading.Lock()
f = open(out, "w")
errors = [0]


def worker(count):
    conn = None
    failures = 0  # in a row: with ERRFILE, 3 of them end this client (the server is gone)
    for _ in range(count):
        if errfile and max_failures and failures >= max_failures:
            break
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/incr", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                raise OSError("status %d" % r.status)
            v = json.loads(data)["value"]
            failures = 0
            with lock:
                f.write("%d\n" % v)
                f.flush()
        except (OSError, http.client.HTTPException, ValueError):
            failures += 1
            with lock:
                errors[0] += 1
            if conn is not None:
                conn.close()
            conn = None


per = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
threads = [threading.Thread(target=worker, args=(c,)) for c in per]
for t in threads:
    t.start()
for t in threads:
    t.join()
f.close()
if errfile:
    with open(errfile, "w") as e:
        e.write("%d\n" % errors[0])
