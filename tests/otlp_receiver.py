"""A stand-in OTLP/HTTP receiver for tests/trace.bats.

    otlp_receiver.py PORTFILE LOG [STATUS:COUNT[:RETRY_AFTER]]...

Listens on 127.0.0.1, a free port written to PORTFILE once it accepts.
Each request is appended to LOG as one JSON line: {"path", "content_type",
"headers" (names in lower case), "body", "raw"} (the body parsed as JSON, or
null; raw is the body in hex, for protobuf).  The answers follow the plan:
each STATUS:COUNT answers COUNT requests with STATUS (and a Retry-After
header of RETRY_AFTER seconds when given), in order; after the plan, 200.
"""
import http.server
import json
import os
import sys

portfile, log = sys.argv[1], sys.argv[2]
plan = []
for item in sys.argv[3:]:
    parts = item.split(":")
    for _ in range(int(parts[1])):
        plan.append((int(parts[0]), parts[2] if len(parts) > 2 else None))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path,
                                "content_type": self.headers.get("Content-Type"),
                                "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": body, "raw": raw.hex()}) + "\n")
        status, retry_after = plan.pop(0) if plan else (200, None)
        out = b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
tmp = portfile + ".tmp"
with open(tmp, "w") as f:
    f.write(str(server.server_address[1]))
os.rename(tmp, portfile)
server.serve_forever()
