#!/usr/bin/env python3
"""counter_watch.py --port P --redis-port R

The original design's counter service, for make bench to compare with:
POST /incr {"key":K,"by":N} answered by one optimistic transaction per
request, as the Flask + redis-py sketch does it --

    WATCH K; GET K; MULTI; INCRBY K N; EXEC   (retried when EXEC returns nil)

WATCH and GET are a round trip each, MULTI/INCRBY/EXEC go as one pipeline
(as redis-py's pipeline.execute() sends them).  A thread per connection
(ThreadingHTTPServer, HTTP/1.1 keep-alive), one Redis connection per
thread.  The RESP client is a few lines here so that the bench needs no
python3-redis.
"""
import argparse
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--redis-port", type=int, default=6379)
args = ap.parse_args()
local = threading.local()


class Resp:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.s.makefile("rb")

    def send(self, *cmds):
        out = []
        for c in cmds:
            out.append(b"*%d\r\n" % len(c))
            for a in c:
                a = a if isinstance(a, bytes) else str(a).encode()
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return [self.read() for _ in cmds]

    def read(self):
        line = self.f.readline()[:-2]
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return rest
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise IOError("bad reply")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        req = json.loads(body)
        key, by = req["key"], int(req.get("by", 1))
        r = getattr(local, "r", None)
        if r is None:
            r = local.r = Resp(args.redis_port)
        while True:
            r.send(["WATCH", key])
            r.send(["GET", key])
            res = r.send(["MULTI"], ["INCRBY", key, by], ["EXEC"])
            if res[2] is not None:
                value = res[2][0]
                break
        out = json.dumps({"key": key, "value": value}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 1024
srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
srv.serve_forever()
