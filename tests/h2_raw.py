#!/usr/bin/python3
"""Hostile and plain HTTP/2 over a raw socket, for tests/h2.bats.

Our own frame writer and reader (RFC 9113 section 4, HPACK literals
without Huffman, RFC 7541 section 6.2.2), so each case sends exactly the
bytes it means to.  Usage: h2_raw.py PORT CASE; prints one JSON object
with what the server did and exits 0 (the test judges it).
"""
import hashlib
import json
import socket
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 5, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK, PADDED = 1, 4, 1, 8
HEADER_TABLE_SIZE, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 1, 4, 5


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def hpack_int(n, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes([first | n])
    out = [first | limit]
    n -= limit
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def hpack(headers):
    out = b""
    for name, value in headers:
        out += b"\x00" + hpack_int(len(name), 7) + name.encode()
        out += hpack_int(len(value), 7) + value.encode()
    return out


# RFC 7541 Appendix B: the Huffman codes (code, bits) of the characters the
# cache cases put in paths
HUFFMAN = {"/": (0x18, 6), "a": (0x3, 5), "b": (0x23, 6), "h": (0x27, 6),
           "e": (0x5, 5), "l": (0x28, 6), "o": (0x7, 5)}


def hpack_str(s, huff=False):
    if not huff:
        return hpack_int(len(s), 7) + s.encode()
    acc, n = 0, 0
    for ch in s:
        code, bits = HUFFMAN[ch]
        acc, n = acc << bits | code, n + bits
    pad = -n % 8
    acc, n = acc << pad | (1 << pad) - 1, n + pad   # EOS prefix: all ones
    return hpack_int(n // 8, 7, 0x80) + acc.to_bytes(n // 8, "big")


def hpack_ops(ops):
    """A header block from representations: ["idx", N] (6.1), ["inc", N,
    VALUE] (6.2.1), ["noidx", N, VALUE] (6.2.2), ["never", N, VALUE, HUFF]
    (6.2.3), ["size", N] (6.3); N a name index (static table: 1 :authority,
    2 :method GET, 4 :path, 6 :scheme http), or a name as a literal."""
    out = b""
    for op in ops:
        if op[0] == "idx":
            out += hpack_int(op[1], 7, 0x80)
        elif op[0] == "size":
            out += hpack_int(op[1], 5, 0x20)
        else:
            first, bits = {"inc": (0x40, 6), "noidx": (0x00, 4), "never": (0x10, 4)}[op[0]]
            if isinstance(op[1], str):   # a literal name: ["noidx", NAME, VALUE]
                out += bytes([first]) + hpack_str(op[1]) + hpack_str(op[2])
            else:
                out += hpack_int(op[1], bits, first) + hpack_str(op[2], len(op) > 3 and op[3])
    return out


def request(sid, path="/hello", method="GET", end=True, extra=()):
    hs = [(":method", method), (":scheme", "http"), (":path", path), (":authority", "x")]
    hs += list(extra)
    return frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, hpack(hs))


class Conn:
    def __init__(self, port, rcvbuf=None):
        if rcvbuf:   # set before connect, so the window scale allows it
            self.s = socket.socket()
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.s.settimeout(5)
            self.s.connect(("127.0.0.1", port))
        else:
            self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.closed = False

    def send(self, b):
        try:
            self.s.sendall(b)
        except OSError:
            self.closed = True

    def frames(self, until, limit=5.0):
        """Read frames until until(frame) is true, the peer closes, or limit s."""
        got = []
        end = time.time() + limit
        while time.time() < end:
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + n:
                    break
                f = {"type": self.buf[3], "flags": self.buf[4],
                     "sid": int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF,
                     "payload": self.buf[9:9 + n]}
                self.buf = self.buf[9 + n:]
                got.append(f)
                if until(f):
                    return got
            try:
                self.s.settimeout(max(0.05, end - time.time()))
                d = self.s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                self.closed = True
                break
            if not d:
                self.closed = True
                break
            self.buf += d
        return got


def summary(frames):
    out = []
    for f in frames:
        e = {"type": f["type"], "sid": f["sid"], "flags": f["flags"]}
        if f["type"] == GOAWAY:
            e["last"] = int.from_bytes(f["payload"][:4], "big") & 0x7FFFFFFF
            e["error"] = int.from_bytes(f["payload"][4:8], "big")
        if f["type"] == RST_STREAM:
            e["error"] = int.from_bytes(f["payload"][:4], "big")
        if f["type"] == PING:
            e["data"] = f["payload"].hex()
        out.append(e)
    return out


def start(port, ack=True):
    c = Conn(port)
    c.send(PREFACE + frame(SETTINGS, 0, 0))
    if ack:
        c.send(frame(SETTINGS, ACK, 0))
    return c


def goaway(f):
    return f["type"] == GOAWAY


def u32(n):
    return struct.pack(">I", n)


def setting(k, v):
    return struct.pack(">HI", k, v)


def block(path="/hello"):
    return hpack([(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "x")])


# Hostile frames after a good start, each answered by the RFC 9113 error
# its comment names: GOAWAY (connection error) or RST_STREAM (stream error,
# after which the connection must go on serving).
HOSTILE = {
    # a zero increment: PROTOCOL_ERROR, for the connection (6.9)
    "window-zero": lambda: frame(WINDOW_UPDATE, 0, 0, u32(0)),
    # ... and for a stream, a stream error
    "window-zero-stream": lambda: request(1, "/hello", "POST", end=False) + frame(WINDOW_UPDATE, 0, 1, u32(0)),
    # a stream's window past 2^31-1: FLOW_CONTROL_ERROR on that stream
    "window-overflow-stream": lambda: request(1, "/hello", "POST", end=False) + frame(WINDOW_UPDATE, 0, 1, u32(0x7FFFFFFF)),
    # CONTINUATION with no HEADERS before it: PROTOCOL_ERROR (6.10)
    "continuation-alone": lambda: frame(CONTINUATION, END_HEADERS, 1, block()),
    # a frame between HEADERS and its CONTINUATION: PROTOCOL_ERROR
    "frame-inside-block": lambda: frame(HEADERS, 0, 1, block()) + frame(PING, 0, 0, b"12345678"),
    # DATA on a stream never opened: PROTOCOL_ERROR (5.1, idle)
    "data-idle": lambda: frame(DATA, END_STREAM, 5, b"x"),
    # a client stream with an even id: PROTOCOL_ERROR (5.1.1)
    "even-stream": lambda: request(2),
    # a stream id lower than one already used, not trailers: PROTOCOL_ERROR
    "stream-id-back": lambda: request(5) + frame(HEADERS, END_HEADERS, 3, block()),
    # a frame over our SETTINGS_MAX_FRAME_SIZE (16384): FRAME_SIZE_ERROR (4.2)
    "frame-too-big": lambda: frame(0xFA, 0, 0, b"x" * 16385),
    # SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1: FLOW_CONTROL_ERROR (6.5.2)
    "initial-window-too-big": lambda: frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 0x80000000)),
    # SETTINGS_MAX_FRAME_SIZE below 16384: PROTOCOL_ERROR
    "max-frame-size-small": lambda: frame(SETTINGS, 0, 0, setting(MAX_FRAME_SIZE, 100)),
    # a SETTINGS whose length is not a multiple of 6: FRAME_SIZE_ERROR
    "settings-odd-length": lambda: frame(SETTINGS, 0, 0, b"\x00\x04\x00"),
    # PUSH_PROMISE from a client: PROTOCOL_ERROR (8.4)
    "push-promise": lambda: frame(PUSH_PROMISE, END_HEADERS, 1, u32(2) + block()),
    # PING of 7 bytes: FRAME_SIZE_ERROR
    "ping-short": lambda: frame(PING, 0, 0, b"1234567"),
    # padding as long as the frame: PROTOCOL_ERROR (6.1)
    "bad-padding": lambda: request(1, "/hello", "POST", end=False) + frame(DATA, PADDED, 1, b"\x05abc"),
    # a header block that never ends, in empty CONTINUATIONs: ENHANCE_YOUR_CALM
    "continuation-flood": lambda: frame(HEADERS, 0, 1, block()) + frame(CONTINUATION, 0, 1) * 1000,
    # a HPACK block that does not decode: COMPRESSION_ERROR (4.3)
    "bad-hpack": lambda: frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\xff\xff\xff\x7f"),
}


def main():
    port, case = int(sys.argv[1]), sys.argv[2]
    res = {"case": case}
    if case == "bad-preface":
        c = Conn(port)
        c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        c.s.settimeout(5)
        data = b""
        try:
            while True:
                d = c.s.recv(4096)
                if not d:
                    break
                data += d
        except OSError:
            pass
        res["reply"] = data.split(b"\r\n", 1)[0].decode(errors="replace")
    elif case == "no-settings-first":
        c = Conn(port)
        c.send(PREFACE + frame(PING, 0, 0, b"12345678"))
        res["frames"] = summary(c.frames(goaway))
    elif case == "settings-and-ping":
        c = start(port)
        c.send(frame(PING, 0, 0, b"abcdefgh"))
        fs = c.frames(lambda f: f["type"] == PING)
        res["frames"] = summary(fs)
        first = fs[0] if fs else {}
        res["first_type"] = first.get("type")
    elif case == "unknown-frame":
        c = start(port)
        c.send(frame(0xFA, 0, 0, b"whatever") + frame(0xFA, 0, 1, b"x") + frame(PING, 0, 0, b"pingpong"))
        res["frames"] = summary(c.frames(lambda f: f["type"] == PING and f["flags"] & ACK))
    elif case == "window-overflow":
        c = start(port)
        c.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)))
        res["frames"] = summary(c.frames(goaway))
    elif case == "data-on-stream-0":
        c = start(port)
        c.send(frame(DATA, 0, 0, b"hello"))
        res["frames"] = summary(c.frames(goaway))
    elif case == "rst-stream":
        c = start(port)
        c.send(request(1, "/hello", "POST", end=False))
        c.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 8)))
        c.send(request(3, "/hello"))
        fs = c.frames(lambda f: f["sid"] == 3 and f["flags"] & END_STREAM)
        res["frames"] = summary(fs)
        res["answered_3"] = any(f["sid"] == 3 and f["type"] == DATA for f in fs)
    elif case == "rst-delayed":
        # 50 GETs of /hello at once (streams 1 to 99), then RST_STREAM
        # CANCEL for every other one while the server holds them (--delay):
        # the 25 left must be answered, each with its own body
        c = start(port)
        c.send(b"".join(request(sid, "/hello") for sid in range(1, 101, 2)))
        c.send(b"".join(frame(RST_STREAM, 0, sid, struct.pack(">I", 8)) for sid in range(1, 101, 4)))
        left = set(range(3, 101, 4))
        bodies, ended = {}, set()

        def done(f):
            if f["type"] == DATA:
                bodies[f["sid"]] = bodies.get(f["sid"], b"") + f["payload"]
            if f["flags"] & END_STREAM and f["type"] in (DATA, HEADERS):
                ended.add(f["sid"])
            return goaway(f) or left <= ended
        fs = c.frames(done, limit=20.0)
        res["frames"] = summary([f for f in fs if f["type"] in (GOAWAY, RST_STREAM)])
        res["ended"] = sorted(ended)
        res["bodies"] = sorted(set(b.decode(errors="replace") for b in bodies.values()))
    elif case == "rapid-reset":
        c = start(port)
        for i in range(0, 2000):
            c.send(request(1 + 2 * i) + frame(RST_STREAM, 0, 1 + 2 * i, struct.pack(">I", 8)))
        fs = c.frames(goaway, 8)
        res["frames"] = summary(fs)[-3:]
        res["goaway"] = any(f["type"] == GOAWAY for f in fs)
    elif case == "too-many-streams":
        c = start(port)
        c.frames(lambda f: f["type"] == SETTINGS and f["flags"] & ACK, 2)
        for i in range(200):
            c.send(request(1 + 2 * i, "/hello", "POST", end=False))
        fs = c.frames(lambda f: f["type"] in (GOAWAY, RST_STREAM), 5)
        res["frames"] = summary([f for f in fs if f["type"] in (GOAWAY, RST_STREAM)])[:3]
    elif case == "big-header":
        c = start(port)
        c.send(request(1, "/hello", extra=[("x-big", "a" * 10000)]))
        fs = c.frames(lambda f: f["sid"] == 1 and f["flags"] & END_STREAM or goaway(f))
        res["frames"] = summary(fs)
        hdr = [f for f in fs if f["type"] == HEADERS and f["sid"] == 1]
        # the :status is the first field: static-table index 8..14 or a literal
        res["status_block"] = hdr[0]["payload"].hex() if hdr else None
    elif case == "incomplete-request":
        # a POST whose body never ends: its stream is reset at the body deadline
        c = start(port)
        c.send(request(1, "/hello", "POST", end=False))
        fs = c.frames(lambda f: f["type"] == RST_STREAM, 6)
        res["frames"] = summary([f for f in fs if f["type"] != SETTINGS])
    elif case == "big-body-left-open":
        # a body over the limit, and the request never ends: 413 at once,
        # then the stream is reset at the body deadline
        c = start(port)
        c.send(request(1, "/hello", "POST", end=False) + frame(DATA, 0, 1, b"x" * 2048))
        fs = c.frames(lambda f: f["type"] == RST_STREAM, 6)
        res["frames"] = summary([f for f in fs if f["type"] != SETTINGS])
        hdr = [f for f in fs if f["type"] == HEADERS and f["sid"] == 1]
        res["status_block"] = hdr[0]["payload"].hex() if hdr else None
    elif case == "drain":
        c = start(port)
        c.send(request(1, "/hello"))
        c.frames(lambda f: f["sid"] == 1 and f["flags"] & END_STREAM)
        print(json.dumps({"case": case, "ready": True}), flush=True)
        fs = c.frames(goaway, 10)
        res["frames"] = summary(fs)
        c.frames(lambda f: False, 3)
        res["closed"] = c.closed
    elif case == "fields":
        # argv[3]: JSON {"headers": [[name, value], ...], "data": [str, ...],
        # "trailers": [[name, value], ...], "trailers_end": bool}: one request
        # on stream 1 sent as given (END_STREAM on its last frame), then a
        # plain GET /hello on stream 3 to show the connection lives on
        spec = json.loads(sys.argv[3])
        c = start(port)
        data = spec.get("data", [])
        trailers = spec.get("trailers")
        last_is_headers = not data and trailers is None
        c.send(frame(HEADERS, END_HEADERS | (END_STREAM if last_is_headers else 0), 1,
                     hpack([tuple(h) for h in spec["headers"]])))
        for i, d in enumerate(data):
            end = i == len(data) - 1 and trailers is None
            c.send(frame(DATA, END_STREAM if end else 0, 1, d.encode()))
        if trailers is not None:
            end = END_STREAM if spec.get("trailers_end", True) else 0
            c.send(frame(HEADERS, END_HEADERS | end, 1, hpack([tuple(h) for h in trailers])))
        c.send(request(3, "/hello"))
        fs = c.frames(lambda f: f["sid"] == 3 and f["type"] in (HEADERS, RST_STREAM))
        res["frames"] = summary(fs)
        one = [f for f in fs if f["sid"] == 1 and f["type"] in (HEADERS, RST_STREAM)]
        if one and one[0]["type"] == RST_STREAM:
            res["stream1"] = "rst %d" % int.from_bytes(one[0]["payload"][:4], "big")
        elif one:
            res["stream1"] = "status " + ("200" if one[0]["payload"][:1] == b"\x88" else one[0]["payload"].hex())
        else:
            res["stream1"] = "nothing"
        res["stream3"] = any(f["sid"] == 3 and f["type"] == HEADERS for f in fs)
        res["goaway"] = any(f["type"] == GOAWAY for f in fs)
    elif case in HOSTILE:
        # the first GOAWAY or RST_STREAM the hostile frames bring; then, if
        # the connection lives, a GET on a fresh stream must be answered
        c = start(port)
        c.frames(lambda f: f["type"] == SETTINGS and f["flags"] & ACK, 2)
        c.send(HOSTILE[case]())
        fs = c.frames(lambda f: f["type"] in (GOAWAY, RST_STREAM), 5)
        err = [f for f in summary(fs) if f["type"] in (GOAWAY, RST_STREAM)]
        res["first"] = err[0] if err else None
        if err and err[0]["type"] == RST_STREAM:
            c.send(request(101))
            fs = c.frames(lambda f: f["sid"] == 101 and f["flags"] & END_STREAM or goaway(f))
            res["served"] = any(f["sid"] == 101 and f["type"] == DATA for f in fs)
    elif case == "blocks":
        # argv[3]: JSON [[op, ...], ...] (see hpack_ops): each block a GET on
        # the next stream (1, 3, ...), all sent at once on one connection;
        # "answers": each stream's body, "rst N", or "goaway N" for the
        # streams a GOAWAY ended
        blocks = json.loads(sys.argv[3])
        c = start(port)
        c.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, hpack_ops(b))
                        for i, b in enumerate(blocks)))
        last = 2 * len(blocks) - 1
        fs = c.frames(lambda f: f["sid"] == last and (f["flags"] & END_STREAM or f["type"] == RST_STREAM)
                      or goaway(f))
        answers = []
        for i in range(len(blocks)):
            sid = 1 + 2 * i
            mine = [f for f in fs if f["sid"] == sid]
            rst = [f for f in mine if f["type"] == RST_STREAM]
            gone = [f for f in fs if goaway(f)]
            if rst:
                answers.append("rst %d" % int.from_bytes(rst[0]["payload"][:4], "big"))
            elif any(f["type"] == DATA for f in mine):
                answers.append(b"".join(f["payload"] for f in mine if f["type"] == DATA).decode())
            elif gone:
                answers.append("goaway %d" % int.from_bytes(gone[0]["payload"][4:8], "big"))
            else:
                answers.append("nothing")
        res["answers"] = answers
    elif case == "one-by-one":
        # argv[3]: N GETs of /hello on one connection, each sent once the
        # last is answered (so each finds nothing queued before it);
        # "answers": each stream's frames as "TYPE/FLAGS", then its body
        c = start(port)
        answers = []
        for i in range(int(sys.argv[3])):
            sid = 1 + 2 * i
            c.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, block()))
            fs = c.frames(lambda f, sid=sid: f["sid"] == sid and f["flags"] & END_STREAM or goaway(f))
            mine = [f for f in fs if f["sid"] == sid]
            answers.append(" ".join("%d/%d" % (f["type"], f["flags"]) for f in mine) + " " +
                           b"".join(f["payload"] for f in mine if f["type"] == DATA).decode())
        res["answers"] = answers
    elif case == "table-size-change":
        # three GETs, then SETTINGS_HEADER_TABLE_SIZE 0 and a fourth: the
        # first byte of each answer's header block (the fourth must open
        # with a dynamic table size update, 001xxxxx)
        c = start(port)
        firsts = []
        for sid in (1, 3, 5, 7):
            if sid == 7:
                c.send(frame(SETTINGS, 0, 0, setting(HEADER_TABLE_SIZE, 0)))
            c.send(request(sid))
            fs = c.frames(lambda f: f["sid"] == sid and f["flags"] & END_STREAM or goaway(f))
            hdr = [f for f in fs if f["type"] == HEADERS and f["sid"] == sid]
            firsts.append(hdr[0]["payload"][:1].hex() if hdr else None)
        res["first_bytes"] = firsts
    elif case == "window-change":
        # our window for the server starts at 0: the answer's HEADERS come,
        # its DATA waits until SETTINGS_INITIAL_WINDOW_SIZE grows mid-stream
        c = Conn(port)
        c.send(PREFACE + frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 0)))
        c.send(frame(SETTINGS, ACK, 0) + request(1))
        fs = c.frames(lambda f: f["sid"] == 1 and f["type"] == HEADERS)
        fs += c.frames(lambda f: False, 0.5)
        res["before"] = [f["type"] for f in fs if f["sid"] == 1]
        c.send(frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 3)))
        fs = c.frames(lambda f: f["sid"] == 1 and f["type"] == DATA)
        fs += c.frames(lambda f: False, 0.5)
        res["after_3"] = [len(f["payload"]) for f in fs if f["sid"] == 1 and f["type"] == DATA]
        c.send(frame(WINDOW_UPDATE, 0, 1, u32(100)))
        fs = c.frames(lambda f: f["sid"] == 1 and f["flags"] & END_STREAM)
        res["rest"] = b"".join(f["payload"] for f in fs if f["sid"] == 1 and f["type"] == DATA).decode()
    elif case == "wide-open":
        # argv[3]: a path.  Every window at 2^31-1 and a 16 MiB receive
        # buffer, so the server's socket takes a big answer as fast as it
        # is written and no WINDOW_UPDATE ever comes: nothing from us
        # prompts the server to go on, whatever it sent so far.
        # "bytes": the DATA of stream 1; "ended": END_STREAM seen
        c = Conn(port, rcvbuf=16 << 20)
        c.send(PREFACE + frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 0x7FFFFFFF)) +
               frame(WINDOW_UPDATE, 0, 0, u32(0x7FFFFFFF - 65535)) + frame(SETTINGS, ACK, 0) +
               request(1, sys.argv[3]))
        got = bytearray()

        def done(f):
            if f["sid"] == 1 and f["type"] == DATA:
                got.extend(f["payload"])
            return f["sid"] == 1 and f["flags"] & END_STREAM or goaway(f)
        fs = c.frames(done, 15.0)   # waits it all out only when stalled
        res["bytes"] = len(got)
        res["sha256"] = hashlib.sha256(got).hexdigest()
        res["ended"] = any(f["sid"] == 1 and f["flags"] & END_STREAM for f in fs)
    elif case == "split":
        # a request one byte a write: frames cut anywhere are put together
        c = start(port)
        for b in request(1, "/echo", "POST", end=False) + frame(DATA, END_STREAM | PADDED, 1, b"\x02ab\0\0"):
            c.send(bytes([b]))
            time.sleep(0.002)
        fs = c.frames(lambda f: f["sid"] == 1 and f["flags"] & END_STREAM or goaway(f))
        res["frames"] = summary(fs)
        res["answered"] = any(f["sid"] == 1 and f["type"] == DATA for f in fs)
    elif case == "data-half-closed":
        # DATA after END_STREAM, while the answer is pending: STREAM_CLOSED
        c = start(port)
        c.send(request(1) + frame(DATA, 0, 1, b"late"))
        fs = c.frames(lambda f: f["type"] in (GOAWAY, RST_STREAM), 5)
        err = [f for f in summary(fs) if f["type"] in (GOAWAY, RST_STREAM)]
        res["first"] = err[0] if err else None
    else:
        print("unknown case", case, file=sys.stderr)
        sys.exit(2)
    print(json.dumps(res), flush=True)


main()
