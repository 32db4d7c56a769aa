#!/usr/bin/python3
"""A fault proxy between dsys-raft members, for tests/raft_partition.bats.

  raft_proxy.py --ctl DIR --member ID:LISTEN:TARGET [--member ...]

For each member ID the proxy listens on 127.0.0.1:LISTEN (the address the
others have for it in --initial-cluster) and forwards to 127.0.0.1:TARGET
(its --listen-peer).  A member dials each peer and only writes on that
connection, and its first frame is HELLO (u32 length, u8 kind 1, u32
sender id, u64 cluster id: lib/raft/msg.h), so the proxy reads the sender
from it and knows the link, FROM-TO, each connection carries: one
direction of traffic between two members.

The link FROM-TO obeys the file DIR/FROM-TO, looked at every 20 ms:
  absent       bytes pass
  "drop"       bytes vanish: open connections stay open but deliver
               nothing, new ones are accepted and deliver nothing (as a
               network that loses every packet, with no reset)
  "delay MS"   bytes pass MS milliseconds late, in order
When a link leaves "drop" its connections are closed (the receiver may
hold half a frame); the sender dials again, as after any lost connection.

Prints {"event":"ready"} once listening; runs until killed.
"""
import argparse
import asyncio
import json
import os
import struct
import sys
import time


class Link:
    def __init__(self):
        self.mode = ("pass", 0)
        self.conns = set()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ctl", required=True)
    ap.add_argument("--member", action="append", required=True)
    a = ap.parse_args()
    members = {}
    for m in a.member:
        mid, listen, target = (int(x) for x in m.split(":"))
        members[mid] = (listen, target)
    links = {}

    def link(frm, to):
        return links.setdefault((frm, to), Link())

    async def pump(reader, writer, ln, delayed):
        """Copy reader to writer under ln's mode (delayed: obey delay/drop)."""
        q = asyncio.Queue()

        async def sender():
            while True:
                at, data = await q.get()
                if data is None:
                    break
                wait = at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        task = asyncio.ensure_future(sender())
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                mode, ms = ln.mode if delayed else ("pass", 0)
                if mode == "drop":
                    continue
                q.put_nowait((time.monotonic() + ms / 1000.0, data))
        except (ConnectionError, OSError):
            pass
        q.put_nowait((0, None))
        try:
            await task
        except (ConnectionError, OSError):
            pass
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass

    async def serve(to, target, reader, writer):
        try:
            hello = await reader.readexactly(17)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            writer.close()
            return
        _n, kind, frm = struct.unpack("<IBI", hello[:9])
        ln = link(frm if kind == 1 else 0, to)
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            writer.close()
            return
        conn = (writer, uw)
        ln.conns.add(conn)
        if ln.mode[0] != "drop":
            uw.write(hello)
        await asyncio.gather(pump(reader, uw, ln, True), pump(ur, writer, ln, False))
        ln.conns.discard(conn)

    async def watch():
        while True:
            for (frm, to) in [(f, t) for f in members for t in members if f != t]:
                ln = link(frm, to)
                try:
                    with open(os.path.join(a.ctl, "%d-%d" % (frm, to))) as f:
                        words = f.read().split()
                except OSError:
                    words = []
                if words[:1] == ["drop"]:
                    mode = ("drop", 0)
                elif words[:1] == ["delay"] and len(words) > 1:
                    mode = ("delay", int(words[1]))
                else:
                    mode = ("pass", 0)
                if ln.mode[0] == "drop" and mode[0] != "drop":
                    for w, uw in list(ln.conns):
                        w.close()
                        uw.close()
                ln.mode = mode
            await asyncio.sleep(0.02)

    async def run():
        for mid, (listen, target) in members.items():
            await asyncio.start_server(
                lambda r, w, mid=mid, target=target: serve(mid, target, r, w), "127.0.0.1", listen)
        first = min(members)
        print(json.dumps({"event": "ready", "listen": "127.0.0.1:%d" % members[first][0],
                          "members": len(members)}, separators=(",", ":")), flush=True)
        await watch()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
