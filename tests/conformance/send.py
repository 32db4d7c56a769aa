#!/usr/bin/env python3
"""send.py -- play raw-socket conformance cases against an HTTP server.

Reads one case (the lines of a block of cases.txt, without its "case" line)
from stdin, or every case of a table file (--table).  For each it connects
to 127.0.0.1:PORT, sends the exact bytes, reads the answers and compares
what happened with the case's "expect" line; on a mismatch it prints the
expected and the actual summary and the transcript.  Exits 0 when every
case matched and every check held, 1 when not, 2 on a malformed case.

    send.py --port 8080 < case        # one case from stdin
    send.py --port 8080 --show < case # print the transcript even on success
    send.py --port 8080 --table cases.txt [--match TEXT]
                                      # every case, as TAP-like lines
    send.py --port 8080 --table cases.txt --results DIR
                                      # every case, a file per case: what
                                      # tests/conformance.bats reads

Played against another server (nginx, h2o) the table is a second opinion:
its valid cases must pass there too, while a lenient server fails many of
the strict ones.

The summary is the status codes of every response in the order they came
(interim 100s included), then one word for the connection:
  close    the server closed it (FIN or RST) after the last expected answer
  open     it stayed open: a probe request sent afterwards was answered 200
  timeout  an expected answer did not come within the read timeout
  garbage  bytes that are not an HTTP/1.1 response came
For an "expect ... close" case the sender reads on after the last expected
answer until the server closes, so an answer the server should never have
sent (a request smuggled in a body, a request after an error) shows up in
the summary.  For "expect ... open" it sends a probe, GET /hello, and reads
one more answer; anything that arrives before the probe's answer shows.

Python 3 standard library only.
"""
import argparse
import random
import re
import socket
import sys
import time

PROBE = b"GET /hello HTTP/1.1\r\nHost: probe\r\n\r\n"
CHECK_WORDS = ("head", "header", "noheader", "body")


class CaseError(Exception):
    pass


def closing_brace(text, i):
    """Index of the } that closes a \\{ whose body starts at i, or -1."""
    depth = 0
    while i < len(text):
        if text.startswith("\\\\", i):
            i += 2
            continue
        if text.startswith("\\{", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return -1


def unescape(text):
    """Case-file escapes: \\r \\n \\t \\0 \\\\ \\xHH, and \\{N*TEXT} for TEXT
    repeated N times (TEXT may hold escapes and nested repeats)."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        if i + 1 >= len(text):
            raise CaseError("trailing backslash in %r" % text)
        e = text[i + 1]
        if e in "rnt0\\":
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}[e]
            i += 2
        elif e == "x":
            h = text[i + 2:i + 4]
            if not re.fullmatch(r"[0-9a-fA-F]{2}", h):
                raise CaseError("bad \\x escape in %r" % text)
            out.append(int(h, 16))
            i += 4
        elif e == "{":
            end = closing_brace(text, i + 2)
            m = re.fullmatch(r"(\d+)\*(.*)", text[i + 2:end], re.S) if end > 0 else None
            if not m:
                raise CaseError("bad \\{N*TEXT} in %r" % text)
            out += unescape(m.group(2)) * int(m.group(1))
            i = end + 1
        else:
            raise CaseError("unknown escape \\%s in %r" % (e, text))
    return bytes(out)


def parse_case(lines):
    """Returns (steps, expect, checks, heads).  steps is a list of
    ("send", bytes) / ("pause", seconds) / ("await", None) / ("shut", None)
    in file order; expect is the list of expected summary words."""
    steps, expect, checks, heads = [], None, [], set()
    pause = 0.02
    started = False             # a write or a read came before: pause first
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word in ("send", "trickle"):
            data = unescape(rest)
            for piece in ([data] if word == "send" else [bytes([b]) for b in data]):
                if started:
                    steps.append(("pause", pause))
                steps.append(("send", piece))
                started = True
            continue
        if word == "pause":
            pause = int(rest) / 1000.0
        elif word == "await":
            steps.append(("await", None))
            started = True
        elif word == "shut":
            steps.append(("shut", None))
        elif word == "whole":
            steps.append(("whole", None))
        elif word == "expect":
            expect = []
            for w in rest.split():
                m = re.fullmatch(r"([1-5]\d\d(?:\|[1-5]\d\d)*)(?:\*(\d+))?", w)
                if m:
                    expect += [m.group(1)] * int(m.group(2) or 1)
                elif w in ("open", "close"):
                    expect.append(w)
                else:
                    raise CaseError("expect holds statuses (200, 400|501, 200*10) then open|close: %r" % line)
            if not expect or expect[-1] not in ("open", "close") or "open" in expect[:-1] or "close" in expect[:-1]:
                raise CaseError("expect must end in open or close: %r" % line)
        elif word in CHECK_WORDS:
            n, _, arg = rest.partition(" ")
            if not n.isdigit() or int(n) < 1:
                raise CaseError("%s needs a response number: %r" % (word, line))
            if word == "head":
                heads.add(int(n))
            else:
                checks.append((word, int(n), arg))
        else:
            raise CaseError("unknown line: %r" % line)
    if expect is None:
        raise CaseError("no expect line")
    if not any(s[0] == "send" for s in steps):
        raise CaseError("no send line")
    if expect[-1] == "open" and any(s[0] == "shut" for s in steps):
        raise CaseError("a half-closed connection cannot be probed: expect close")
    return steps, expect, checks, heads


class Conn:
    """A socket with a read buffer and one inactivity timeout per read."""

    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = None          # None, "fin" or "rst"
        self.log = []

    def send(self, data):
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError) as e:
            self.log.append("! send failed after the server closed: %s" % e.strerror)
            return False

    def fill(self):
        """Read more bytes; False on EOF/reset (self.eof says which)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            self.eof = "rst"
            return False
        if not data:
            self.eof = "fin"
            return False
        self.buf += data
        return True

    def until(self, token):
        """Bytes through token, or None at EOF.  socket.timeout propagates."""
        while True:
            i = self.buf.find(token)
            if i >= 0:
                out, self.buf = self.buf[:i + len(token)], self.buf[i + len(token):]
                return out
            if not self.fill():
                return None

    def take(self, n):
        while len(self.buf) < n:
            if not self.fill():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


class Garbage(Exception):
    pass


def read_response(conn, is_head):
    """One response: (status, headers dict (lowercase name -> list), body),
    or None at a clean EOF before its first byte."""
    if not conn.buf and not conn.fill():
        return None
    head = conn.until(b"\r\n\r\n")
    if head is None:
        raise Garbage("connection closed inside a response head: %r" % conn.buf[:200])
    lines = head[:-4].split(b"\r\n")
    m = re.fullmatch(rb"HTTP/1\.[01] ([1-9]\d\d) ?(.*)", lines[0])
    if not m:
        raise Garbage("not a status line: %r" % lines[0][:200])
    status = int(m.group(1))
    headers = {}
    conn.log.append("< " + lines[0].decode("latin-1"))
    for hl in lines[1:]:
        name, colon, value = hl.partition(b":")
        if not colon:
            raise Garbage("not a header line: %r" % hl[:200])
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.strip().decode("latin-1"))
        conn.log.append("< " + hl.decode("latin-1"))
    body = b""
    te = ",".join(headers.get("transfer-encoding", [])).lower()
    if is_head or 100 <= status < 200 or status in (204, 304):
        pass
    elif "chunked" in te:
        while True:
            size_line = conn.until(b"\r\n")
            if size_line is None:
                raise Garbage("connection closed inside a chunked body")
            size = int(size_line.split(b";")[0].strip() or b"x", 16)
            if size == 0:
                while conn.until(b"\r\n") not in (b"\r\n", None):
                    pass
                break
            chunk = conn.take(size + 2)
            if chunk is None:
                raise Garbage("connection closed inside a chunk")
            body += chunk[:-2]
    elif "content-length" in headers:
        n = int(headers["content-length"][0])
        body = conn.take(n)
        if body is None:
            raise Garbage("connection closed %d bytes short of Content-Length" % (n - len(conn.buf)))
    else:
        while conn.fill():
            pass
        body, conn.buf = conn.buf, b""
    if body:
        shown = body[:200].decode("latin-1").replace("\r", "\\r").replace("\n", "\\n")
        conn.log.append("< (body %d bytes) %s%s" % (len(body), shown, "..." if len(body) > 200 else ""))
    return status, headers, body


def run_case(port, steps, expect, heads, timeout):
    """Play the steps; returns (summary words, responses, conn)."""
    conn = Conn(port, timeout)
    responses, words = [], []

    def read_one():
        """Read the next response into responses/words; False when the
        connection ended or misbehaved (words then says how)."""
        try:
            r = read_response(conn, len(responses) + 1 in heads)
        except socket.timeout:
            words.append("timeout")
            return False
        except (Garbage, ValueError) as e:
            conn.log.append("! %s" % e)
            words.append("garbage")
            return False
        if r is None:
            conn.log.append("! server closed the connection (%s)" % conn.eof)
            words.append("close")
            return False
        responses.append(r)
        words.append(str(r[0]))
        return True

    sending = True
    for kind, arg in steps:
        if kind == "send" and sending:
            shown = arg[:300].decode("latin-1").encode("unicode_escape").decode("ascii")
            conn.log.append("> %s%s" % (shown, "..." if len(arg) > 300 else ""))
            sending = conn.send(arg)
        elif kind == "pause" and sending:
            time.sleep(arg)
        elif kind == "await":
            if not read_one():
                return words, responses, conn
        elif kind == "shut" and sending:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.log.append("> (half-close)")

    want = len(expect) - 1
    while sum(1 for w in words if w.isdigit()) < want:
        if not read_one():
            return words, responses, conn

    if expect[-1] == "close":
        # Everything until the server closes: answers that should never come show up.
        while read_one():
            pass
        if words[-1] == "timeout":
            words[-1] = "open"
            conn.log.append("! the server kept the connection open")
        return words, responses, conn

    # expect ... open: the probe must be answered.
    conn.log.append("> " + PROBE.decode().encode("unicode_escape").decode())
    if not conn.send(PROBE):
        words.append("close")
        return words, responses, conn
    n_before = len(responses)
    while read_one():
        if responses[-1][0] == 200 and len(responses) > n_before and responses[-1][2] == b"Hello from dsys!":
            responses.pop()
            words[-1] = "open"
            break
    return words, responses, conn


def run_checks(checks, responses):
    errors = []
    for word, n, arg in checks:
        if n > len(responses):
            errors.append("%s %d: there is no response %d" % (word, n, n))
            continue
        status, headers, body = responses[n - 1]
        if word == "body":
            want = unescape(arg)
            if body != want:
                errors.append("body %d: want %r, got %r" % (n, want, body[:200]))
            continue
        name, colon, value = arg.partition(":")
        name, value = name.strip().lower(), value.strip()
        got = headers.get(name)
        if word == "noheader":
            if got is not None:
                errors.append("noheader %d: %s is present: %r" % (n, name, got))
        elif got is None:
            errors.append("header %d: %s is absent" % (n, name))
        elif colon and value.startswith("~"):
            if not any(value[1:].lower() in g.lower() for g in got):
                errors.append("header %d: %s does not contain %r: %r" % (n, name, value[1:], got))
        elif colon and got != [value]:
            errors.append("header %d: %s want %r, got %r" % (n, name, value, got))
    return errors


def read_table(path):
    """The cases of a table file: [(group, name, [lines], line number)]."""
    cases, group, cur = [], None, None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            if word == "group":
                group, cur = rest.strip(), None
            elif word == "case":
                if group is None:
                    raise CaseError("%s:%d: case before any group" % (path, n))
                cur = (group, rest.strip(), [], n)
                cases.append(cur)
            elif line.strip():
                if cur is None:
                    raise CaseError("%s:%d: line outside a case" % (path, n))
                cur[2].append(line)
    return cases


def split_steps(steps, rng):
    """The same bytes in the same order, each write cut at up to 7 random
    places, 1 ms apart: a server must answer a case alike however TCP
    delivers it.  Cases marked "whole" (their meaning rests on what arrives
    together, e.g. a body sent with an Expect: 100-continue head) are kept."""
    if any(kind == "whole" for kind, _ in steps):
        return steps
    out = []
    for kind, arg in steps:
        if kind != "send" or len(arg) < 2:
            out.append((kind, arg))
            continue
        cuts = sorted(rng.sample(range(1, len(arg)), min(len(arg) - 1, rng.randint(1, 7))))
        for a, b in zip([0] + cuts, cuts + [len(arg)]):
            if a:
                out.append(("pause", 0.001))
            out.append(("send", arg[a:b]))
    return out


def play(port, lines, timeout, show, rng=None):
    """Play one case (its writes cut at random places when rng is given);
    returns (ok, report text)."""
    steps, expect, checks, heads = parse_case(lines)
    if rng:
        steps = split_steps(steps, rng)
    try:
        words, responses, conn = run_case(port, steps, expect, heads, timeout)
    except OSError as e:
        return False, "expected: %s\nactual:   cannot connect to 127.0.0.1:%d: %s\n" % (
            " ".join(expect), port, e.strerror or e)
    conn.sock.close()
    errors = run_checks(checks, responses)
    ok = len(words) == len(expect) and not errors and all(
        w in e.split("|") for w, e in zip(words, expect))
    out = []
    if not ok or show:
        out.append("expected: %s" % " ".join(expect))
        out.append("actual:   %s" % " ".join(words))
        out += ["check failed: %s" % e for e in errors]
        out.append("transcript:")
        out += ["  " + l for l in conn.log]
    return ok, "".join(l + "\n" for l in out)


def main():
    ap = argparse.ArgumentParser(
        description="play one conformance case from stdin, or every case of a table")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=4.0,
                    help="seconds of silence that end a read (default 4; a passing server never makes us wait it out)")
    ap.add_argument("--show", action="store_true", help="print the transcript even on success")
    ap.add_argument("--table", help="play the cases of this file instead of stdin")
    ap.add_argument("--match", help="with --table: only cases whose group: name contains this")
    ap.add_argument("--results", help="with --table: write DIR/N.pass or DIR/N.fail for case N (from 1)")
    ap.add_argument("--split", type=int, metavar="SEED",
                    help="cut every write at random places (seeded): the answers must not change")
    a = ap.parse_args()
    rng = random.Random(a.split) if a.split is not None else None
    try:
        if not a.table:
            ok, text = play(a.port, sys.stdin.readlines(), a.timeout, a.show, rng)
            sys.stdout.write(text)
            return 0 if ok else 1
        failed = 0
        for i, (group, name, lines, _) in enumerate(read_table(a.table), 1):
            title = "%s: %s" % (group, name)
            if a.match and a.match not in title:
                continue
            ok, text = play(a.port, lines, a.timeout, a.show, rng)
            failed += not ok
            if a.results:
                with open("%s/%d.%s" % (a.results, i, "pass" if ok else "fail"), "w") as f:
                    f.write(text)
            else:
                print("%s %d %s" % ("ok" if ok else "not ok", i, title))
                sys.stdout.write("".join("# " + l + "\n" for l in text.splitlines()))
        return 1 if failed else 0
    except CaseError as e:
        print("send.py: bad case: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
